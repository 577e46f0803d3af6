"""HTTP contract of webhook endpoints, deliveries, replays and the event catalogue."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from msgspec import Meta, field

from app.schemas import Input, Output

ENDPOINT_ID = r"^whe_[0-9a-z]{26}$"
DELIVERY_ID = r"^whd_[0-9a-z]{26}$"
EVENT_ID = r"^evt_[0-9a-z]{26}$"
MAX_OVERLAP_SECONDS = 7 * 86_400

Url = Annotated[str, Meta(min_length=1, max_length=2048, pattern=r"^[A-Za-z][A-Za-z0-9+.-]*://[^\s\x00-\x1f\x7f\x85\ufeff]+$",
                          description="http(s) URL of your endpoint; no credentials, no fragment")]
EventPattern = Annotated[str, Meta(
    min_length=1, max_length=80, pattern=r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?)$",
    description="An event type (order.paid), a family (order.*) or * for every event")]
EventPatterns = Annotated[list[EventPattern], Meta(min_length=1, max_length=50)]
Description = Annotated[str, Meta(max_length=500, pattern=r"^[^\x00]*$")]
OverlapSeconds = Annotated[int, Meta(ge=0, le=MAX_OVERLAP_SECONDS,
                                     description="How long the previous secret keeps signing too")]
EventId = Annotated[str, Meta(pattern=EVENT_ID, description="The outbox event id (evt_...)")]
Since = Annotated[datetime, Meta(tz=True, description="Replay failed deliveries created at or after this time")]


class WebhookEndpointCreate(Input):
    """Register an endpoint; the response shows its signing secret once."""

    url: Url
    event_types: EventPatterns = field(default_factory=lambda: ["*"])
    description: Description | None = None


class WebhookEndpointUpdate(Input):
    """Change an endpoint; omitted fields stay as they are (an empty description clears it)."""

    url: Url | None = None
    event_types: EventPatterns | None = None
    description: Description | None = None


class WebhookEndpointRead(Output, frozen=True):
    id: str
    url: str
    description: str | None
    event_types: list[str]
    status: str
    disabled_reason: str | None
    disabled_at: datetime | None
    previous_secret_expires_at: datetime | None
    consecutive_failures: int
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookEndpointCreated(WebhookEndpointRead, frozen=True):
    secret: Annotated[str, Meta(description="Signing secret (whsec_...): shown only in this response")]


class WebhookEndpointPage(Output, frozen=True):
    data: list[WebhookEndpointRead]
    next_cursor: str | None


class SecretRotate(Input):
    """Make a new signing secret; the previous one keeps signing for ``overlap_seconds``."""

    overlap_seconds: OverlapSeconds | None = None


class SecretRotated(Output, frozen=True):
    id: str
    secret: Annotated[str, Meta(description="The new signing secret: shown only in this response")]
    previous_secret_expires_at: datetime | None


class AttemptRead(Output, frozen=True):
    number: int
    started_at: datetime
    latency_ms: int
    outcome: str
    response_status: int | None
    response_body: str | None
    error: str | None


class DeliveryRead(Output, frozen=True):
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    event_seq: int
    status: str
    attempt_count: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_response_status: int | None
    delivered_at: datetime | None
    failed_at: datetime | None
    created_at: datetime


class DeliveryDetail(DeliveryRead, frozen=True):
    attempts: list[AttemptRead]


class DeliveryPage(Output, frozen=True):
    data: list[DeliveryRead]
    next_cursor: str | None


class ReplayEvent(Input):
    """Deliver one event (again) to this endpoint."""

    event_id: EventId


class ReplayFailed(Input):
    """Deliver again every failed (dead-lettered) delivery of this endpoint created since a time."""

    since: Since


class ReplayResult(Output, frozen=True):
    replayed: int


class EventTypeRead(Output, frozen=True):
    type: str
    version: int
    description: str
    payload_schema: dict[str, Any]
