"""Transactional outbox: events are written in the caller's transaction and delivered later.

Packages publish typed events (app/events.py), which end here: ``write`` has no other caller in the product,
so every event the service sends is one of the catalogue's types (tests/gates/test_event_catalogue_gate.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Identity, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.logs import current_request_id


class OutboxEvent(Base):
    """Global table ordered by ``seq``; ``account_id`` is set for account events (null for vendor-level)."""

    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_events_account_id_seq", "account_id", "seq"),)

    seq: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(80))
    version: Mapped[int] = mapped_column(default=1)
    account_id: Mapped[str | None] = mapped_column(String(40))
    occurred_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    request_id: Mapped[str | None] = mapped_column(String(100))  # the request (X-Request-Id) that caused it


def write(session: AsyncSession, *, event_id: str, type: str, version: int, account_id: str | None,
          occurred_at: datetime, payload: dict[str, Any]) -> None:
    """Add one outbox row to the caller's transaction; it exists only if that transaction commits."""
    session.add(OutboxEvent(event_id=event_id, type=type, version=version, account_id=account_id,
                            occurred_at=occurred_at, payload=payload, request_id=current_request_id()))
    # No flush here: events of one transaction are inserted together at its next flush (in the order
    # they were written), which saves a round trip per event on the purchase path.
