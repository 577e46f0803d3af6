"""Webhook tables. All global (vendor-level): endpoints belong to the vendor, deliveries to outbox events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Identity, Index, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class WebhookEndpoint(Base):
    """A URL of the vendor's app, its subscriptions, and its signing secrets (current and, while rotating, previous)."""

    __tablename__ = "webhook_endpoints"

    endpoint_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(500))
    event_types: Mapped[list[str]] = mapped_column(ARRAY(Text))
    status: Mapped[str] = mapped_column(String(20))
    disabled_reason: Mapped[str | None] = mapped_column(String(20))
    disabled_at: Mapped[datetime | None]
    # Stored in clear because we must sign with it; shown to the vendor only at creation and rotation.
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_expires_at: Mapped[datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    failing_since: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WebhookFanout(Base):
    """Marks an outbox event as fanned out to deliveries (the marker, not a cursor, is the source of truth)."""

    __tablename__ = "webhook_fanouts"

    seq: Mapped[int] = mapped_column(BigInteger, ForeignKey("outbox_events.seq"), primary_key=True)
    fanned_out_at: Mapped[datetime]


class WebhookCursor(Base):
    """Low-water mark of the fan-out scan: every event at or below ``seq`` is fanned out (an optimisation)."""

    __tablename__ = "webhook_cursors"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class WebhookDelivery(Base):
    """One event for one endpoint: pending until delivered (succeeded) or out of retries (failed)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_seq"),
        Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
        Index("ix_webhook_deliveries_endpoint_id_status_created_at", "endpoint_id", "status", "created_at"),
        Index("ix_webhook_deliveries_event_id", "event_id"),
    )

    delivery_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(String(40), ForeignKey("webhook_endpoints.endpoint_id"))
    event_seq: Mapped[int] = mapped_column(BigInteger, ForeignKey("outbox_events.seq"))
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(20))
    attempt_count: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    lease_token: Mapped[str | None] = mapped_column(String(40))
    last_attempt_at: Mapped[datetime | None]
    last_response_status: Mapped[int | None]
    delivered_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WebhookAttempt(Base):
    """The delivery log: one row per HTTP attempt."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery_id_attempt_id", "delivery_id", "attempt_id"),)

    attempt_id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(40), ForeignKey("webhook_deliveries.delivery_id"))
    endpoint_id: Mapped[str] = mapped_column(String(40))
    number: Mapped[int]
    started_at: Mapped[datetime]
    latency_ms: Mapped[int]
    outcome: Mapped[str] = mapped_column(String(20))
    response_status: Mapped[int | None]
    response_body: Mapped[str | None] = mapped_column(String(1024))
    error: Mapped[str | None] = mapped_column(String(500))
