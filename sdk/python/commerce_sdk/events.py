"""Typed payloads of every webhook event the service sends (its catalogue: ``GET /v1/webhook-event-types``).

Generated from the service's event catalogue (do not edit by hand; the service's tests fail when this file and
the catalogue disagree). ``Event.payload`` (commerce_sdk.webhooks) decodes ``data`` into the struct registered
here for the event's type and version. Unknown fields are ignored, so a newer service never breaks this SDK.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec


class Payload(msgspec.Struct, kw_only=True, frozen=True):
    """Base of every event payload."""


class CatalogChange(Payload, frozen=True, kw_only=True):
    kind: str
    action: str
    key: str


class DecisionPayload(Payload, frozen=True, kw_only=True):
    route: Literal['budget', 'card'] | None
    outcome: Literal['auto_approved', 'approval_required', 'blocked']
    reasons: list[str]


class ProvisionItem(Payload, frozen=True, kw_only=True):
    module: str
    quantity: int
    features: list[ProvisionedFeature] = []


class ProvisionedFeature(Payload, frozen=True, kw_only=True):
    key: str
    kind: Literal['boolean', 'limit', 'config']
    limit: int | None = None
    value: str | None = None


class ApprovalDecided(Payload, frozen=True, kw_only=True):
    """An approval request was approved, denied or expired."""

    approval_id: str
    order_id: str
    decision: Literal['approved', 'denied', 'expired']
    decided_by: str | None
    note: str | None


class ApprovalRequested(Payload, frozen=True, kw_only=True):
    """A purchase needs an approver: the money is held until it is decided."""

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


class BudgetThresholdReached(Payload, frozen=True, kw_only=True):
    """A budget's use this period crossed an alert threshold (once each)."""

    budget_id: str
    name: str
    period: str
    threshold_pct: int
    amount_minor: int
    used_minor: int
    currency: str


class CatalogRevisionApplied(Payload, frozen=True, kw_only=True):
    """A new catalog revision was applied (catalog as code)."""

    revision: int
    summary: dict[str, Any]
    changes: list[CatalogChange]


class EntitlementExpired(Payload, frozen=True, kw_only=True):
    """A grant reached its end (sent once by the sweep)."""

    grant_id: str
    user_id: str | None
    module: str
    source: str
    source_ref: str
    ended_at: datetime
    account: str | None = None
    user: str | None = None


class EntitlementGranted(Payload, frozen=True, kw_only=True):
    """A module was granted (purchase, trial, admin or plan)."""

    grant_id: str
    account_id: str
    user_id: str | None
    module: str
    source: str
    source_ref: str
    starts_at: datetime
    ends_at: datetime | None
    seats: int | None
    status: str
    reason: str | None = None
    effective_at: datetime | None = None
    account: str | None = None
    user: str | None = None


class EntitlementRevoked(Payload, frozen=True, kw_only=True):
    """A grant was revoked (now, or at effective_at)."""

    grant_id: str
    account_id: str
    user_id: str | None
    module: str
    source: str
    source_ref: str
    starts_at: datetime
    ends_at: datetime | None
    seats: int | None
    status: str
    reason: str | None = None
    effective_at: datetime | None = None
    account: str | None = None
    user: str | None = None


class SeatAssigned(Payload, frozen=True, kw_only=True):
    """A seat of an account's seat pool was assigned to a user."""

    grant_id: str
    module: str
    user_id: str
    account: str | None = None
    user: str | None = None


class SeatUnassigned(Payload, frozen=True, kw_only=True):
    """A seat was freed."""

    grant_id: str
    module: str
    user_id: str
    account: str | None = None
    user: str | None = None


class EntitlementUnused(Payload, frozen=True, kw_only=True):
    """A paid module (bought by order or import) has not been used by its holder for COMMERCE_UNUSED_ALERT_DAYS
    days (sent once per idle spell).
    """

    grant_id: str
    user_id: str | None
    module: str
    source: str
    starts_at: datetime
    unused_days: int
    detected_at: datetime
    account: str | None = None
    user: str | None = None


class JobFailed(Payload, frozen=True, kw_only=True):
    """A scheduled job failed on its last attempt (the next slot will run it again); an operations alert."""

    job: str
    slot_at: datetime
    attempts: int
    error: str
    failed_at: datetime


class OrderApproved(Payload, frozen=True, kw_only=True):
    """An approver agreed to the purchase."""

    order_id: str
    account: str
    user: str
    state: str
    route: Literal['budget', 'card']
    total_minor: int
    currency: str
    modules: list[str]
    decision: DecisionPayload | None = None
    decided_by: str | None = None
    note: str | None = None
    refunded_minor: int | None = None
    failure_reason: str | None = None
    renewal_of: str | None = None


class OrderCanceled(Payload, frozen=True, kw_only=True):
    """The order was canceled before payment."""

    order_id: str
    account: str
    user: str
    state: str
    route: Literal['budget', 'card']
    total_minor: int
    currency: str
    modules: list[str]
    decision: DecisionPayload | None = None
    decided_by: str | None = None
    note: str | None = None
    refunded_minor: int | None = None
    failure_reason: str | None = None
    renewal_of: str | None = None


class OrderCreated(Payload, frozen=True, kw_only=True):
    """An order was placed from a quote (with the guardrail decision)."""

    order_id: str
    account: str
    user: str
    state: str
    route: Literal['budget', 'card']
    total_minor: int
    currency: str
    modules: list[str]
    decision: DecisionPayload | None = None
    decided_by: str | None = None
    note: str | None = None
    refunded_minor: int | None = None
    failure_reason: str | None = None
    renewal_of: str | None = None


class OrderDenied(Payload, frozen=True, kw_only=True):
    """An approver denied the purchase; held budget was released."""

    order_id: str
    account: str
    user: str
    state: str
    route: Literal['budget', 'card']
    total_minor: int
    currency: str
    modules: list[str]
    decision: DecisionPayload | None = None
    decided_by: str | None = None
    note: str | None = None
    refunded_minor: int | None = None
    failure_reason: str | None = None
    renewal_of: str | None = None


class OrderDisputeClosed(Payload, frozen=True, kw_only=True):
    """A dispute closed in the vendor's favour (or was withdrawn)."""

    order_id: str
    account: str
    user: str
    state: str
    route: Literal['budget', 'card']
    total_minor: int
    currency: str
    modules: list[str]
    decision: DecisionPayload | None = None
    decided_by: str | None = None
    note: str | None = None
    refunded_minor: int | None = None
    failure_reason: str | None = None
    renewal_of: str | None = None
    dispute: str
    status: str


class OrderDisputeLost(Payload, frozen=True, kw_only=True):
    """A dispute was lost: the money went back and access is revoked."""

    order_id: str
    account: str
    user: str
    state: str
    route: Literal['budget', 'card']
    total_minor: int
    currency: str
    modules: list[str]
    decision: DecisionPayload | None = None
    decided_by: str | None = None
    note: str | None = None
    refunded_minor: int | None = None
    failure_reason: str | None = None
    renewal_of: str | None = None
    dispute: str
    status: str


class OrderDisputed(Payload, frozen=True, kw_only=True):
    """The card holder disputed the payment; access is kept until it closes."""

    order_id: str
    account: str
    user: str
    state: str
    route: Literal['budget', 'card']
    total_minor: int
    currency: str
    modules: list[str]
    decision: DecisionPayload | None = None
    decided_by: str | None = None
    note: str | None = None
    refunded_minor: int | None = None
    failure_reason: str | None = None
    renewal_of: str | None = None
    dispute: str
    status: str
    access: str


class OrderExpired(Payload, frozen=True, kw_only=True):
    """The approval request expired; held budget was released."""

    order_id: str
    account: str
    user: str
    state: str
    route: Literal['budget', 'card']
    total_minor: int
    currency: str
    modules: list[str]
    decision: DecisionPayload | None = None
    decided_by: str | None = None
    note: str | None = None
    refunded_minor: int | None = None
    failure_reason: str | None = None
    renewal_of: str | None = None


class OrderFailed(Payload, frozen=True, kw_only=True):
    """The card payment failed; nothing was granted."""

    order_id: str
    account: str
    user: str
    state: str
    route: Literal['budget', 'card']
    total_minor: int
    currency: str
    modules: list[str]
    decision: DecisionPayload | None = None
    decided_by: str | None = None
    note: str | None = None
    refunded_minor: int | None = None
    failure_reason: str | None = None
    renewal_of: str | None = None


class OrderFulfilled(Payload, frozen=True, kw_only=True):
    """The order's modules are granted and provisioning was requested."""

    order_id: str
    account: str
    user: str
    state: str
    route: Literal['budget', 'card']
    total_minor: int
    currency: str
    modules: list[str]
    decision: DecisionPayload | None = None
    decided_by: str | None = None
    note: str | None = None
    refunded_minor: int | None = None
    failure_reason: str | None = None
    renewal_of: str | None = None


class OrderPaid(Payload, frozen=True, kw_only=True):
    """The order is paid (budget captured or card charged)."""

    order_id: str
    account: str
    user: str
    state: str
    route: Literal['budget', 'card']
    total_minor: int
    currency: str
    modules: list[str]
    decision: DecisionPayload | None = None
    decided_by: str | None = None
    note: str | None = None
    refunded_minor: int | None = None
    failure_reason: str | None = None
    renewal_of: str | None = None


class OrderPartiallyRefunded(Payload, frozen=True, kw_only=True):
    """Part of a card order was refunded; access is kept until the whole order is refunded."""

    order_id: str
    account: str
    user: str
    state: str
    route: Literal['budget', 'card']
    total_minor: int
    currency: str
    modules: list[str]
    decision: DecisionPayload | None = None
    decided_by: str | None = None
    note: str | None = None
    refunded_minor: int | None = None
    failure_reason: str | None = None
    renewal_of: str | None = None
    amount_minor: int
    access: str


class OrderPaymentPending(Payload, frozen=True, kw_only=True):
    """The order waits for its card payment."""

    order_id: str
    account: str
    user: str
    state: str
    route: Literal['budget', 'card']
    total_minor: int
    currency: str
    modules: list[str]
    decision: DecisionPayload | None = None
    decided_by: str | None = None
    note: str | None = None
    refunded_minor: int | None = None
    failure_reason: str | None = None
    renewal_of: str | None = None


class OrderRefundFailed(Payload, frozen=True, kw_only=True):
    """A refund returned no money (Stripe refused it, or the bank sent it back): the customer is still owed it;
    the order keeps its state.
    """

    order_id: str
    account: str
    user: str
    state: str
    route: Literal['budget', 'card']
    total_minor: int
    currency: str
    modules: list[str]
    decision: DecisionPayload | None = None
    decided_by: str | None = None
    note: str | None = None
    refunded_minor: int | None = None
    failure_reason: str | None = None
    renewal_of: str | None = None
    amount_minor: int
    status: str
    money_returned: bool = False
    refund: str | None = None
    reason: str | None = None


class OrderRefundPending(Payload, frozen=True, kw_only=True):
    """Stripe accepted a refund but the money is still on its way; the order is unchanged until it succeeds."""

    order_id: str
    account: str
    user: str
    state: str
    route: Literal['budget', 'card']
    total_minor: int
    currency: str
    modules: list[str]
    decision: DecisionPayload | None = None
    decided_by: str | None = None
    note: str | None = None
    refunded_minor: int | None = None
    failure_reason: str | None = None
    renewal_of: str | None = None
    amount_minor: int
    refund: str


class OrderRefunded(Payload, frozen=True, kw_only=True):
    """The order was refunded; its grants were revoked."""

    order_id: str
    account: str
    user: str
    state: str
    route: Literal['budget', 'card']
    total_minor: int
    currency: str
    modules: list[str]
    decision: DecisionPayload | None = None
    decided_by: str | None = None
    note: str | None = None
    refunded_minor: int | None = None
    failure_reason: str | None = None
    renewal_of: str | None = None


class OrderRequiresAction(Payload, frozen=True, kw_only=True):
    """The bank asks the user to authenticate the card payment (3-D Secure)."""

    order_id: str
    account: str
    user: str
    state: str
    route: Literal['budget', 'card']
    total_minor: int
    currency: str
    modules: list[str]
    decision: DecisionPayload | None = None
    decided_by: str | None = None
    note: str | None = None
    refunded_minor: int | None = None
    failure_reason: str | None = None
    renewal_of: str | None = None


class PaymentOrphaned(Payload, frozen=True, kw_only=True):
    """A card payment succeeded for an order that was already canceled or expired; reconcile refunds it."""

    order_id: str
    state: str
    payment_intent: str | None
    amount_minor: int
    currency: str


class PaymentMethodSaved(Payload, frozen=True, kw_only=True):
    """A user saved a card (through the widget's SetupIntent)."""

    user: str
    payment_method: str
    is_default: bool
    brand: str | None
    last4: str | None


class PriceChangeScheduled(Payload, frozen=True, kw_only=True):
    """A price an owner pays will change at migrate_existing_at: the per-owner notice, sent once by the
    price_migrations job when the date is COMMERCE_PRICE_NOTICE_DAYS away (or nearer).
    """

    revision: int
    module: str | None
    slot: str | None
    user_id: str | None
    from_price_id: str
    to_version: int | None
    currency: str | None
    amount_minor_before: int | None
    amount_minor_after: int | None
    migrate_existing_at: datetime | None
    holding: str | None = None


class PriceMigrationCanceled(Payload, frozen=True, kw_only=True):
    """A scheduled price migration was removed before its date (by the vendor's cancel or a catalog revision
    without the date): owners keep the version they pay.
    """

    revision: int
    module: str
    slot: str
    version: int | None
    actor: str


class PriceMigrationScheduled(Payload, frozen=True, kw_only=True):
    """A catalog revision scheduled existing owners of older versions of a price line to move to a new version
    at migrate_existing_at (each owner moves at its first renewal from then on).
    """

    revision: int
    module: str
    slot: str
    to_version: int | None
    currency: str | None
    amount_minor_after: int | None
    migrate_existing_at: datetime
    affected_owners: int


class ProvisionAcknowledged(Payload, frozen=True, kw_only=True):
    """The vendor's app confirmed it switched the order's modules on."""

    order_id: str
    account: str
    user: str
    state: str
    route: Literal['budget', 'card']
    total_minor: int
    currency: str
    modules: list[str]
    decision: DecisionPayload | None = None
    decided_by: str | None = None
    note: str | None = None
    refunded_minor: int | None = None
    failure_reason: str | None = None
    renewal_of: str | None = None


class ProvisionFailed(Payload, frozen=True, kw_only=True):
    """The vendor's app could not switch the modules on (the note says why)."""

    order_id: str
    account: str
    user: str
    state: str
    route: Literal['budget', 'card']
    total_minor: int
    currency: str
    modules: list[str]
    decision: DecisionPayload | None = None
    decided_by: str | None = None
    note: str | None = None
    refunded_minor: int | None = None
    failure_reason: str | None = None
    renewal_of: str | None = None


class ProvisionRequested(Payload, frozen=True, kw_only=True):
    """An order was fulfilled: switch on what it bought in your app, then acknowledge with POST
    /v1/orders/{order_id}/provisioned (or report a failure with a reason).
    """

    order_id: str
    account_id: str
    account: str
    items: list[ProvisionItem]
    requested_at: datetime
    user: str | None = None


class RenewalFailed(Payload, frozen=True, kw_only=True):
    """A renewal could not be paid: the subscription is past due until the next attempt, or ends when none is
    left (next_attempt_at null).
    """

    subscription_id: str
    order_id: str
    module: str
    route: Literal['budget', 'card']
    seats: int
    status: Literal['active', 'renewing', 'past_due', 'ended', 'canceled']
    current_period_start: str
    current_period_end: str
    renewal_order_id: str
    attempt: int
    reason: str
    grace_until: str
    next_attempt_at: str | None


class RenewalSucceeded(Payload, frozen=True, kw_only=True):
    """A subscription renewed: the renewal order is paid, the period advanced."""

    subscription_id: str
    order_id: str
    module: str
    route: Literal['budget', 'card']
    seats: int
    status: Literal['active', 'renewing', 'past_due', 'ended', 'canceled']
    current_period_start: str
    current_period_end: str
    renewal_order_id: str
    total_minor: int
    currency: str


class StatementFinalized(Payload, frozen=True, kw_only=True):
    """A period was closed: the account's bill-back statement is final."""

    statement_id: str
    account: str
    period: str
    currency: str
    captured_minor: int
    refunded_minor: int
    total_minor: int
    orders: int


class StatementInvoiced(Payload, frozen=True, kw_only=True):
    """A closed statement was sent as a Stripe invoice."""

    statement_id: str
    period: str
    invoice: str
    total_minor: int
    currency: str
    hosted_invoice_url: str | None
    days_until_due: int


class StatementPaid(Payload, frozen=True, kw_only=True):
    """The statement's invoice was paid."""

    statement_id: str
    period: str
    invoice: str
    status: Literal['paid']


class StatementPaymentFailed(Payload, frozen=True, kw_only=True):
    """Collecting the statement's invoice failed."""

    statement_id: str
    period: str
    invoice: str
    status: Literal['payment_failed']


class StatementVoided(Payload, frozen=True, kw_only=True):
    """The statement's invoice was voided."""

    statement_id: str
    period: str
    invoice: str
    status: Literal['void']


class SubscriptionCanceled(Payload, frozen=True, kw_only=True):
    """A subscription was canceled (by an admin, a refund or a lost dispute)."""

    subscription_id: str
    order_id: str
    module: str
    route: Literal['budget', 'card']
    seats: int
    status: Literal['active', 'renewing', 'past_due', 'ended', 'canceled']
    current_period_start: str
    current_period_end: str
    reason: str


class SubscriptionEnded(Payload, frozen=True, kw_only=True):
    """A subscription stopped renewing (its renewals could not be paid)."""

    subscription_id: str
    order_id: str
    module: str
    route: Literal['budget', 'card']
    seats: int
    status: Literal['active', 'renewing', 'past_due', 'ended', 'canceled']
    current_period_start: str
    current_period_end: str
    reason: str


class SubscriptionPriceMigrated(Payload, frozen=True, kw_only=True):
    """A scheduled price migration took effect at a renewal: the subscription now pays the newer price version."""

    subscription_id: str
    order_id: str
    module: str
    route: Literal['budget', 'card']
    seats: int
    status: Literal['active', 'renewing', 'past_due', 'ended', 'canceled']
    current_period_start: str
    current_period_end: str
    from_price_id: str
    to_price_id: str
    to_version: int
    unit_amount_minor_before: int
    unit_amount_minor_after: int


class SubscriptionUpdated(Payload, frozen=True, kw_only=True):
    """A subscription's seats changed."""

    subscription_id: str
    order_id: str
    module: str
    route: Literal['budget', 'card']
    seats: int
    status: Literal['active', 'renewing', 'past_due', 'ended', 'canceled']
    current_period_start: str
    current_period_end: str
    actor: str


class TrialConverted(Payload, frozen=True, kw_only=True):
    """A trialed module was bought."""

    trial_id: str
    user_id: str | None
    module: str
    converted_at: datetime
    days_to_convert: int
    account: str | None = None
    user: str | None = None


class TrialEnded(Payload, frozen=True, kw_only=True):
    """A trial ended (converted or not)."""

    trial_id: str
    user_id: str | None
    module: str
    ended_at: datetime
    converted: bool
    account: str | None = None
    user: str | None = None


class TrialEnding(Payload, frozen=True, kw_only=True):
    """A trial ends in a few days (sent once, COMMERCE_TRIAL_ENDING_DAYS before)."""

    trial_id: str
    user_id: str | None
    module: str
    ends_at: datetime
    days_left: int
    account: str | None = None
    user: str | None = None


class TrialStarted(Payload, frozen=True, kw_only=True):
    """A trial began."""

    trial_id: str
    user_id: str | None
    module: str
    scope: str
    grant_id: str
    started_at: datetime
    ends_at: datetime
    account: str | None = None
    user: str | None = None


class UsageCharged(Payload, frozen=True, kw_only=True):
    """A closed period's usage of a metered module was charged (kind period), or late usage of an earlier period
    was charged in a later one (kind adjustment): a statement line on the budget route, a Stripe invoice item on
    the card route.
    """

    charge_id: str
    account: str
    user: str
    module: str
    route: Literal['budget', 'card']
    kind: Literal['period', 'adjustment']
    usage_period: str
    billed_period: str
    price_id: str
    quantity: int
    quantity_before: int
    amount_minor: int
    currency: str


class UsageLimitNear(Payload, frozen=True, kw_only=True):
    """A user has used 80 % or more of a limit in the current period (sent once per user, feature and period)."""

    user_id: str
    feature: str
    used: int
    limit: int
    threshold_pct: int
    period_start: datetime
    period_end: datetime
    account: str | None = None
    user: str | None = None


class WebhookEndpointDisabled(Payload, frozen=True, kw_only=True):
    """A webhook endpoint was disabled: automatically after failing continuously, or by the vendor."""

    endpoint_id: str
    url: str
    reason: Literal['failing', 'manual']
    disabled_at: datetime
    failing_since: datetime | None = None
    consecutive_failures: int = 0


EVENT_TYPES: dict[tuple[str, int], type[Payload]] = {
    ('approval.decided', 1): ApprovalDecided,
    ('approval.requested', 1): ApprovalRequested,
    ('budget.threshold_reached', 1): BudgetThresholdReached,
    ('catalog.revision_applied', 1): CatalogRevisionApplied,
    ('entitlement.expired', 1): EntitlementExpired,
    ('entitlement.granted', 1): EntitlementGranted,
    ('entitlement.revoked', 1): EntitlementRevoked,
    ('entitlement.seat_assigned', 1): SeatAssigned,
    ('entitlement.seat_unassigned', 1): SeatUnassigned,
    ('entitlement.unused', 1): EntitlementUnused,
    ('job.failed', 1): JobFailed,
    ('order.approved', 1): OrderApproved,
    ('order.canceled', 1): OrderCanceled,
    ('order.created', 1): OrderCreated,
    ('order.denied', 1): OrderDenied,
    ('order.dispute_closed', 1): OrderDisputeClosed,
    ('order.dispute_lost', 1): OrderDisputeLost,
    ('order.disputed', 1): OrderDisputed,
    ('order.expired', 1): OrderExpired,
    ('order.failed', 1): OrderFailed,
    ('order.fulfilled', 1): OrderFulfilled,
    ('order.paid', 1): OrderPaid,
    ('order.partially_refunded', 1): OrderPartiallyRefunded,
    ('order.payment_pending', 1): OrderPaymentPending,
    ('order.refund_failed', 1): OrderRefundFailed,
    ('order.refund_pending', 1): OrderRefundPending,
    ('order.refunded', 1): OrderRefunded,
    ('order.requires_action', 1): OrderRequiresAction,
    ('payment.orphaned', 1): PaymentOrphaned,
    ('payment_method.saved', 1): PaymentMethodSaved,
    ('price.change_scheduled', 1): PriceChangeScheduled,
    ('price.migration_canceled', 1): PriceMigrationCanceled,
    ('price.migration_scheduled', 1): PriceMigrationScheduled,
    ('provision.acknowledged', 1): ProvisionAcknowledged,
    ('provision.failed', 1): ProvisionFailed,
    ('provision.requested', 1): ProvisionRequested,
    ('renewal.failed', 1): RenewalFailed,
    ('renewal.succeeded', 1): RenewalSucceeded,
    ('statement.finalized', 1): StatementFinalized,
    ('statement.invoiced', 1): StatementInvoiced,
    ('statement.paid', 1): StatementPaid,
    ('statement.payment_failed', 1): StatementPaymentFailed,
    ('statement.void', 1): StatementVoided,
    ('subscription.canceled', 1): SubscriptionCanceled,
    ('subscription.ended', 1): SubscriptionEnded,
    ('subscription.price_migrated', 1): SubscriptionPriceMigrated,
    ('subscription.updated', 1): SubscriptionUpdated,
    ('trial.converted', 1): TrialConverted,
    ('trial.ended', 1): TrialEnded,
    ('trial.ending', 1): TrialEnding,
    ('trial.started', 1): TrialStarted,
    ('usage.charged', 1): UsageCharged,
    ('usage.limit_near', 1): UsageLimitNear,
    ('webhook_endpoint.disabled', 1): WebhookEndpointDisabled,
}
