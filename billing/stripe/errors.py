"""The errors of card payments and of talking to Stripe (Stripe's own exceptions never leave the gateway)."""

from __future__ import annotations

from app.errors import BadRequest, Conflict, PaymentFailed, UpstreamUnavailable
from billing.errors import CardSetupRequired, PaymentInProgress

__all__ = ["AuthenticationRequired", "CardDeclined", "CardPaymentsDisabled", "CardSetupRequired",
           "IdempotencyKeyReused", "InvalidWebhookSignature", "PaymentInProgress", "PaymentProviderRejected",
           "PaymentProviderUnavailable"]


class CardDeclined(PaymentFailed):
    """The bank declined the card; ``decline_code`` says why (the detail is safe to show the user)."""

    code, title = "card_declined", "Card declined"


class AuthenticationRequired(PaymentFailed):
    """The bank wants the card holder to authenticate (3-D Secure): confirm the PaymentIntent on-session
    with ``client_secret`` (extension members ``payment_intent`` and ``client_secret``)."""

    code, title = "authentication_required", "Authentication required"


class PaymentProviderUnavailable(UpstreamUnavailable):
    code = "payment_provider_unavailable"


class PaymentProviderRejected(UpstreamUnavailable):
    """Stripe refused a request we built (a bug or a misconfiguration on our side; details are logged)."""

    status, code, title = 502, "payment_provider_rejected", "The payment provider rejected the request"


class IdempotencyKeyReused(Conflict):
    """An idempotency key was sent again with other parameters: a programming error, never retried."""

    code = "stripe_idempotency_conflict"


class InvalidWebhookSignature(BadRequest):
    code, title = "invalid_signature", "Invalid webhook signature"


class CardPaymentsDisabled(UpstreamUnavailable):
    code, title = "card_payments_disabled", "Card payments are not configured"
