"""The event catalogue: every event type the service emits, its msgspec payload and version.

Packages declare their payloads here (or register their own with ``event``) and emit them with
``emit_event``, so the type, version and payload shape cannot drift apart. The catalogue feeds the
docs (docs/webhooks.md, checked by a test), the OpenAPI document (``webhooks``) and
``GET /v1/webhook-event-types``.

Versioning: adding a field with a default keeps the version; renaming, removing or retyping a field
registers the same type with ``version + 1`` (the old struct stays documented while it is emitted).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta
from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import Clock
from app.outbox import emit


class Payload(msgspec.Struct, kw_only=True, frozen=True):
    """Base of event payloads."""


@dataclass(frozen=True)
class EventSpec:
    type: str
    version: int
    payload: builtins.type[Payload]
    description: str


_REGISTRY: dict[tuple[str, int], EventSpec] = {}
_BY_CLASS: dict[type[Payload], EventSpec] = {}
P = TypeVar("P", bound=type[Payload])


def event(type: str, *, version: int = 1, description: str) -> Callable[[P], P]:
    """Register a payload struct as ``type`` at ``version``."""

    def register(cls: P) -> P:
        key = (type, version)
        assert key not in _REGISTRY, f"event {type} v{version} is registered twice"
        assert cls not in _BY_CLASS, f"{cls.__name__} is registered twice"
        _REGISTRY[key] = _BY_CLASS[cls] = EventSpec(type=type, version=version, payload=cls,
                                                    description=description)
        return cls

    return register


def catalogue() -> list[EventSpec]:
    """Every registered event, by type then version."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def event_types() -> set[str]:
    return {t for t, _ in _REGISTRY}


def spec_of(payload: Payload) -> EventSpec:
    spec = _BY_CLASS.get(type(payload))
    assert spec is not None, f"{type(payload).__name__} is not a registered event payload"
    return spec


async def emit_event(session: AsyncSession, *, clock: Clock, payload: Payload, account_id: str | None = None) -> str:
    """Write a catalogued event to the outbox in the caller's transaction; returns its event id."""
    spec = spec_of(payload)
    return await emit(session, clock=clock, type=spec.type, version=spec.version, payload=payload,
                      account_id=account_id)


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


# --- catalogue --------------------------------------------------------------------------------------------

@event("webhook_endpoint.disabled", description=(
    "A webhook endpoint was disabled: automatically after failing continuously, or by the vendor."))
class WebhookEndpointDisabled(Payload, frozen=True):
    endpoint_id: str
    url: str
    reason: Literal["failing", "manual"]
    disabled_at: datetime
    failing_since: datetime | None = None
    consecutive_failures: int = 0


class ProvisionedFeature(Payload, frozen=True):
    key: Annotated[str, Meta(description="The feature key your code checks, e.g. pdf_export")]
    kind: Literal["boolean", "limit", "config"]
    limit: int | None = None
    value: str | None = None


class ProvisionItem(Payload, frozen=True):
    module: Annotated[str, Meta(description="The module key")]
    quantity: Annotated[int, Meta(ge=1, description="Seats or units bought")]
    features: list[ProvisionedFeature] = []


@event("provision.requested", description=(
    "An order was fulfilled: switch on what it bought in your app, then acknowledge with "
    "POST /v1/orders/{order_id}/provisioned (or report a failure with a reason)."))
class ProvisionRequested(Payload, frozen=True):
    order_id: str
    account_id: str
    account: Annotated[str, Meta(description="The account's external id (your id)")]
    items: list[ProvisionItem]
    requested_at: datetime
    user: Annotated[str | None, Meta(description="The buying user's external id, if a user bought")] = None
