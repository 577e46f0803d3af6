"""The events billing publishes: their payload types are their entries in the event catalogue."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Literal, TypeVar

import msgspec
from msgspec import Meta

from app.events import Event, event


class DecisionPayload(Event, frozen=True):
    route: Literal["budget", "card"] | None
    outcome: Literal["auto_approved", "approval_required", "blocked"]
    reasons: list[str]


class OrderEvent(Event, frozen=True, omit_defaults=True):
    """The order after the change: ids are external ids (yours) except ``order_id``."""

    order_id: str
    account: str
    user: str
    state: str
    route: Literal["budget", "card"]
    total_minor: int
    currency: str
    modules: list[str]
    decision: DecisionPayload | None = None
    decided_by: str | None = None
    note: str | None = None
    refunded_minor: int | None = None
    failure_reason: str | None = None
    renewal_of: Annotated[str | None, Meta(description="The subscription a renewal order renews")] = None


@event("order.created", description="An order was placed from a quote (with the guardrail decision).")
class OrderCreated(OrderEvent, frozen=True):
    """An order was placed from a quote (with the guardrail decision)."""


@event("order.approved", description="An approver agreed to the purchase.")
class OrderApproved(OrderEvent, frozen=True):
    """An approver agreed to the purchase."""


@event("order.payment_pending", description="The order waits for its card payment.")
class OrderPaymentPending(OrderEvent, frozen=True):
    """The order waits for its card payment."""


@event("order.requires_action", description="The bank asks the user to authenticate the card payment (3-D Secure).")
class OrderRequiresAction(OrderEvent, frozen=True):
    """The bank asks the user to authenticate the card payment (3-D Secure)."""


@event("order.paid", description="The order is paid (budget captured or card charged).")
class OrderPaid(OrderEvent, frozen=True):
    """The order is paid (budget captured or card charged)."""


@event("order.fulfilled", description="The order's modules are granted and provisioning was requested.")
class OrderFulfilled(OrderEvent, frozen=True):
    """The order's modules are granted and provisioning was requested."""


@event("order.denied", description="An approver denied the purchase; held budget was released.")
class OrderDenied(OrderEvent, frozen=True):
    """An approver denied the purchase; held budget was released."""


@event("order.expired", description="The approval request expired; held budget was released.")
class OrderExpired(OrderEvent, frozen=True):
    """The approval request expired; held budget was released."""


@event("order.failed", description="The card payment failed; nothing was granted.")
class OrderFailed(OrderEvent, frozen=True):
    """The card payment failed; nothing was granted."""


@event("order.canceled", description="The order was canceled before payment.")
class OrderCanceled(OrderEvent, frozen=True):
    """The order was canceled before payment."""


@event("order.refunded", description="The order was refunded; its grants were revoked.")
class OrderRefunded(OrderEvent, frozen=True):
    """The order was refunded; its grants were revoked."""


ORDER_EVENTS: dict[str, type[OrderEvent]] = {
    "created": OrderCreated, "approved": OrderApproved, "payment_pending": OrderPaymentPending,
    "requires_action": OrderRequiresAction, "paid": OrderPaid, "fulfilled": OrderFulfilled, "denied": OrderDenied,
    "expired": OrderExpired, "failed": OrderFailed, "canceled": OrderCanceled, "refunded": OrderRefunded,
}


T = TypeVar("T", bound=Event)


def typed_event(cls: type[T], members: Mapping[str, object]) -> tuple[T, dict[str, object]]:
    """The event ``cls`` built from ``members``, and the members to write beside it: those the catalogue
    does not describe yet and optional ones set to null (the payload leaves unset ones out), so the webhook
    body stays as it was."""
    fields = set(cls.__struct_fields__)
    typed = {k: v for k, v in members.items() if k in fields and v is not None}
    extra = {k: v for k, v in members.items() if k not in fields or v is None}
    return msgspec.convert(typed, cls), extra


def order_event(state: str, members: Mapping[str, object]) -> tuple[OrderEvent, dict[str, object]]:
    """The typed event of an order that entered ``state`` (see ``typed_event``); members the catalogue does
    not describe yet (``retry``, ``reason``, ``code``, ``payment_intent``) travel beside it."""
    return typed_event(ORDER_EVENTS[state], members)


@event("order.partially_refunded",
       description="Part of a card order was refunded; access is kept until the whole order is refunded.")
class OrderPartiallyRefunded(OrderEvent, frozen=True, kw_only=True):
    amount_minor: Annotated[int, Meta(description="What this refund returned")]
    access: str


@event("order.refund_pending",
       description="Stripe accepted a refund but the money is still on its way; the order is unchanged until it "
                   "succeeds.")
class OrderRefundPending(OrderEvent, frozen=True, kw_only=True):
    amount_minor: Annotated[int, Meta(description="What this refund will return")]
    refund: Annotated[str, Meta(description="Stripe's refund id")]


@event("order.refund_failed",
       description="A refund returned no money (Stripe refused it, or the bank sent it back): the customer is "
                   "still owed it; the order keeps its state.")
class OrderRefundFailed(OrderEvent, frozen=True, kw_only=True):
    amount_minor: Annotated[int, Meta(description="What this refund would have returned")]
    status: Annotated[str, Meta(description="failed or canceled")]
    money_returned: bool = False
    refund: Annotated[str | None, Meta(description="Stripe's refund id, when Stripe made one")] = None
    reason: Annotated[str | None, Meta(description="Stripe's failure reason")] = None


class DisputeEvent(OrderEvent, frozen=True, kw_only=True):
    dispute: Annotated[str, Meta(description="Stripe's dispute id")]
    status: Annotated[str, Meta(description="Stripe's dispute status")]


@event("order.disputed", description="The card holder disputed the payment; access is kept until it closes.")
class OrderDisputed(DisputeEvent, frozen=True, kw_only=True):
    access: str


@event("order.dispute_closed", description="A dispute closed in the vendor's favour (or was withdrawn).")
class OrderDisputeClosed(DisputeEvent, frozen=True):
    pass


@event("order.dispute_lost", description="A dispute was lost: the money went back and access is revoked.")
class OrderDisputeLost(DisputeEvent, frozen=True):
    pass


@event("payment.orphaned", description=(
    "A card payment succeeded for an order that was already canceled or expired; reconcile refunds it."))
class PaymentOrphaned(Event, frozen=True):
    order_id: str
    state: str
    payment_intent: str | None
    amount_minor: int
    currency: str


class SubscriptionEvent(Event, frozen=True):
    """The subscription after the change (times are ISO 8601 strings in UTC)."""

    subscription_id: str
    order_id: Annotated[str, Meta(description="The order that started the subscription")]
    module: str
    route: Literal["budget", "card"]
    seats: int
    status: Literal["active", "renewing", "past_due", "ended", "canceled"]
    current_period_start: str
    current_period_end: str


@event("renewal.succeeded", description="A subscription renewed: the renewal order is paid, the period advanced.")
class RenewalSucceeded(SubscriptionEvent, frozen=True):
    renewal_order_id: str
    total_minor: int
    currency: str


@event("renewal.failed", description=(
    "A renewal could not be paid: the subscription is past due until the next attempt, or ends when none is "
    "left (next_attempt_at null)."))
class RenewalFailed(SubscriptionEvent, frozen=True):
    renewal_order_id: str
    attempt: int
    reason: str
    grace_until: str
    next_attempt_at: str | None


@event("subscription.ended", description="A subscription stopped renewing (its renewals could not be paid).")
class SubscriptionEnded(SubscriptionEvent, frozen=True):
    reason: str


@event("subscription.canceled", description="A subscription was canceled (by an admin, a refund or a lost dispute).")
class SubscriptionCanceled(SubscriptionEvent, frozen=True):
    reason: str


@event("subscription.updated", description="A subscription's seats changed.")
class SubscriptionUpdated(SubscriptionEvent, frozen=True):
    actor: str


@event("approval.requested", description="A purchase needs an approver: the money is held until it is decided.")
class ApprovalRequested(Event, frozen=True):
    approval_id: str
    order_id: str
    account: str
    requester: str
    reason: str | None
    why: list[str]
    total_minor: int
    currency: str
    modules: list[str]
    approver_roles: list[str]
    expires_at: str
    temporary_access_until: str | None


@event("approval.decided", description="An approval request was approved, denied or expired.")
class ApprovalDecided(Event, frozen=True):
    approval_id: str
    order_id: str
    decision: Literal["approved", "denied", "expired"]
    decided_by: str | None
    note: str | None


@event("budget.threshold_reached", description="A budget's use this period crossed an alert threshold (once each).")
class BudgetThresholdReached(Event, frozen=True):
    budget_id: str
    name: str
    period: str
    threshold_pct: int
    amount_minor: int
    used_minor: int
    currency: str


@event("statement.finalized", description="A period was closed: the account's bill-back statement is final.")
class StatementFinalized(Event, frozen=True):
    statement_id: str
    account: str
    period: str
    currency: str
    captured_minor: int
    refunded_minor: int
    total_minor: int
    orders: int


class StatementEvent(Event, frozen=True):
    statement_id: str
    period: str
    invoice: Annotated[str, Meta(description="Stripe's invoice id")]


@event("statement.invoiced", description="A closed statement was sent as a Stripe invoice.")
class StatementInvoiced(StatementEvent, frozen=True):
    total_minor: int
    currency: str
    hosted_invoice_url: str | None
    days_until_due: int


@event("statement.paid", description="The statement's invoice was paid.")
class StatementPaid(StatementEvent, frozen=True):
    status: Literal["paid"]


@event("statement.payment_failed", description="Collecting the statement's invoice failed.")
class StatementPaymentFailed(StatementEvent, frozen=True):
    status: Literal["payment_failed"]


@event("statement.void", description="The statement's invoice was voided.")
class StatementVoided(StatementEvent, frozen=True):
    status: Literal["void"]


STATEMENT_STATUS_EVENTS: dict[str, type[StatementEvent]] = {
    "paid": StatementPaid, "payment_failed": StatementPaymentFailed, "void": StatementVoided}


@event("provision.acknowledged", description="The vendor's app confirmed it switched the order's modules on.")
class ProvisionAcknowledged(OrderEvent, frozen=True):
    pass


@event("provision.failed", description="The vendor's app could not switch the modules on (the note says why).")
class ProvisionFailed(OrderEvent, frozen=True):
    pass


@event("payment_method.saved", description="A user saved a card (through the widget's SetupIntent).")
class PaymentMethodSaved(Event, frozen=True):
    user: str
    payment_method: str
    is_default: bool
    brand: str | None
    last4: str | None


class ProvisionedFeature(Event, frozen=True):
    key: Annotated[str, Meta(description="The feature key your code checks, e.g. pdf_export")]
    kind: Literal["boolean", "limit", "config"]
    limit: int | None = None
    value: str | None = None


class ProvisionItem(Event, frozen=True):
    module: Annotated[str, Meta(description="The module key")]
    quantity: Annotated[int, Meta(ge=1, description="Seats or units bought")]
    features: list[ProvisionedFeature] = []


@event("provision.requested", description=(
    "An order was fulfilled: switch on what it bought in your app, then acknowledge with "
    "POST /v1/orders/{order_id}/provisioned (or report a failure with a reason)."))
class ProvisionRequested(Event, frozen=True):
    order_id: str
    account_id: str
    account: Annotated[str, Meta(description="The account's external id (your id)")]
    items: list[ProvisionItem]
    requested_at: datetime
    user: Annotated[str | None, Meta(description="The buying user's external id, if a user bought")] = None


@event("subscription.price_migrated", description=(
    "A scheduled price migration took effect at a renewal: the subscription now pays the newer price version."))
class SubscriptionPriceMigrated(SubscriptionEvent, frozen=True):
    from_price_id: str
    to_price_id: str
    to_version: int
    unit_amount_minor_before: int
    unit_amount_minor_after: int


@event("usage.charged", description=(
    "A closed period's usage of a metered module was charged (kind period), or late usage of an earlier period "
    "was charged in a later one (kind adjustment): a statement line on the budget route, a Stripe invoice item "
    "on the card route."))
class UsageCharged(Event, frozen=True):
    charge_id: str
    account: Annotated[str, Meta(description="The account's external id (your id)")]
    user: Annotated[str, Meta(description="The user's external id whose usage was charged")]
    module: str
    route: Literal["budget", "card"]
    kind: Literal["period", "adjustment"]
    usage_period: Annotated[str, Meta(description="YYYY-MM of the usage period's start")]
    billed_period: Annotated[str, Meta(description="YYYY-MM of the period whose statement or invoice carries it")]
    price_id: str
    quantity: int
    quantity_before: int
    amount_minor: int
    currency: str
