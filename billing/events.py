"""The events billing publishes: their payload types are their entries in the event catalogue."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Literal

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


def order_event(state: str, members: Mapping[str, object]) -> tuple[OrderEvent, dict[str, object]]:
    """The typed event of an order that entered ``state``, and the members to write beside it: those the
    catalogue does not describe yet (``retry``, ``reason``, ``code``, ``payment_intent``, ``dispute``) and
    optional ones set to null (the payload leaves unset ones out), so the webhook body stays as it was."""
    cls = ORDER_EVENTS[state]
    fields = set(cls.__struct_fields__)
    typed = {k: v for k, v in members.items() if k in fields and v is not None}
    extra = {k: v for k, v in members.items() if k not in fields or v is None}
    return msgspec.convert(typed, cls), extra


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
