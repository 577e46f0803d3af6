"""Tables of billing.stripe: the inbound event store (card payments and refunds live in billing.models)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import SmallInteger, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class StripeEventRecord(Base):
    """Global table: one row per Stripe event id (Stripe's ids are unique per Stripe account)."""

    __tablename__ = "stripe_events"

    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(120))
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
