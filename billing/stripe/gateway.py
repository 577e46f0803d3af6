"""The one place that talks to Stripe: typed async calls through the official SDK's ``StripeClient``.

* Every mutating call takes an idempotency key derived from our own ids (``idem("order", id, "pi", 1)``),
  so a retry after a timeout, or a re-run after a crash, replays Stripe's first answer instead of
  charging twice. The SDK keeps the key across its own retries (``max_network_retries``).
* Stripe's errors are translated here, once, into app.errors types with user-safe messages.
* Nothing here touches the database, and no call runs inside one: each first asserts that this task holds
  no open transaction (app.db's guard), so a slow Stripe never keeps row locks waiting. The flows in
  billing.stripe.flows commit their pending state, call, then record the answer in a new transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import stripe
from litestar.datastructures import State
from stripe._base_address import BaseAddresses

from app import metrics
from app.db import assert_outside_transaction
from app.errors import NotFound
from app.settings import Settings
from billing.stripe.errors import (
    AuthenticationRequired,
    CardDeclined,
    CardPaymentsDisabled,
    IdempotencyKeyReused,
    InvalidWebhookSignature,
    PaymentProviderRejected,
    PaymentProviderUnavailable,
)

log = logging.getLogger("commerce.stripe")

T = TypeVar("T")
Metadata = Mapping[str, str]


class _Closable(Protocol):
    async def close_async(self) -> None: ...


# Per decline code (or card error code), what we tell the user. Anything else: the generic sentence.
DECLINE_MESSAGES: dict[str, str] = {
    "generic_decline": "Your card was declined.",
    "do_not_honor": "Your card was declined.",
    "fraudulent": "Your card was declined.",  # never tell a fraudster why
    "insufficient_funds": "Your card was declined: insufficient funds.",
    "card_velocity_exceeded": "Your card was declined: it is over its spending limit.",
    "withdrawal_count_limit_exceeded": "Your card was declined: it is over its spending limit.",
    "lost_card": "Your card was declined: it was reported lost.",
    "stolen_card": "Your card was declined: it was reported stolen.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "Your card's security code is incorrect.",
    "incorrect_number": "Your card number is incorrect.",
    "invalid_expiry_month": "Your card's expiration month is invalid.",
    "invalid_expiry_year": "Your card's expiration year is invalid.",
    "card_not_supported": "Your card does not support this type of purchase.",
    "currency_not_supported": "Your card does not support this currency.",
    "processing_error": "An error occurred while processing your card. Try again in a little while.",
    "authentication_required": "Your bank asks you to confirm this payment.",
    "payment_intent_authentication_failure": "The card could not be authenticated. Try again or use another card.",
}
GENERIC_DECLINE = DECLINE_MESSAGES["generic_decline"]


def decline_message(code: str | None, decline_code: str | None) -> str:
    """The user-safe sentence for a card error (decline code first, then the error code)."""
    for candidate in (decline_code, code):
        if candidate and candidate in DECLINE_MESSAGES:
            return DECLINE_MESSAGES[candidate]
    return GENERIC_DECLINE


def idem(*parts: object) -> str:
    """An idempotency key from our own ids: ``idem("order", order_id, "pi", attempt)`` -> ``order:…:pi:1``."""
    key = ":".join(str(p) for p in parts)
    assert 0 < len(key) <= 255 and all(p not in ("", None) for p in parts), "idempotency keys come from our ids"
    return key


def translate(exc: stripe.StripeError) -> Exception:
    """Stripe's exception -> ours (the one mapping of the service)."""
    if isinstance(exc, stripe.CardError):
        err = exc.error
        pi = getattr(err, "payment_intent", None) if err is not None else None
        decline_code = getattr(err, "decline_code", None) if err is not None else None
        if exc.code == "authentication_required" and pi is not None:
            return AuthenticationRequired(
                decline_message(exc.code, None), payment_intent=pi.id, client_secret=pi.client_secret)
        extra: dict[str, Any] = {"decline_code": decline_code or exc.code or "generic_decline"}
        if pi is not None:
            extra["payment_intent"] = pi.id
        return CardDeclined(decline_message(exc.code, decline_code), **extra)
    if isinstance(exc, stripe.IdempotencyError):
        return IdempotencyKeyReused("An idempotency key was reused with different parameters.")
    if isinstance(exc, stripe.InvalidRequestError) and exc.code == "resource_missing":
        return NotFound("The payment object does not exist.")
    if isinstance(exc, stripe.InvalidRequestError):
        log.error("Stripe rejected a request: %s (code=%s, param=%s)", exc.user_message, exc.code, exc.param)
        return PaymentProviderRejected("The payment provider rejected the request; nothing was charged.")
    if isinstance(exc, stripe.RateLimitError | stripe.APIConnectionError | stripe.APIError):
        log.warning("Stripe unavailable: %s", type(exc).__name__)
        return PaymentProviderUnavailable("The payment provider is unavailable right now; try again shortly.")
    log.error("Stripe error %s: %s", type(exc).__name__, exc.user_message)
    return PaymentProviderUnavailable("Card payments are unavailable right now; try again later.")


async def _call(call: Coroutine[Any, Any, T]) -> T:
    """Run one SDK call outside any transaction of this task, translating Stripe's errors."""
    try:
        assert_outside_transaction("a Stripe call")
    except AssertionError:
        call.close()  # never sent
        raise
    try:
        result = await call
    except stripe.StripeError as exc:
        metrics.STRIPE_CALLS.labels(outcome=type(exc).__name__).inc()
        raise translate(exc) from exc
    metrics.STRIPE_CALLS.labels(outcome="ok").inc()
    return result


# --- the gateway ------------------------------------------------------------------------------------------

@dataclass
class StripeGateway:
    """Typed, translated Stripe calls; one per process (on ``app.state.stripe``)."""

    client: stripe.StripeClient
    webhook_secret: str
    webhook_tolerance_seconds: int = 300
    http_client: stripe.HTTPClient | None = None
    fake: object | None = None  # the local fake answering in-process (development, tests); opaque to billing

    async def close(self) -> None:
        """Close the HTTP client's connections (on app shutdown)."""
        if self.http_client is not None:
            closable: _Closable = self.http_client
            await closable.close_async()

    @staticmethod
    def _opts(key: str | None) -> Any:
        return {"idempotency_key": key} if key else {}

    # customers
    async def create_customer(self, *, key: str, metadata: Metadata, email: str | None = None,
                              name: str | None = None) -> stripe.Customer:
        params: Any = {"metadata": dict(metadata)}
        if email:
            params["email"] = email
        if name:
            params["name"] = name
        return await _call(self.client.v1.customers.create_async(params, self._opts(key)))

    async def get_customer(self, customer_id: str) -> stripe.Customer:
        return await _call(self.client.v1.customers.retrieve_async(customer_id))

    async def set_default_payment_method(self, customer_id: str, payment_method_id: str, *,
                                         key: str) -> stripe.Customer:
        params: Any = {"invoice_settings": {"default_payment_method": payment_method_id}}
        return await _call(self.client.v1.customers.update_async(customer_id, params, self._opts(key)))

    # cards
    async def create_setup_intent(self, *, customer_id: str, key: str, metadata: Metadata) -> stripe.SetupIntent:
        params: Any = {"customer": customer_id, "usage": "off_session",
                       "metadata": dict(metadata)}
        return await _call(self.client.v1.setup_intents.create_async(params, self._opts(key)))

    async def get_setup_intent(self, setup_intent_id: str) -> stripe.SetupIntent:
        return await _call(self.client.v1.setup_intents.retrieve_async(setup_intent_id))

    async def list_cards(self, customer_id: str, *, limit: int = 100) -> list[stripe.PaymentMethod]:
        params: Any = {"customer": customer_id, "type": "card", "limit": limit}
        page = await _call(self.client.v1.payment_methods.list_async(params))
        return list(page.data)

    async def get_payment_method(self, payment_method_id: str) -> stripe.PaymentMethod:
        return await _call(self.client.v1.payment_methods.retrieve_async(payment_method_id))

    async def detach_payment_method(self, payment_method_id: str, *, key: str) -> stripe.PaymentMethod:
        return await _call(self.client.v1.payment_methods.detach_async(payment_method_id, {}, self._opts(key)))

    # payments
    async def charge_off_session(
        self, *, amount_minor: int, currency: str, customer_id: str, payment_method_id: str, metadata: Metadata,
        key: str, description: str | None = None,
    ) -> stripe.PaymentIntent:
        """Create and confirm a PaymentIntent off-session with a saved card.

        Returns the PaymentIntent (``succeeded``; or ``processing``). Raises CardDeclined, or
        AuthenticationRequired carrying the client secret the widget confirms on-session with.
        """
        params: Any = {"amount": amount_minor, "currency": currency.lower(), "customer": customer_id,
                       "payment_method": payment_method_id, "confirm": True, "off_session": True,
                       "metadata": dict(metadata)}
        if description:
            params["description"] = description
        return await _call(self.client.v1.payment_intents.create_async(params, self._opts(key)))

    async def find_payment_intent(self, *, customer_id: str, metadata_key: str, metadata_value: str,
                                  max_pages: int = 10) -> stripe.PaymentIntent | None:
        """The customer's PaymentIntent whose metadata carries our id, newest first (bounded: 10 pages of 100).

        Listing is read-after-write consistent, unlike search, so an attempt made a moment ago is found too.
        """
        params: Any = {"customer": customer_id, "limit": 100}
        for _ in range(max_pages):
            page = await _call(self.client.v1.payment_intents.list_async(params))
            for pi in page.data:
                if pi.metadata is not None and pi.metadata.to_dict().get(metadata_key) == metadata_value:
                    return pi
            if not page.has_more or not page.data:
                return None
            params = {**params, "starting_after": page.data[-1].id}
        return None

    async def get_payment_intent(self, payment_intent_id: str) -> stripe.PaymentIntent:
        return await _call(self.client.v1.payment_intents.retrieve_async(payment_intent_id))

    async def refund(self, *, payment_intent_id: str, key: str, amount_minor: int | None = None,
                     reason: str | None = None, metadata: Metadata | None = None) -> stripe.Refund:
        """Refund all (``amount_minor=None``) or part of a PaymentIntent's charge."""
        params: Any = {"payment_intent": payment_intent_id, "metadata": dict(metadata or {})}
        if amount_minor is not None:
            params["amount"] = amount_minor
        if reason:
            params["reason"] = reason
        return await _call(self.client.v1.refunds.create_async(params, self._opts(key)))

    async def get_dispute(self, dispute_id: str) -> stripe.Dispute:
        return await _call(self.client.v1.disputes.retrieve_async(dispute_id))

    # tax (Stripe Tax)
    async def calculate_tax(self, *, currency: str, customer_details: Mapping[str, object],
                            line_items: list[dict[str, object]], tax_date: int) -> stripe.tax.Calculation:
        """A tax calculation of these lines for this customer (its line items expanded: tax per line)."""
        params: Any = {"currency": currency.lower(), "customer_details": dict(customer_details),
                       "line_items": line_items, "tax_date": tax_date, "expand": ["line_items"]}
        return await _call(self.client.v1.tax.calculations.create_async(params))

    async def record_tax_transaction(self, *, calculation_id: str, reference: str, key: str,
                                     metadata: Metadata) -> stripe.tax.Transaction:
        """Record a paid calculation as a tax transaction (what Stripe Tax reports and files)."""
        params: Any = {"calculation": calculation_id, "reference": reference, "metadata": dict(metadata)}
        return await _call(self.client.v1.tax.transactions.create_from_calculation_async(params, self._opts(key)))

    async def reverse_tax_transaction(self, *, transaction_id: str, reference: str, key: str,
                                      flat_amount_minor: int | None, metadata: Metadata) -> stripe.tax.Transaction:
        """Reverse a tax transaction: in full (``flat_amount_minor=None``) or by a refunded amount, tax included,
        which Stripe spreads over the lines in proportion."""
        params: Any = {"original_transaction": transaction_id, "reference": reference, "metadata": dict(metadata),
                       "mode": "full" if flat_amount_minor is None else "partial"}
        if flat_amount_minor is not None:
            params["flat_amount"] = -flat_amount_minor
        return await _call(self.client.v1.tax.transactions.create_reversal_async(params, self._opts(key)))

    async def set_customer_tax_identity(self, customer_id: str, *, address: Mapping[str, str],
                                        tax_exempt: str, tax_ids: list[tuple[str, str]], key: str) -> None:
        """The bill-back customer's address and exemption, and any of our tax ids Stripe does not have yet."""
        params: Any = {"address": dict(address), "tax_exempt": tax_exempt}
        await _call(self.client.v1.customers.update_async(customer_id, params, self._opts(f"{key}:identity")))
        have = await _call(self.client.v1.customers.tax_ids.list_async(customer_id, {"limit": 100}))
        known = {(t.type, t.value) for t in have.data}
        for kind, value in tax_ids:
            if (kind, value) not in known:
                await _call(self.client.v1.customers.tax_ids.create_async(
                    customer_id, {"type": kind, "value": value}, self._opts(f"{key}:taxid:{kind}:{value}")))

    # invoices (bill-back)
    async def create_invoice_item(
        self, *, customer_id: str, amount_minor: int, currency: str, description: str, key: str,
        metadata: Metadata, period: tuple[int, int] | None = None, tax_code: str | None = None,
        tax_behavior: str | None = None,
    ) -> stripe.InvoiceItem:
        params: Any = {"customer": customer_id, "amount": amount_minor, "currency": currency.lower(),
                       "description": description, "metadata": dict(metadata)}
        if period is not None:
            params["period"] = {"start": period[0], "end": period[1]}
        if tax_code:
            params["tax_code"] = tax_code
        if tax_behavior:
            params["tax_behavior"] = tax_behavior
        return await _call(self.client.v1.invoice_items.create_async(params, self._opts(key)))

    async def create_invoice(self, *, customer_id: str, days_until_due: int, key: str, metadata: Metadata,
                             description: str | None = None, automatic_tax: bool = False) -> stripe.Invoice:
        """A draft ``send_invoice`` invoice holding the customer's pending invoice items; we finalize it."""
        params: Any = {"customer": customer_id, "collection_method": "send_invoice",
                       "days_until_due": days_until_due, "pending_invoice_items_behavior": "include",
                       "auto_advance": False, "metadata": dict(metadata)}
        if description:
            params["description"] = description
        if automatic_tax:
            params["automatic_tax"] = {"enabled": True}
        return await _call(self.client.v1.invoices.create_async(params, self._opts(key)))

    async def finalize_invoice(self, invoice_id: str, *, key: str) -> stripe.Invoice:
        return await _call(self.client.v1.invoices.finalize_invoice_async(invoice_id, {}, self._opts(key)))

    async def send_invoice(self, invoice_id: str, *, key: str) -> stripe.Invoice:
        return await _call(self.client.v1.invoices.send_invoice_async(invoice_id, {}, self._opts(key)))

    async def void_invoice(self, invoice_id: str, *, key: str) -> stripe.Invoice:
        return await _call(self.client.v1.invoices.void_invoice_async(invoice_id, {}, self._opts(key)))

    async def get_invoice(self, invoice_id: str) -> stripe.Invoice:
        return await _call(self.client.v1.invoices.retrieve_async(invoice_id))

    async def invoice_lines(self, invoice: stripe.Invoice, *, max_pages: int = 50) -> list[stripe.InvoiceLineItem]:
        """Every line of an invoice (the invoice object carries the first page only)."""
        lines = list(invoice.lines.data)
        more = invoice.lines.has_more
        for _ in range(max_pages):
            if not more or not lines:
                break
            params: Any = {"limit": 100, "starting_after": lines[-1].id}
            page = await _call(self.client.v1.invoices.line_items.list_async(invoice.id, params))
            lines.extend(page.data)
            more = page.has_more
        return lines

    # webhooks
    def construct_event(self, payload: bytes, signature_header: str | None) -> stripe.Event:
        """Verify the signature on the raw body and parse the event; InvalidWebhookSignature otherwise."""
        if not signature_header:
            raise InvalidWebhookSignature("The Stripe-Signature header is missing.")
        try:
            return self.client.construct_event(payload, signature_header, self.webhook_secret,
                                               tolerance=self.webhook_tolerance_seconds)
        except stripe.SignatureVerificationError as exc:
            raise InvalidWebhookSignature("The webhook signature does not verify (or is too old).") from exc
        except ValueError as exc:
            raise InvalidWebhookSignature("The webhook payload is not a Stripe event.") from exc


def create_gateway(settings: Settings, *, http_client: stripe.HTTPClient | None = None,
                   api_key: str | None = None, fake: object | None = None) -> StripeGateway:
    """A gateway from settings: Stripe's API (or STRIPE_API_BASE) over HTTPX, or over ``http_client``."""
    http = http_client or stripe.HTTPXClient(timeout=settings.stripe_timeout_seconds)
    base: BaseAddresses | None = {"api": settings.stripe_api_base} if settings.stripe_api_base else None
    client = stripe.StripeClient(api_key or settings.stripe_secret_key, http_client=http, base_addresses=base,
                                 max_network_retries=settings.stripe_max_network_retries)
    return StripeGateway(client, settings.stripe_webhook_secret, settings.stripe_webhook_tolerance_seconds,
                         http_client=http, fake=fake)


def provide_gateway(state: State) -> StripeGateway:
    """Dependency: the process's gateway; 503 when card payments are not configured."""
    gateway: StripeGateway | None = state.get("stripe")
    if gateway is None:
        raise CardPaymentsDisabled("Card payments are not configured on this service (STRIPE_SECRET_KEY).")
    return gateway
