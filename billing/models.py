"""Tables of budgets, their per-period balances, holds, the append-only ledger, alerts and guardrail versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKeyConstraint, Identity, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


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
    state: Mapped[str] = mapped_column(String(16))  # pending | posted | voided
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
    kind: Mapped[str] = mapped_column(String(16))  # reserve | capture | release | refund
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
    policy: Mapped[dict[str, Any]] = mapped_column(JSONB)
    author: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime]
