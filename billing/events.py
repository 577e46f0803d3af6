"""Payload schemas of the events billing emits (registered in the webhook event catalogue)."""

from __future__ import annotations

from typing import Literal

from app.webhooks.events import Payload, event


class DecisionPayload(Payload, frozen=True):
    route: Literal["budget", "card"] | None
    outcome: Literal["auto_approved", "approval_required", "blocked"]
    reasons: list[str]


class OrderEvent(Payload, frozen=True):
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


_ORDER_EVENTS = {
    "created": "An order was placed from a quote (with the guardrail decision).",
    "approved": "An approver agreed to the purchase.",
    "payment_pending": "The order waits for its card payment.",
    "requires_action": "The bank asks the user to authenticate the card payment (3-D Secure).",
    "paid": "The order is paid (budget captured or card charged).",
    "fulfilled": "The order's modules are granted and provisioning was requested.",
    "denied": "An approver denied the purchase; held budget was released.",
    "expired": "The approval request expired; held budget was released.",
    "failed": "The card payment failed; nothing was granted.",
    "canceled": "The order was canceled before payment.",
    "refunded": "The order was refunded; its grants were revoked.",
}
for _state, _text in _ORDER_EVENTS.items():
    _cls = type(f"Order{_state.title().replace('_', '')}", (OrderEvent,), {"__doc__": _text})
    event(f"order.{_state}", description=_text)(_cls)


@event("approval.requested", description="A purchase needs an approver: the money is held until it is decided.")
class ApprovalRequested(Payload, frozen=True):
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
class ApprovalDecided(Payload, frozen=True):
    approval_id: str
    order_id: str
    decision: Literal["approved", "denied", "expired"]
    decided_by: str | None
    note: str | None


@event("budget.threshold_reached", description="A budget's use this period crossed an alert threshold (once each).")
class BudgetThresholdReached(Payload, frozen=True):
    budget_id: str
    name: str
    period: str
    threshold_pct: int
    amount_minor: int
    used_minor: int
    currency: str


@event("statement.finalized", description="A period was closed: the account's bill-back statement is final.")
class StatementFinalized(Payload, frozen=True):
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
class PaymentMethodSaved(Payload, frozen=True):
    user: str
    payment_method: str
    is_default: bool
    brand: str | None
    last4: str | None
