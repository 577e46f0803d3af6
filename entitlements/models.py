"""Entitlement tables: grants, seat assignments, trials, usage events, counters, demand signals.

Tenant tables: ``account_id`` leads every primary key and every foreign key.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKeyConstraint,
    Identity,
    Index,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import HOT_UPDATES, Base


class Grant(Base):
    """A module granted to a user (``user_id``) or to the whole account (``user_id`` null).

    An account-wide grant with ``seats`` is a seat pool: only users assigned a seat hold it.
    Status is derived from time (``starts_at``, ``ends_at``, ``revoked_at``) against the injected clock.
    """

    __tablename__ = "ent_grants"
    __table_args__ = (
        ForeignKeyConstraint(["account_id"], ["accounts.account_id"]),
        ForeignKeyConstraint(["account_id", "user_id"], ["users.account_id", "users.user_id"]),
        UniqueConstraint("account_id", "source", "source_ref", "module"),
        CheckConstraint("seats IS NULL OR (user_id IS NULL AND seats > 0)", name="seats_account_wide"),
        CheckConstraint("seats_assigned >= 0 AND (seats IS NULL OR seats_assigned <= seats)", name="seats_bound"),
        CheckConstraint("ends_at IS NULL OR ends_at >= starts_at", name="ends_after_start"),
        Index("ix_ent_grants_account_id_user_id", "account_id", "user_id"),
        Index("ix_ent_grants_pending_expiry", "ends_at", postgresql_where=text("expired_event_at IS NULL")),
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    grant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(String(40))
    module: Mapped[str] = mapped_column(String(60))
    source: Mapped[str] = mapped_column(String(16))
    source_ref: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]
    seats: Mapped[int | None]
    seats_assigned: Mapped[int] = mapped_column(default=0)
    revoked_at: Mapped[datetime | None]
    revoke_reason: Mapped[str | None] = mapped_column(String(500))
    expired_event_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SeatAssignment(Base):
    """One seat of a seat-pool grant held by one user."""

    __tablename__ = "ent_seat_assignments"
    __table_args__ = (
        ForeignKeyConstraint(["account_id", "grant_id"], ["ent_grants.account_id", "ent_grants.grant_id"]),
        ForeignKeyConstraint(["account_id", "user_id"], ["users.account_id", "users.user_id"]),
        Index("ix_ent_seat_assignments_account_id_user_id", "account_id", "user_id"),
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    grant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    assigned_at: Mapped[datetime]


class Trial(Base):
    """A trial of a module: at most one per (account, module, subject); subject is a user id or '*' (account)."""

    __tablename__ = "ent_trials"
    __table_args__ = (
        ForeignKeyConstraint(["account_id", "grant_id"], ["ent_grants.account_id", "ent_grants.grant_id"]),
        UniqueConstraint("account_id", "module", "subject"),
        Index("ix_ent_trials_ends_at", "ends_at", postgresql_where=text("ended_event_at IS NULL")),
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    trial_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[str | None] = mapped_column(String(40))
    module: Mapped[str] = mapped_column(String(60))
    grant_id: Mapped[str] = mapped_column(String(40))
    started_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    ending_event_at: Mapped[datetime | None]
    ended_event_at: Mapped[datetime | None]
    converted_at: Mapped[datetime | None]


class UsageEvent(Base):
    """One usage (or attempt) event, in a monthly partition of ``occurred_at`` (old months are dropped whole).

    A partitioned table's keys must include the partition column, so idempotency by ``event_id`` lives in
    ``UsageEventKey``; partitions are made ahead and retired by the ``usage_partitions`` job.
    """

    __tablename__ = "ent_usage_events"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_ent_usage_events_user", "account_id", "user_id", "feature", "occurred_at"),
        {"postgresql_partition_by": "RANGE (occurred_at)"},
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(String(40))
    feature: Mapped[str] = mapped_column(String(60))
    kind: Mapped[str] = mapped_column(String(16))
    quantity: Mapped[int] = mapped_column(BigInteger)
    period_start: Mapped[datetime]
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    recorded_at: Mapped[datetime]


class UsageEventKey(Base):
    """The natural key of every recorded usage event: a replay (same ``event_id``) is counted once."""

    __tablename__ = "ent_usage_event_keys"
    __table_args__ = (Index("ix_ent_usage_event_keys_recorded_at", "recorded_at"),)

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    recorded_at: Mapped[datetime]


class UsageCounter(Base):
    """Used quantity of a feature by a user in one period (the period follows the feature's definition)."""

    __tablename__ = "ent_usage_counters"
    __table_args__ = (CheckConstraint("used >= 0", name="used_not_negative"), HOT_UPDATES)

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    feature: Mapped[str] = mapped_column(String(60), primary_key=True)
    period_start: Mapped[datetime] = mapped_column(primary_key=True)
    period_end: Mapped[datetime]
    used: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class DemandSignal(Base):
    """Denied checks and attempt events of a user for a feature, per UTC day (read by suggestions)."""

    __tablename__ = "ent_demand_signals"
    __table_args__ = (HOT_UPDATES,)

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    feature: Mapped[str] = mapped_column(String(60), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    denied_checks: Mapped[int] = mapped_column(BigInteger, default=0)
    attempts: Mapped[int] = mapped_column(BigInteger, default=0)
    last_at: Mapped[datetime]


class UsageAlert(Base):
    """One episode of a usage alert, so each is told once: ``usage.limit_near`` per user, feature and counter
    period (``subject`` names them; never closed), ``entitlement.unused`` per grant while it stays unused
    (``subject`` is the grant; closed when the module is used again or the grant ends, so a later idle spell
    is a new episode). At most one open episode per subject: the partial unique index decides under
    concurrent sweeps."""

    __tablename__ = "ent_usage_alerts"
    __table_args__ = (
        Index("uq_ent_usage_alerts_open", "account_id", "kind", "subject", unique=True,
              postgresql_where=text("closed_at IS NULL")),
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    alert_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(200))
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]


class EntitlementChange(Base):
    """One committed change to what checks answer for an account (``user_id`` null) or one user.

    The change stream (``GET /v1/entitlements/changes``) reads these in commit order by ``xid``, the writing
    transaction's id: every row whose transaction ended before the oldest still-running one is final, so a
    cursor (that horizon) never skips a change committed late. Rows are pruned after the retention window.
    """

    __tablename__ = "ent_changes"
    __table_args__ = (
        Index("ix_ent_changes_xid", "xid"),
        Index("ix_ent_changes_created_at", "created_at"),
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(String(40))
    xid: Mapped[int] = mapped_column(BigInteger, server_default=text("(pg_current_xact_id()::text)::bigint"))
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


__all__ = ["DemandSignal", "EntitlementChange", "Grant", "SeatAssignment", "Trial", "UsageAlert", "UsageCounter",
           "UsageEvent", "UsageEventKey"]
