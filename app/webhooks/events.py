"""The event catalogue as webhooks see it: the envelope of every delivery, the schemas for the OpenAPI document,
and the webhooks' own event.

The payload types, their registry and ``publish`` live in app/events.py (packages publish typed events there;
the outbox carries them here). The names below are re-exported for the modules that import them from here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta
from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import Clock
from app.events import Event, EventSpec, catalogue, event, event_types, publish, spec_of

Payload = Event  # the payload base's earlier name

__all__ = ["Envelope", "Event", "EventSpec", "Payload", "WebhookEndpointDisabled", "catalogue", "emit_event",
           "event", "event_types", "json_schemas", "spec_of"]


async def emit_event(session: AsyncSession, *, clock: Clock, payload: Event, account_id: str | None = None) -> str:
    """``publish`` under its earlier name."""
    return await publish(session, payload, clock=clock, account_id=account_id)


def json_schemas() -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """(``"type@vN"`` -> schema reference, component schemas) for the OpenAPI document."""
    specs = catalogue()
    refs, components = msgspec.json.schema_components(
        [s.payload for s in specs] + [Envelope], ref_template="#/components/schemas/event.{name}")
    return {f"{s.type}@v{s.version}": r for s, r in zip(specs, refs, strict=False)}, components


class Envelope(msgspec.Struct, kw_only=True, frozen=True):
    """The JSON body of every webhook request; ``data`` is the payload of ``type`` at ``version``."""

    id: Annotated[str, Meta(description="Stable event id (evt_...): deduplicate on it")]
    type: str
    version: int
    seq: Annotated[int, Meta(description="Global outbox sequence; order events by it if you need order")]
    occurred_at: datetime
    account_id: str | None
    data: dict[str, Any]


# --- the webhooks' own event -------------------------------------------------------------------------------

@event("webhook_endpoint.disabled", description=(
    "A webhook endpoint was disabled: automatically after failing continuously, or by the vendor."))
class WebhookEndpointDisabled(Event, frozen=True):
    endpoint_id: str
    url: str
    reason: Literal["failing", "manual"]
    disabled_at: datetime
    failing_since: datetime | None = None
    consecutive_failures: int = 0

