"""HTTP contract of budgets, the ledger and guardrails."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from app.schemas import Currency, ExternalId, Input, Name, Output, Slug
from billing.domain.guardrails import GuardrailPolicy

AmountMinor = Annotated[int, Meta(ge=0, le=10**12, description="Integer minor units (cents for USD)")]
AnchorDay = Annotated[int, Meta(ge=1, le=28)]


class BudgetCreate(Input):
    name: Name
    currency: Currency
    amount_minor: AmountMinor
    cost_center: Slug | None = None
    anchor_day: AnchorDay = 1


class BudgetUpdate(Input):
    name: Name | None = None
    amount_minor: AmountMinor | None = None


class BudgetRead(Output, frozen=True):
    id: str
    name: str
    cost_center: str | None
    currency: str
    amount_minor: int
    anchor_day: int
    period: str
    period_starts_at: datetime
    period_ends_at: datetime
    period_amount_minor: int
    reserved_minor: int
    captured_minor: int
    remaining_minor: int
    used_pct: int


class BudgetList(Output, frozen=True):
    data: list[BudgetRead]


class LedgerEntryRead(Output, frozen=True):
    id: int
    period: str
    kind: str
    amount_minor: int
    currency: str
    order_id: str
    hold_id: str
    occurred_at: datetime


class LedgerPage(Output, frozen=True):
    data: list[LedgerEntryRead]
    next_cursor: str | None


class GuardrailsRead(Output, frozen=True):
    version: int
    policy: GuardrailPolicy


class GuardrailsImport(Input):
    toml: Annotated[str, Meta(max_length=100_000, pattern=r"^[^\x00]*$")]


ModuleKey = Annotated[str, Meta(min_length=1, max_length=60, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
Note = Annotated[str, Meta(max_length=2000, pattern=r"^[^\x00]*$")]


class QuoteItemIn(Input):
    module: ModuleKey
    quantity: Annotated[int, Meta(ge=1, le=100_000)] = 1
    interval: Literal["month", "year"] | None = None


class QuoteCreate(Input):
    """Quote modules for a user (an end user's session token may only quote for itself)."""

    user: ExternalId
    items: Annotated[list[QuoteItemIn], Meta(min_length=1, max_length=30)]
    include_requirements: bool = False


class MeteredTierRead(Output, frozen=True):
    up_to: Annotated[int | None, Meta(description="The tier's last unit (null: unbounded)")]
    unit_amount_minor: Annotated[int, Meta(description="Per per_units units")]
    flat_amount_minor: int


class MeteredTermsRead(Output, frozen=True):
    """How a metered module is billed: per period, on the units used (nothing is due at purchase)."""

    unit: str
    interval: str
    tier_mode: Literal["graduated", "volume"]
    included_quantity: int
    per_units: int
    tiers: list[MeteredTierRead]
    commitment_minor: Annotated[int, Meta(description="Prepaid each period; usage draws it down first")]
    description: str


class QuoteLineRead(Output, frozen=True):
    module: str
    name: str
    category: str
    price_id: str
    price_version: int
    model: str
    interval: str | None
    per_seat: bool
    quantity: int
    unit_amount_minor: int
    full_period_minor: int
    prorated_minor: int
    discount_minor: int
    total_minor: int
    period_start: str | None
    period_end: str | None
    proration: str
    trial_days: int | None
    metered: MeteredTermsRead | None = None
    tax_code: str | None = None
    tax_behavior: Literal["exclusive", "inclusive"] = "exclusive"
    tax_minor: Annotated[int | None, Meta(description="Stripe Tax's tax on this line (None: not computed)")] = None


class DecisionRead(Output, frozen=True):
    route: Literal["budget", "card"] | None
    outcome: Literal["auto_approved", "approval_required", "blocked"]
    reasons: list[str]


class TaxLineRead(Output, frozen=True):
    """Tax of one jurisdiction at one rate."""

    jurisdiction: str
    country: str
    state: str | None
    level: str
    rate: Annotated[str, Meta(description="Percentage as Stripe Tax gives it, e.g. \"19.0\"")]
    taxability: Annotated[str, Meta(description="standard_rated, reverse_charge, customer_exempt, "
                                                "not_subject_to_tax, not_collecting, ...")]
    taxable_minor: int
    tax_minor: int


class QuoteTaxRead(Output, frozen=True):
    """How tax was worked out: by Stripe Tax (``computed``) or not at all (``not_computed``, with the reason)."""

    status: Literal["computed", "not_computed"]
    reason: str | None
    calculation_id: str | None
    breakdown: list[TaxLineRead]
    reverse_charge: bool
    exempt: bool


class QuoteRead(Output, frozen=True):
    id: str
    account: str
    user: str
    currency: str
    lines: list[QuoteLineRead]
    subtotal_minor: int
    discount_minor: int
    total_minor: int
    unmet_requires: list[str]
    decision: DecisionRead
    status: str
    created_at: datetime
    expires_at: datetime
    net_minor: Annotated[int | None, Meta(description="Without tax (None: tax not computed)")] = None
    tax_minor: Annotated[int | None, Meta(description="Tax, all jurisdictions (None: not computed)")] = None
    gross_minor: Annotated[int | None, Meta(description="With tax: what a card is charged (None: not computed)")] = None
    tax: QuoteTaxRead | None = None


class OrderCreate(Input):
    quote_id: Annotated[str, Meta(pattern=r"^quo_[0-9a-z]{26}$")]
    reason: Note | None = None


class OrderRead(Output, frozen=True):
    id: str
    account: str
    user: str
    quote_id: str
    route: str
    state: str
    currency: str
    total_minor: int
    refunded_minor: int
    lines: list[QuoteLineRead]
    reason: str | None
    failure_reason: str | None
    provision_status: str | None
    provision_note: str | None
    approval_id: str | None
    created_at: datetime
    updated_at: datetime
    paid_at: datetime | None
    fulfilled_at: datetime | None
    payment: PaymentRead | None = None
    subscription_id: Annotated[str | None, Meta(description="Set on renewal orders")] = None
    dispute_status: Annotated[str | None, Meta(description="Stripe's status of a dispute on the card payment")] = None
    tax_minor: Annotated[int | None, Meta(description="Card route: the tax in total_minor (the gross charged)")] = None
    tax_transaction: Annotated[str | None, Meta(description="Stripe Tax's transaction once the card paid")] = None


class PaymentRead(Output, frozen=True):
    """The latest card payment attempt of an order (card route)."""

    attempt: int
    status: Literal["pending", "succeeded", "requires_action", "failed"]
    payment_intent: str | None
    client_secret: Annotated[str | None, Meta(
        description="While status is requires_action: confirm the PaymentIntent on-session with Stripe.js")]
    failure_reason: str | None


class PayIn(Input):
    payment_method_id: Annotated[str, Meta(
        pattern=r"^pm_[A-Za-z0-9_]{1,100}$", max_length=103,
        description="A saved card (default: the user's default card)"),
    ] | None = None


class RefundIn(Input):
    note: Note | None = None
    amount_minor: Annotated[int, Meta(ge=1, le=10**12, description=(
        "Card orders: refund this much (default: all that is left). Budget orders are refunded in full.")),
    ] | None = None


class SubscriptionRead(Output, frozen=True):
    id: str
    order_id: str
    user: str
    module: str
    route: str
    interval: str
    per_seat: bool
    seats: int
    unit_amount_minor: int
    currency: str
    status: Literal["active", "renewing", "past_due", "ended", "canceled"]
    current_period_start: datetime
    current_period_end: datetime
    grace_until: datetime | None
    next_attempt_at: datetime | None
    dunning_attempts: int
    last_order_id: str | None


class SubscriptionList(Output, frozen=True):
    data: list[SubscriptionRead]


class SubscriptionUpdate(Input):
    seats: Annotated[int, Meta(ge=1, le=100_000, description="Seats charged from the next renewal on")] | None = None
    cancel: Annotated[bool, Meta(description="Stop renewing; access runs to the end of the period")] = False


class OrderPage(Output, frozen=True):
    data: list[OrderRead]
    next_cursor: str | None


class NoteIn(Input):
    note: Note | None = None


class ProvisionAck(Input):
    status: Literal["done", "failed"] = "done"
    note: Note | None = None


class ApprovalRead(Output, frozen=True):
    id: str
    order_id: str
    account: str
    requester: str
    reason: str | None
    why: list[str]
    approver_roles: list[str]
    state: str
    total_minor: int
    currency: str
    modules: list[str]
    decided_by: str | None
    decision_note: str | None
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    temporary_access_until: datetime | None
    requester_name: str | None  # the requester's display name, when the vendor gave one
    module_names: list[str]  # the modules' catalog names, in the order of ``modules``


class ApprovalList(Output, frozen=True):
    data: list[ApprovalRead]


PeriodKey = Annotated[str, Meta(min_length=7, max_length=7, pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$",
                                 description="A period, YYYY-MM")]


class SimulateRequest(Input):
    policy: GuardrailPolicy
    days: Annotated[int, Meta(ge=1, le=366)] = 30


class SimulatedChange(Output, frozen=True):
    order_id: str
    user: str
    total_minor: int
    was: str | None
    would_be: str
    reasons: list[str]


class SimulationRead(Output, frozen=True):
    days: int
    requests: int
    auto_approved: int
    approval_required: int
    blocked: int
    spend_auto_approved_minor: int
    spend_approval_required_minor: int
    spend_blocked_minor: int
    changed: list[SimulatedChange]


class CloseRequest(Input):
    period: PeriodKey


class StatementLineRead(Output, frozen=True):
    order_id: str
    modules: list[str]
    currency: str
    captured_minor: int
    refunded_minor: int
    net_minor: int
    kind: Literal["order", "usage", "usage_adjustment"] = "order"
    description: str | None = None
    tax_minor: Annotated[int | None, Meta(description="The invoice's tax on this line (None: not invoiced with "
                                                      "tax)")] = None


class StatementRead(Output, frozen=True):
    id: str
    account: str
    period: str
    currency: str
    lines: list[StatementLineRead]
    captured_minor: int
    refunded_minor: int
    total_minor: int
    status: str
    stripe_invoice_id: str | None
    created_at: datetime
    tax_minor: Annotated[int | None, Meta(description="The invoice's tax, Stripe Tax's automatic tax (None: not "
                                                      "invoiced with tax)")] = None
    reverse_charge: Annotated[bool, Meta(description="The invoice says reverse charge: the customer accounts for "
                                                     "the VAT")] = False


class CloseRead(Output, frozen=True):
    period: str
    closed: list[StatementRead]
    already_closed: list[StatementRead]
    still_open: list[str]


class StatementList(Output, frozen=True):
    data: list[StatementRead]


class CreditRowRead(Output, frozen=True):
    """One group of the period's credit lines; ``reversal`` rows are refunds and lost disputes (negative)."""

    team: str | None
    rep: str | None
    motion: str
    currency: str
    bookings: int
    amount_minor: int
    kind: Literal["booking", "reversal"] = "booking"


class CreditReport(Output, frozen=True):
    period: str
    rows: list[CreditRowRead]


class TierChargeRead(Output, frozen=True):
    up_to: int | None
    quantity: int
    unit_amount_minor: int
    flat_amount_minor: int


class UsageChargeLineRead(Output, frozen=True):
    """One metered plan's usage so far in its current period and what it would bill if the period closed now."""

    plan_id: str
    module: str
    user: str
    route: Literal["budget", "card"]
    price_id: str
    price_version: int
    unit: str
    tier_mode: str
    period_start: datetime
    period_end: datetime
    quantity: int
    included_quantity: int
    billable_quantity: int
    usage_minor: int
    commitment_minor: int
    drawn_minor: Annotated[int, Meta(description="The part of the usage charge paid from the commitment")]
    overage_minor: Annotated[int, Meta(description="The usage charge beyond the commitment")]
    amount_minor: Annotated[int, Meta(description="Commitment plus overage: what the period bills so far")]
    tiers: list[TierChargeRead]


class UserUsageChargeRead(Output, frozen=True):
    user: str
    amount_minor: int


class UsageChargesRead(Output, frozen=True):
    """The running usage charges of an account's metered plans, per plan, per user and in total."""

    account: str
    currency: str
    as_of: datetime
    total_minor: int
    users: list[UserUsageChargeRead]
    lines: list[UsageChargeLineRead]
