"""Suggestion tables: impressions, feedback (clicks, dismissals), outcomes (purchases, admin denials), and
precomputed peer statistics. Tenant tables lead every primary key with ``account_id``; the two segment
tables are aggregates over accounts (counts only) and are global."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class SuggestionImpression(Base):
    """One item of one suggestion answer; holdout users' items are recorded too (never shown) for lift."""

    __tablename__ = "sug_impressions"
    __table_args__ = (
        ForeignKeyConstraint(["account_id", "user_id"], ["users.account_id", "users.user_id"]),
        Index("ix_sug_impressions_user_surface", "account_id", "user_id", "surface", "shown_at"),
        Index("ix_sug_impressions_user_module", "account_id", "user_id", "module", "shown_at"),
        Index("ix_sug_impressions_shown_at", "shown_at"),
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    suggestion_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[str] = mapped_column(String(40))
    module: Mapped[str] = mapped_column(String(60))
    kind: Mapped[str] = mapped_column(String(16))
    surface: Mapped[str] = mapped_column(String(60))
    trigger: Mapped[str | None] = mapped_column(String(20))
    rank: Mapped[int]
    score: Mapped[float] = mapped_column(Float)
    holdout: Mapped[bool]
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    shown_at: Mapped[datetime]


class SuggestionFeedback(Base):
    """A click or a dismissal of one suggestion (at most one of each per suggestion)."""

    __tablename__ = "sug_feedback"
    __table_args__ = (
        ForeignKeyConstraint(["account_id", "suggestion_id"],
                             ["sug_impressions.account_id", "sug_impressions.suggestion_id"]),
        CheckConstraint("action IN ('click', 'dismiss')", name="action_known"),
        Index("ix_sug_feedback_user", "account_id", "user_id", "action", "at"),
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    suggestion_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    action: Mapped[str] = mapped_column(String(10), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(40))
    module: Mapped[str] = mapped_column(String(60))
    at: Mapped[datetime]


class SuggestionOutcome(Base):
    """A purchase (attributed to the suggestion shown within the window before it, if any) or an admin's
    denial of a purchase request; ``source_ref`` (order or approval id) makes recording idempotent."""

    __tablename__ = "sug_outcomes"
    __table_args__ = (
        UniqueConstraint("account_id", "kind", "source_ref", "module"),
        CheckConstraint("kind IN ('purchase', 'admin_denied')", name="kind_known"),
        CheckConstraint("amount_minor >= 0", name="amount_not_negative"),
        Index("ix_sug_outcomes_user", "account_id", "user_id", "at"),
        Index("ix_sug_outcomes_at", "at"),
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    outcome_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(40))
    module: Mapped[str] = mapped_column(String(60))
    kind: Mapped[str] = mapped_column(String(16))
    source_ref: Mapped[str] = mapped_column(String(200))
    amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str | None] = mapped_column(String(3))
    at: Mapped[datetime]
    suggestion_id: Mapped[str | None] = mapped_column(String(40))
    holdout: Mapped[bool | None]


class PeerStat(Base):
    """Per account, role and module: how many users have the role, how many of them own the module, and how
    many of those used it lately. Refreshed per account (full recount) and bumped on each purchase."""

    __tablename__ = "sug_peer_stats"

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    role: Mapped[str] = mapped_column(String(60), primary_key=True)
    module: Mapped[str] = mapped_column(String(60), primary_key=True)
    role_users: Mapped[int]
    owners: Mapped[int]
    active_owners: Mapped[int]


class PairStat(Base):
    """Per account: users owning both modules (module_a <= module_b; a == b counts owners of a)."""

    __tablename__ = "sug_pair_stats"

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    module_a: Mapped[str] = mapped_column(String(60), primary_key=True)
    module_b: Mapped[str] = mapped_column(String(60), primary_key=True)
    users: Mapped[int]


class StatsRefresh(Base):
    """When an account's peer statistics were last recounted."""

    __tablename__ = "sug_stats_refresh"

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    users: Mapped[int]
    refreshed_at: Mapped[datetime]
    # True once recounted with per-user holdings: from then on every change keeps the statistics up to date
    maintained: Mapped[bool] = mapped_column(server_default=false(), default=False)


class UserHoldings(Base):
    """What one user adds to the account's peer statistics as last counted: roles (None: not counted yet),
    modules held and modules lately used. A change recounts only the users it touches and applies the
    difference between their new and these holdings."""

    __tablename__ = "sug_user_holdings"

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    roles: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    modules: Mapped[list[str]] = mapped_column(ARRAY(Text))
    active: Mapped[list[str]] = mapped_column(ARRAY(Text))


class SegmentStat(Base):
    """Same as PeerStat summed over the accounts of one segment (counts only: no account is named)."""

    __tablename__ = "sug_segment_stats"

    segment: Mapped[str] = mapped_column(String(60), primary_key=True)
    role: Mapped[str] = mapped_column(String(60), primary_key=True)
    module: Mapped[str] = mapped_column(String(60), primary_key=True)
    accounts: Mapped[int]
    role_users: Mapped[int]
    owners: Mapped[int]


class SegmentPair(Base):
    """PairStat summed over the accounts of one segment."""

    __tablename__ = "sug_segment_pairs"

    segment: Mapped[str] = mapped_column(String(60), primary_key=True)
    module_a: Mapped[str] = mapped_column(String(60), primary_key=True)
    module_b: Mapped[str] = mapped_column(String(60), primary_key=True)
    users: Mapped[int]


class RoleStat(Base):
    """Per account and role: how many users have the role (``*``: every user of the account). The denominator of
    every share, kept apart from PeerStat so a role none of whose users owns anything still counts."""

    __tablename__ = "sug_role_stats"

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    role: Mapped[str] = mapped_column(String(60), primary_key=True)
    users: Mapped[int]


class SegmentRole(Base):
    """RoleStat summed over the (recounted) accounts of one segment."""

    __tablename__ = "sug_segment_roles"

    segment: Mapped[str] = mapped_column(String(60), primary_key=True)
    role: Mapped[str] = mapped_column(String(60), primary_key=True)
    users: Mapped[int]


class LearnedWeights(Base):
    """One fit of the engine's weights on the vendor's history (versions are kept; the newest is served).
    ``weights`` is the COMMERCE_SUGGEST_WEIGHTS form (``bias=-4.1,demand=2.3,...``), parsed by scoring."""

    __tablename__ = "sug_weights"
    __table_args__ = (CheckConstraint("rows >= 0 AND positives >= 0", name="counts_not_negative"),)

    version: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    fitted_at: Mapped[datetime]
    trained_until: Mapped[datetime]
    window_days: Mapped[int]
    rows: Mapped[int]
    positives: Mapped[int]
    learned: Mapped[bool]
    weights: Mapped[str] = mapped_column(Text)
    note: Mapped[str] = mapped_column(Text)
    recall_at_3: Mapped[float | None] = mapped_column(Float)  # the fit's own backtest on the last window
    popularity_recall_at_3: Mapped[float | None] = mapped_column(Float)


__all__ = [
    "LearnedWeights",
    "PairStat",
    "PeerStat",
    "RoleStat",
    "SegmentPair",
    "SegmentRole",
    "SegmentStat",
    "StatsRefresh",
    "SuggestionFeedback",
    "SuggestionImpression",
    "SuggestionOutcome",
]
