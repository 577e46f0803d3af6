"""One error tree, mapped once to RFC 9457 problem details (application/problem+json)."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "/problems/"

log = logging.getLogger("commerce.errors")


class FieldError(msgspec.Struct, frozen=True):
    """One invalid input field: where it is and what is wrong with it."""

    field: str
    message: str


class Problem(msgspec.Struct, frozen=True, omit_defaults=True):
    """RFC 9457 problem details; extension members are added next to these fields."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    code: str | None = None
    errors: list[FieldError] | None = None


class DomainError(Exception):
    """Base of every expected error; subclasses set status, code and title."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"
    headers: dict[str, str] | None = None

    def __init__(self, detail: str, *, errors: list[FieldError] | None = None, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.extensions = extensions


class BadRequest(DomainError):
    status, code, title = 400, "bad_request", "Bad request"


class ValidationFailed(DomainError):
    status, code, title = 400, "validation_failed", "Invalid input"


class Unauthorized(DomainError):
    status, code, title = 401, "unauthorized", "Authentication required"


class Forbidden(DomainError):
    status, code, title = 403, "forbidden", "Not allowed"


class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(DomainError):
    status, code, title = 409, "conflict", "Conflict"


class Unprocessable(DomainError):
    status, code, title = 422, "unprocessable", "Cannot be processed"


class PayloadTooLarge(DomainError):
    status, code, title = 413, "payload_too_large", "Request body too large"


class MalformedBody(DomainError):
    status, code, title = 400, "malformed_body", "Malformed request body"


class UriTooLong(DomainError):
    status, code, title = 414, "uri_too_long", "URL too long"


class HeaderFieldsTooLarge(DomainError):
    status, code, title = 431, "header_fields_too_large", "Request header fields too large"


class ClientDisconnected(DomainError):
    """The client hung up mid-request: nothing to answer and nothing wrong on our side (499, as nginx logs it)."""

    status, code, title = 499, "client_disconnected", "Client closed the request"


class PaymentFailed(DomainError):
    status, code, title = 402, "payment_failed", "Payment failed"


class UpstreamUnavailable(DomainError):
    status, code, title = 503, "upstream_unavailable", "A service we depend on is unavailable"


class TooManyRequests(DomainError):
    """A rate limit was reached; the response tells when to retry (Retry-After and RateLimit headers)."""

    status, code, title = 429, "too_many_requests", "Too many requests"

    def __init__(self, detail: str, *, headers: dict[str, str], **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.headers = headers


def problem_response(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    instance: str | None = None,
    errors: list[FieldError] | None = None,
    extensions: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    """Encode one problem document."""
    body: dict[str, Any] = dict(extensions or {})
    body.update(
        msgspec.to_builtins(
            Problem(
                type=PROBLEM_BASE + code, title=title, status=status, detail=detail,
                instance=instance, code=code, errors=errors,
            )
        )
    )
    return Response(
        content=msgspec.json.encode(body), status_code=status, media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _domain_error_handler(request: Request[Any, Any, Any], exc: DomainError) -> Response[bytes]:
    headers = dict(exc.headers or {})
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="commerce"'
    return problem_response(
        status=exc.status, code=exc.code, title=exc.title, detail=exc.detail, instance=request.url.path,
        errors=exc.errors, extensions=exc.extensions, headers=headers or None,
    )


def _client_disconnected_handler(request: Request[Any, Any, Any], exc: ClientDisconnected) -> Response[bytes]:
    log.debug("client disconnected during %s %s", request.method, request.url.path)
    return _domain_error_handler(request, exc)


def _validation_handler(request: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    errors = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            where = item.get("key") or item.get("source") or "body"
            errors.append(FieldError(field=str(where), message=str(item.get("message", "invalid value"))))
    detail = exc.detail if exc.detail and exc.detail != "Bad Request" else "The request is not valid."
    if errors:
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors)[:1000]
    return problem_response(
        status=400, code="validation_failed", title="Invalid input", detail=detail,
        instance=request.url.path, errors=errors or None,
    )


_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("payload_too_large", "Request body too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    429: ("too_many_requests", "Too many requests"),
}


def _http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if status >= 500:
        return _internal_error_handler(request, exc)
    code, title = _HTTP_CODES.get(status, ("client_error", "Client error"))
    detail = exc.detail if exc.detail and exc.detail != title else title + "."
    if status == 400 and ("JSON" in detail or "decode" in detail.lower()):
        code, title = "malformed_body", "Malformed request body"
    return problem_response(
        status=status, code=code, title=title, detail=detail[:1000], instance=request.url.path,
        headers=dict(exc.headers) if exc.headers else None,
    )


def _internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        status=500, code="internal_error", title="Internal error",
        detail="Something went wrong on our side; the request was not applied. Try again later.",
        instance=request.url.path,
    )


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    ClientDisconnected: _client_disconnected_handler,
    DomainError: _domain_error_handler,
    ValidationException: _validation_handler,
    HTTPException: _http_exception_handler,
    Exception: _internal_error_handler,
}
