"""Typed errors: every RFC 9457 problem the API answers becomes one of these, chosen by its ``code``."""

from __future__ import annotations

from typing import Any


class CommerceError(Exception):
    """Base of every error this SDK raises."""


class APIConnectionError(CommerceError):
    """The service could not be reached (after the retries), or did not answer in time."""


class APITimeoutError(APIConnectionError):
    """The service did not answer within the timeout (after the retries)."""


class APIError(CommerceError):
    """A problem document from the API: ``status``, ``code``, ``detail`` and the document itself."""

    def __init__(self, problem: dict[str, Any], *, status: int, request_id: str | None = None) -> None:
        self.problem = problem
        self.status = status
        self.code: str = str(problem.get("code") or "")
        self.type: str = str(problem.get("type") or "about:blank")
        self.title: str = str(problem.get("title") or "")
        self.detail: str = str(problem.get("detail") or self.title or f"HTTP {status}")
        self.errors: list[dict[str, Any]] = list(problem.get("errors") or [])
        self.request_id = request_id
        super().__init__(f"{status} {self.code or 'error'}: {self.detail}")

    def __getitem__(self, member: str) -> Any:
        """An extension member of the problem (``err["required_scope"]``)."""
        return self.problem[member]


class BadRequest(APIError):
    """400: the request is malformed or invalid (``errors`` lists the fields)."""


class Unauthorized(APIError):
    """401: missing, invalid, expired or revoked credentials."""


class Forbidden(APIError):
    """403: the credentials lack the scope, role or account this needs."""


class NotFound(APIError):
    """404: no such object (or one of another account: existence is not leaked)."""


class Conflict(APIError):
    """409: conflicts with the current state."""


class Unprocessable(APIError):
    """422: well-formed but not acceptable (a business rule, or an Idempotency-Key reused for another request)."""


class PaymentFailed(APIError):
    """402: the payment failed."""


class RateLimited(APIError):
    """429: too many requests (raised once the retries are spent); ``retry_after`` in seconds if told."""

    retry_after: float | None = None


class ServerError(APIError):
    """5xx: the service failed (raised once the retries are spent); the request may be retried later."""


class LimitExceeded(Conflict):
    """409 limit_exceeded: the usage would exceed the user's limit."""


class SeatsExhausted(Conflict):
    """409 seats_exhausted: every seat of the pool is assigned."""


class TrialAlreadyUsed(Conflict):
    """409 trial_already_used."""


class BudgetExhausted(Conflict):
    """409 budget_exhausted: the budget cannot cover the purchase."""


class PurchaseBlocked(Unprocessable):
    """422 purchase_blocked: the account's guardrails do not allow this purchase."""


class ModuleNotAvailable(Unprocessable):
    """422 module_not_available: the availability policy hides the module from this user, or it is retired."""


class QuoteUnusable(Conflict):
    """409 quote_unusable: the quote expired or was already ordered."""


class CardSetupRequired(Unprocessable):
    """422 card_setup_required: the user has no saved card."""


class CardDeclined(PaymentFailed):
    """402 card_declined."""


class AuthenticationRequired(PaymentFailed):
    """402 authentication_required: the bank wants 3-D Secure; confirm on-session with ``err["client_secret"]``."""


class FeatureNotFound(NotFound):
    """404 feature_not_found."""


class IdempotencyKeyReused(Unprocessable):
    """422: this Idempotency-Key was used before with a different request."""


BY_CODE: dict[str, type[APIError]] = {
    "limit_exceeded": LimitExceeded, "seats_exhausted": SeatsExhausted, "trial_already_used": TrialAlreadyUsed,
    "budget_exhausted": BudgetExhausted, "purchase_blocked": PurchaseBlocked,
    "module_not_available": ModuleNotAvailable, "quote_unusable": QuoteUnusable,
    "card_setup_required": CardSetupRequired, "card_declined": CardDeclined,
    "authentication_required": AuthenticationRequired, "feature_not_found": FeatureNotFound,
}
BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest, 401: Unauthorized, 402: PaymentFailed, 403: Forbidden, 404: NotFound, 409: Conflict,
    422: Unprocessable, 429: RateLimited,
}


def error_for(status: int, problem: dict[str, Any], *, request_id: str | None = None) -> APIError:
    """The most specific error class for a problem: by its code, then by the status."""
    code = str(problem.get("code") or "")
    cls = BY_CODE.get(code)
    if cls is None and status == 422 and "idempotency_key" in problem:
        cls = IdempotencyKeyReused
    if cls is None:
        cls = BY_STATUS.get(status, ServerError if status >= 500 else APIError)
    return cls(problem, status=status, request_id=request_id)
