"""Shared rate-limit counters: one row per bucket and window, and the processes that ask for leases.

Both tables are UNLOGGED: counters are worth nothing after a crash (a restart forgets at most one window)
and skipping the WAL keeps the periodic upserts cheap. They are global, keyed by the caller.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class RateLimitCounter(Base):
    __tablename__ = "rate_limit_counters"
    __table_args__ = (
        Index("ix_rate_limit_counters_expires_at_s", "expires_at_s"),
        {"prefixes": ["UNLOGGED"]},
    )

    bucket: Mapped[str] = mapped_column(String(120), primary_key=True)
    window_start_s: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hits: Mapped[int]  # handed out in this window by every process: admitted or leased and not yet given back
    last_grant: Mapped[int]  # what the latest grant handed out (read back by the process that asked)
    expires_at_s: Mapped[int]


class RateLimitNode(Base):
    __tablename__ = "rate_limit_nodes"
    __table_args__ = ({"prefixes": ["UNLOGGED"]},)

    node_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    seen_at: Mapped[datetime]
