"""Billing's tables: budgets and their ledger, guardrail versions, quotes, orders, approvals, sales credit,
statements, card payments and refunds, subscriptions, and the inbound Stripe events.

Status columns are typed with the Literals of billing.domain; JSONB columns hold typed msgspec values.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKeyConstraint,
    Identity,
    Index,
    String,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import HOT_UPDATES, Base
from app.types import StructJSONB
from billing.domain.credit import CreditKind, Motion
from billing.domain.guardrails import GuardrailPolicy, Route
from billing.domain.ledger import HoldState, LedgerKind
from billing.domain.orders import ApprovalState, OrderState, PaymentStatus, ProvisionStatus, RefundStatus
from billing.domain.periods import Interval
from billing.domain.quotes import QuoteDecision, QuoteLine, QuoteStatus
from billing.domain.statements import StatementLine, StatementStatus
from billing.domain.subscriptions import SubscriptionStatus
from billing.domain.tax import QuoteTax


class Budget(Base):
    """A central funding source of an account (optionally of one cost center), renewed every period."""

    __tablename__ = "budgets"
    __table_args__ = (
        ForeignKeyConstraint(["account_id"], ["accounts.account_id"]),
        Index("uq_budgets_account_cost_center", "account_id", text("coalesce(cost_center, '')"), unique=True),
        CheckConstraint("amount_minor >= 0", name="amount_non_negative"),
        CheckConstraint("anchor_day BETWEEN 1 AND 28", name="anchor_day_range"),
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    budget_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    cost_center: Mapped[str | None] = mapped_column(String(120))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int]
    anchor_day: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class BudgetPeriod(Base):
    """The balance of one budget in one period. The CHECK is the invariant's last line of defence."""

    __tablename__ = "budget_periods"
    __table_args__ = (
        ForeignKeyConstraint(["account_id", "budget_id"], ["budgets.account_id", "budgets.budget_id"]),
        CheckConstraint("reserved_minor >= 0 AND captured_minor >= 0 AND reserved_minor + captured_minor <= "
                        "amount_minor", name="within_amount"),
        HOT_UPDATES,
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    budget_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)  # YYYY-MM of the period start
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    amount_minor: Mapped[int]
    reserved_minor: Mapped[int] = mapped_column(default=0)
    captured_minor: Mapped[int] = mapped_column(default=0)


class BudgetHold(Base):
    """A two-phase hold: pending until posted (captured) or voided (released). One per order."""

    __tablename__ = "budget_holds"
    __table_args__ = (
        ForeignKeyConstraint(["account_id", "budget_id", "period"],
                             ["budget_periods.account_id", "budget_periods.budget_id", "budget_periods.period"]),
        Index("uq_budget_holds_account_id_order_id", "account_id", "order_id", unique=True),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    hold_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    budget_id: Mapped[str] = mapped_column(String(40))
    period: Mapped[str] = mapped_column(String(7))
    order_id: Mapped[str] = mapped_column(String(40))
    amount_minor: Mapped[int]
    refunded_minor: Mapped[int] = mapped_column(default=0)
    state: Mapped[HoldState] = mapped_column(String(16))
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]


class LedgerEntry(Base):
    """Append-only: reserve, capture, release, refund. History is never edited; corrections are new entries."""

    __tablename__ = "budget_ledger"
    __table_args__ = (
        ForeignKeyConstraint(["account_id", "budget_id", "period"],
                             ["budget_periods.account_id", "budget_periods.budget_id", "budget_periods.period"]),
        Index("ix_budget_ledger_account_id_budget_id_period", "account_id", "budget_id", "period"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    entry_id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    budget_id: Mapped[str] = mapped_column(String(40))
    period: Mapped[str] = mapped_column(String(7))
    kind: Mapped[LedgerKind] = mapped_column(String(16))
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    hold_id: Mapped[str] = mapped_column(String(40))
    order_id: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime]


class BudgetAlert(Base):
    """A threshold alert already sent for a budget period (each fires once per period)."""

    __tablename__ = "budget_alerts"
    __table_args__ = (
        ForeignKeyConstraint(["account_id", "budget_id", "period"],
                             ["budget_periods.account_id", "budget_periods.budget_id", "budget_periods.period"]),
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    budget_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    threshold_pct: Mapped[int] = mapped_column(primary_key=True)
    reached_at: Mapped[datetime]


class GuardrailVersion(Base):
    """Every change of an account's guardrails is a new version; the highest is in force."""

    __tablename__ = "guardrail_versions"
    __table_args__ = (ForeignKeyConstraint(["account_id"], ["accounts.account_id"]),)

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    policy: Mapped[GuardrailPolicy] = mapped_column(StructJSONB(GuardrailPolicy))
    author: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime]


class Quote(Base):
    """An auto-quote: priced lines locked until ``expires_at``, with the guardrail decision at quote time."""

    __tablename__ = "quotes"
    __table_args__ = (
        ForeignKeyConstraint(["account_id", "user_id"], ["users.account_id", "users.user_id"]),
        Index("ix_quotes_account_id_created_at", "account_id", "created_at"),
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    quote_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    lines: Mapped[list[QuoteLine]] = mapped_column(StructJSONB(list[QuoteLine]))
    subtotal_minor: Mapped[int]
    discount_minor: Mapped[int]
    total_minor: Mapped[int]
    unmet_requires: Mapped[list[str]] = mapped_column(JSONB)
    decision: Mapped[QuoteDecision] = mapped_column(StructJSONB(QuoteDecision))
    status: Mapped[QuoteStatus] = mapped_column(String(16))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    # Stripe Tax (none: not computed, the reason in ``tax``); the calculation is recorded when a card pays it
    tax: Mapped[QuoteTax | None] = mapped_column(StructJSONB(QuoteTax), default=None)
    tax_calculation_id: Mapped[str | None] = mapped_column(String(120), default=None)
    tax_minor: Mapped[int | None] = mapped_column(default=None)
    gross_minor: Mapped[int | None] = mapped_column(default=None)


class Order(Base):
    """One purchase, on the budget or the card route, moved only by the state machine in billing.domain.orders."""

    __tablename__ = "orders"
    __table_args__ = (
        ForeignKeyConstraint(["account_id", "quote_id"], ["quotes.account_id", "quotes.quote_id"]),
        ForeignKeyConstraint(["account_id", "user_id"], ["users.account_id", "users.user_id"]),
        Index("uq_orders_account_id_quote_id", "account_id", "quote_id", unique=True),
        Index("ix_orders_account_id_user_id_created_at", "account_id", "user_id", "created_at"),
        Index("ix_orders_state_updated_at", "state", "updated_at"),
        Index("uq_orders_account_id_subscription_id_renewal_period", "account_id", "subscription_id",
              "renewal_period", unique=True, postgresql_where=text("subscription_id IS NOT NULL")),
        Index("ix_orders_payment_intent_id", "payment_intent_id",
              postgresql_where=text("payment_intent_id IS NOT NULL")),
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    quote_id: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[str] = mapped_column(String(40))
    route: Mapped[Route] = mapped_column(String(16))
    state: Mapped[OrderState] = mapped_column(String(24))
    currency: Mapped[str] = mapped_column(String(3))
    total_minor: Mapped[int]
    refunded_minor: Mapped[int] = mapped_column(default=0)
    lines: Mapped[list[QuoteLine]] = mapped_column(StructJSONB(list[QuoteLine]))
    budget_id: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(String(2000))
    failure_reason: Mapped[str | None] = mapped_column(String(2000))
    payment_intent_id: Mapped[str | None] = mapped_column(String(120))
    provision_status: Mapped[ProvisionStatus | None] = mapped_column(String(16))
    provision_note: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    paid_at: Mapped[datetime | None]
    fulfilled_at: Mapped[datetime | None]
    subscription_id: Mapped[str | None] = mapped_column(String(40), default=None)  # set on renewal orders
    renewal_period: Mapped[str | None] = mapped_column(String(32), default=None)  # the renewed period's start
    dispute_id: Mapped[str | None] = mapped_column(String(120), default=None)
    dispute_status: Mapped[str | None] = mapped_column(String(32), default=None)  # Stripe's dispute status
    # tax (card route: total_minor is the gross charged, tax_minor of it is tax; budget route: the invoice taxes)
    tax_calculation_id: Mapped[str | None] = mapped_column(String(120), default=None)
    tax_minor: Mapped[int | None] = mapped_column(default=None)
    tax_transaction_id: Mapped[str | None] = mapped_column(String(120), default=None)


class Approval(Base):
    """A request for an approver's agreement; its money is held until decided or expired."""

    __tablename__ = "approvals"
    __table_args__ = (
        ForeignKeyConstraint(["account_id", "order_id"], ["orders.account_id", "orders.order_id"]),
        Index("uq_approvals_account_id_order_id", "account_id", "order_id", unique=True),
        Index("ix_approvals_state_expires_at", "state", "expires_at"),
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    approval_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40))
    requester_user_id: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(String(2000))
    reasons: Mapped[list[str]] = mapped_column(JSONB)  # why approval is needed
    approver_roles: Mapped[list[str]] = mapped_column(JSONB)
    state: Mapped[ApprovalState] = mapped_column(String(16))
    decided_by: Mapped[str | None] = mapped_column(String(120))
    decision_note: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    temporary_access_until: Mapped[datetime | None]


class SalesCredit(Base):
    """A booking credited to a motion and to the account's owning team and rep; a refund or a lost dispute adds
    a ``reversal`` row (negative amount, in the period it happened, ``reference`` naming what reversed it)."""

    __tablename__ = "sales_credits"
    __table_args__ = (
        ForeignKeyConstraint(["account_id", "order_id"], ["orders.account_id", "orders.order_id"]),
        Index("uq_sales_credits_account_id_order_id_module", "account_id", "order_id", "module", "kind", "reference",
              unique=True),
        Index("ix_sales_credits_period", "period"),
        Index("ix_sales_credits_account_id_category", "account_id", "category"),  # land or expand: a probe
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    credit_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40))
    module: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(100))
    motion: Mapped[Motion] = mapped_column(String(16))
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    team: Mapped[str | None] = mapped_column(String(200))
    rep: Mapped[str | None] = mapped_column(String(200))
    period: Mapped[str] = mapped_column(String(7))
    booked_at: Mapped[datetime]
    kind: Mapped[CreditKind] = mapped_column(String(16), server_default="booking", default="booking")
    reference: Mapped[str] = mapped_column(String(120), server_default="", default="")


class Statement(Base):
    """The bill-back statement of one account for one period: its budget captures and refunds."""

    __tablename__ = "statements"
    __table_args__ = (
        ForeignKeyConstraint(["account_id"], ["accounts.account_id"]),
        Index("uq_statements_account_id_period", "account_id", "period", unique=True),
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    statement_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    period: Mapped[str] = mapped_column(String(7))
    currency: Mapped[str] = mapped_column(String(3))
    lines: Mapped[list[StatementLine]] = mapped_column(StructJSONB(list[StatementLine]))
    captured_minor: Mapped[int]
    refunded_minor: Mapped[int]
    total_minor: Mapped[int]
    status: Mapped[StatementStatus] = mapped_column(String(16))
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime]
    tax_minor: Mapped[int | None] = mapped_column(default=None)  # the invoice's tax (None: not invoiced yet)
    reverse_charge: Mapped[bool] = mapped_column(default=False, server_default="false")


class CardPayment(Base):
    """One attempt to charge a card order off-session. Written before Stripe is called (status ``pending``)
    with the exact parameters, so a retry or reconcile replays the same request under the same idempotency
    key and Stripe answers with the first outcome instead of charging again."""

    __tablename__ = "card_payments"
    __table_args__ = (
        ForeignKeyConstraint(["account_id", "order_id"], ["orders.account_id", "orders.order_id"]),
        Index("uq_card_payments_account_id_order_id_attempt", "account_id", "order_id", "attempt", unique=True),
        # per account, like every unique key of a tenant table (distributable by account_id); the key embeds the
        # order id, so it is unique deployment-wide all the same
        Index("uq_card_payments_account_id_idempotency_key", "account_id", "idempotency_key", unique=True),
        Index("ix_card_payments_payment_intent_id", "payment_intent_id",
              postgresql_where=text("payment_intent_id IS NOT NULL")),
        Index("ix_card_payments_status_created_at", "status", "created_at"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    payment_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40))
    attempt: Mapped[int]
    idempotency_key: Mapped[str] = mapped_column(String(255))
    customer_id: Mapped[str] = mapped_column(String(120))
    payment_method_id: Mapped[str] = mapped_column(String(120))
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[PaymentStatus] = mapped_column(String(24))
    payment_intent_id: Mapped[str | None] = mapped_column(String(120))
    client_secret: Mapped[str | None] = mapped_column(String(300))
    failure_code: Mapped[str | None] = mapped_column(String(80))
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    # the order's Stripe Tax calculation, sent in the PaymentIntent's metadata so its success event can record
    # the tax transaction too (a payment completed after 3-D Secure)
    tax_calculation_id: Mapped[str | None] = mapped_column(String(120), default=None)


class OrderRefund(Base):
    """A refund of a card order through Stripe, recorded ``pending`` before the call (same replay rule)."""

    __tablename__ = "order_refunds"
    __table_args__ = (
        ForeignKeyConstraint(["account_id", "order_id"], ["orders.account_id", "orders.order_id"]),
        Index("uq_order_refunds_account_id_order_id_seq", "account_id", "order_id", "seq", unique=True),
        Index("ix_order_refunds_status_created_at", "status", "created_at"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    refund_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int]
    amount_minor: Mapped[int]
    status: Mapped[RefundStatus] = mapped_column(String(16))
    stripe_refund_id: Mapped[str | None] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(String(2000))
    actor: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    tax_reversal_id: Mapped[str | None] = mapped_column(String(120), default=None)  # Stripe Tax's reversal


class Subscription(Base):
    """A recurring order line that the billing run renews at each period boundary (either route)."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        ForeignKeyConstraint(["account_id", "order_id"], ["orders.account_id", "orders.order_id"]),
        ForeignKeyConstraint(["account_id", "user_id"], ["users.account_id", "users.user_id"]),
        Index("uq_subscriptions_account_id_order_id_module", "account_id", "order_id", "module", unique=True),
        Index("ix_subscriptions_status_current_period_end", "status", "current_period_end"),
        CheckConstraint("quantity >= 1", name="quantity_positive"),
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40))  # the purchase that started it
    user_id: Mapped[str] = mapped_column(String(40))
    module: Mapped[str] = mapped_column(String(100))
    route: Mapped[Route] = mapped_column(String(16))
    price_id: Mapped[str] = mapped_column(String(60))
    interval: Mapped[Interval] = mapped_column(String(8))
    per_seat: Mapped[bool]
    quantity: Mapped[int]  # seats charged at the next renewal
    unit_amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    line: Mapped[QuoteLine] = mapped_column(StructJSONB(QuoteLine))  # the order line it came from
    status: Mapped[SubscriptionStatus] = mapped_column(String(16))
    current_period_start: Mapped[datetime]
    current_period_end: Mapped[datetime]
    grace_until: Mapped[datetime | None]
    dunning_attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    last_order_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class MeteredPlan(Base):
    """A metered module bought by an order: its usage is billed at every period close while it is active.

    ``price_id`` is the version bought; the version billed for a period is the one in force at the period's
    start (catalog.price_in_force: a scheduled migration moves the owner at its first period from the date).
    """

    __tablename__ = "metered_plans"
    __table_args__ = (
        ForeignKeyConstraint(["account_id", "order_id"], ["orders.account_id", "orders.order_id"]),
        ForeignKeyConstraint(["account_id", "user_id"], ["users.account_id", "users.user_id"]),
        Index("uq_metered_plans_account_id_order_id_module", "account_id", "order_id", "module", unique=True),
        Index("ix_metered_plans_status", "status"),
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    plan_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[str] = mapped_column(String(40))  # whose usage is billed (the buyer)
    module: Mapped[str] = mapped_column(String(100))
    route: Mapped[Route] = mapped_column(String(16))
    price_id: Mapped[str] = mapped_column(String(60))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))  # active | ended
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class UsageCharge(Base):
    """One period's usage charge of a metered plan (``kind`` period), or a late correction of an earlier period
    billed in a later one (``adjustment``). Unique per (plan, usage period, billing period): a close run twice,
    or after a crash, bills once. Card-route charges are Stripe invoice items; budget-route ones statement lines."""

    __tablename__ = "usage_charges"
    __table_args__ = (
        ForeignKeyConstraint(["account_id", "plan_id"], ["metered_plans.account_id", "metered_plans.plan_id"]),
        Index("uq_usage_charges_plan_usage_billed", "account_id", "plan_id", "usage_period", "billed_period",
              unique=True),
        Index("ix_usage_charges_billed_period", "billed_period", "route"),
        Index("ix_usage_charges_invoice_pending", "status", postgresql_where=text("status = 'invoice_pending'")),
        CheckConstraint("amount_minor >= 0 AND quantity >= 0", name="amounts_non_negative"),
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    charge_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    plan_id: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[str] = mapped_column(String(40))
    module: Mapped[str] = mapped_column(String(100))
    route: Mapped[Route] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))  # period | adjustment
    usage_period: Mapped[str] = mapped_column(String(7))  # YYYY-MM of the usage period's start
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    billed_period: Mapped[str] = mapped_column(String(7))  # the period whose statement or invoice carries it
    price_id: Mapped[str] = mapped_column(String(60))
    price_version: Mapped[int]
    quantity: Mapped[int] = mapped_column(BigInteger)  # the usage period's total units known at this charge
    quantity_before: Mapped[int] = mapped_column(BigInteger)  # units already billed (adjustments; 0 otherwise)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    detail: Mapped[dict[str, object]] = mapped_column(JSONB)  # tiers, included, commitment drawn, overage
    status: Mapped[str] = mapped_column(String(24))  # statement | invoice_pending | invoiced | nothing_due
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime]


class PriceMigrationNotice(Base):
    """The notice of a scheduled price migration sent to one owner: once per migration and date (a moved date
    is told again)."""

    __tablename__ = "price_migration_notices"

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    holding: Mapped[str] = mapped_column(String(40), primary_key=True)  # subscription or metered plan id
    to_price_id: Mapped[str] = mapped_column(String(60), primary_key=True)
    migrate_existing_at: Mapped[datetime] = mapped_column(primary_key=True)
    sent_at: Mapped[datetime]
