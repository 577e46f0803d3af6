"""Use cases of webhook endpoints, deliveries and replays. Never commits: the request transaction does."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.clock import Clock
from app.db import model_to_dict
from app.errors import Conflict, NotFound, Unprocessable, ValidationFailed
from app.events import publish
from app.ids import new_id
from app.outbox import OutboxEvent
from app.settings import Settings
from app.webhooks import domain, egress, events
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.webhooks.schemas import (
    AttemptRead,
    DeliveryDetail,
    DeliveryRead,
    EventTypeRead,
    SecretRotated,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointRead,
    WebhookEndpointUpdate,
)

ENABLED, DISABLED, DELETED = "enabled", "disabled", "deleted"
PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"
SECRET_PREFIX = "whsec_"
ATTEMPTS_SHOWN = 100
REPLAY_FAILED_MAX = 10_000
_FIELDS = ("url", "description", "event_types", "status", "disabled_reason")


def new_secret() -> str:
    """``whsec_`` + standard base64 of 32 random bytes: the Standard Webhooks secret format."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def endpoint_read(e: WebhookEndpoint) -> WebhookEndpointRead:
    return WebhookEndpointRead(
        id=e.endpoint_id, url=e.url, description=e.description, event_types=list(e.event_types), status=e.status,
        disabled_reason=e.disabled_reason, disabled_at=e.disabled_at,
        previous_secret_expires_at=e.previous_secret_expires_at if e.previous_secret else None,
        consecutive_failures=e.consecutive_failures, failing_since=e.failing_since, created_at=e.created_at,
        updated_at=e.updated_at,
    )


def delivery_read(d: WebhookDelivery) -> DeliveryRead:
    return DeliveryRead(**_delivery_fields(d))


def _delivery_fields(d: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": d.delivery_id, "endpoint_id": d.endpoint_id, "event_id": d.event_id, "event_type": d.event_type,
        "event_seq": d.event_seq, "status": d.status, "attempt_count": d.attempt_count,
        "next_attempt_at": d.next_attempt_at if d.status == PENDING else None,
        "last_attempt_at": d.last_attempt_at, "last_response_status": d.last_response_status,
        "delivered_at": d.delivered_at, "failed_at": d.failed_at, "created_at": d.created_at,
    }


def _check_url(url: str, settings: Settings) -> str:
    try:
        checked = domain.validate_url(
            url, allowed_hosts=settings.webhook_allowed_hosts,
            networks=domain.parse_networks(settings.webhook_networks), require_https=settings.is_production)
        egress.parse(checked)  # the host httpx will connect to is the host just judged
        return checked
    except domain.UrlRejected as exc:
        raise Unprocessable(str(exc), field="url") from exc


def _check_patterns(patterns: list[str]) -> list[str]:
    known = events.event_types()
    unknown = sorted(p for p in patterns if p != domain.WILDCARD and not p.endswith(".*") and p not in known)
    if unknown:
        raise Unprocessable(f"Unknown event type(s): {', '.join(unknown)}.", field="event_types",
                            known_event_types=sorted(known))
    return sorted(set(patterns))


async def create_endpoint(
    session: AsyncSession, data: WebhookEndpointCreate, *, actor: str, settings: Settings, clock: Clock,
) -> WebhookEndpointCreated:
    """Register an endpoint with a fresh signing secret (returned once)."""
    now = clock.now()
    endpoint = WebhookEndpoint(
        endpoint_id=new_id("whe"), url=_check_url(data.url, settings), description=data.description or None,
        event_types=_check_patterns(data.event_types), status=ENABLED, secret=new_secret(),
        consecutive_failures=0, created_at=now, updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    await audit.record(session, clock=clock, actor=actor, action="webhook_endpoint.created",
                       target_type="webhook_endpoint", target_id=endpoint.endpoint_id,
                       after=model_to_dict(endpoint, _FIELDS))
    return WebhookEndpointCreated(**msgspec.structs.asdict(endpoint_read(endpoint)), secret=endpoint.secret)


async def get_endpoint(session: AsyncSession, endpoint_id: str, *, for_update: bool = False) -> WebhookEndpoint:
    query = select(WebhookEndpoint).where(WebhookEndpoint.endpoint_id == endpoint_id)
    endpoint = await session.scalar(query.with_for_update() if for_update else query)
    if endpoint is None or endpoint.status == DELETED:
        raise NotFound(f"Webhook endpoint {endpoint_id!r} does not exist.")
    return endpoint


async def list_endpoints(session: AsyncSession, *, after: str | None, limit: int) -> list[WebhookEndpoint]:
    query = (select(WebhookEndpoint).where(WebhookEndpoint.status != DELETED)
             .order_by(WebhookEndpoint.endpoint_id).limit(limit))
    if after is not None:
        query = query.where(WebhookEndpoint.endpoint_id > after)
    return list((await session.scalars(query)).all())


async def update_endpoint(
    session: AsyncSession, endpoint_id: str, data: WebhookEndpointUpdate, *, actor: str, settings: Settings,
    clock: Clock,
) -> WebhookEndpoint:
    endpoint = await get_endpoint(session, endpoint_id, for_update=True)
    before = model_to_dict(endpoint, _FIELDS)
    if data.url is not None:
        endpoint.url = _check_url(data.url, settings)
    if data.event_types is not None:
        endpoint.event_types = _check_patterns(data.event_types)
    if data.description is not None:
        endpoint.description = data.description or None
    after = model_to_dict(endpoint, _FIELDS)
    if after != before:
        endpoint.updated_at = clock.now()
        await audit.record(session, clock=clock, actor=actor, action="webhook_endpoint.updated",
                           target_type="webhook_endpoint", target_id=endpoint_id, before=before, after=after)
    await session.flush()
    return endpoint


async def delete_endpoint(session: AsyncSession, endpoint_id: str, *, actor: str, clock: Clock) -> None:
    """Stop delivering to the endpoint for good: it disappears from the API, its secrets are forgotten and its
    waiting deliveries end as failed; its delivery log is kept for the audit trail. A repeat is a 404."""
    endpoint = await get_endpoint(session, endpoint_id, for_update=True)
    before = model_to_dict(endpoint, _FIELDS)
    now = clock.now()
    endpoint.status, endpoint.updated_at, endpoint.disabled_reason, endpoint.disabled_at = DELETED, now, "deleted", now
    endpoint.secret, endpoint.previous_secret, endpoint.previous_secret_expires_at = "", None, None
    await session.execute(update(WebhookDelivery).where(
        WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == PENDING).values(status=FAILED))
    await audit.record(session, clock=clock, actor=actor, action="webhook_endpoint.deleted",
                       target_type="webhook_endpoint", target_id=endpoint_id, before=before,
                       after={"status": DELETED})


async def set_enabled(
    session: AsyncSession, endpoint_id: str, *, enabled: bool, actor: str, clock: Clock,
) -> WebhookEndpoint:
    """Enable or disable by hand; enabling clears the failure streak so auto-disable starts afresh."""
    endpoint = await get_endpoint(session, endpoint_id, for_update=True)
    target = ENABLED if enabled else DISABLED
    if endpoint.status == target:
        return endpoint
    now = clock.now()
    before = model_to_dict(endpoint, _FIELDS)
    endpoint.status, endpoint.updated_at = target, now
    if enabled:
        endpoint.disabled_reason = endpoint.disabled_at = endpoint.failing_since = None
        endpoint.consecutive_failures = 0
    else:
        endpoint.disabled_reason, endpoint.disabled_at = "manual", now
        await publish(session, events.WebhookEndpointDisabled(
            endpoint_id=endpoint_id, url=endpoint.url, reason="manual", disabled_at=now,
            failing_since=endpoint.failing_since, consecutive_failures=endpoint.consecutive_failures), clock=clock)
    await audit.record(session, clock=clock, actor=actor,
                       action="webhook_endpoint.enabled" if enabled else "webhook_endpoint.disabled",
                       target_type="webhook_endpoint", target_id=endpoint_id, before=before,
                       after=model_to_dict(endpoint, _FIELDS))
    await session.flush()
    return endpoint


async def rotate_secret(
    session: AsyncSession, endpoint_id: str, *, overlap_seconds: int | None, actor: str, settings: Settings,
    clock: Clock,
) -> SecretRotated:
    """New current secret; the old one keeps signing (a second v1 entry) until the overlap ends."""
    endpoint = await get_endpoint(session, endpoint_id, for_update=True)
    now = clock.now()
    overlap = settings.webhook_secret_overlap_seconds if overlap_seconds is None else overlap_seconds
    endpoint.previous_secret = endpoint.secret if overlap > 0 else None
    endpoint.previous_secret_expires_at = now + timedelta(seconds=overlap) if overlap > 0 else None
    endpoint.secret = new_secret()
    endpoint.updated_at = now
    await audit.record(session, clock=clock, actor=actor, action="webhook_endpoint.secret_rotated",
                       target_type="webhook_endpoint", target_id=endpoint_id, after={"overlap_seconds": overlap})
    await session.flush()
    return SecretRotated(id=endpoint_id, secret=endpoint.secret,
                         previous_secret_expires_at=endpoint.previous_secret_expires_at)


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets that sign now: the current one, plus the previous one during a rotation overlap."""
    out = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and now < expires:
        out.append(endpoint.previous_secret)
    return out


async def list_deliveries(
    session: AsyncSession, endpoint_id: str, *, status: str | None, after: str | None, limit: int,
) -> list[WebhookDelivery]:
    """Newest first."""
    await get_endpoint(session, endpoint_id)
    query = (select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
             .order_by(WebhookDelivery.delivery_id.desc()).limit(limit))
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    if after is not None:
        query = query.where(WebhookDelivery.delivery_id < after)
    return list((await session.scalars(query)).all())


async def get_delivery(session: AsyncSession, endpoint_id: str, delivery_id: str) -> DeliveryDetail:
    """A delivery with its latest attempts (the delivery log)."""
    delivery = await session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint_id:
        raise NotFound(f"Delivery {delivery_id!r} of endpoint {endpoint_id!r} does not exist.")
    rows = (await session.scalars(
        select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id)
        .order_by(WebhookAttempt.attempt_id.desc()).limit(ATTEMPTS_SHOWN))).all()
    attempts = [AttemptRead(number=a.number, started_at=a.started_at, latency_ms=a.latency_ms, outcome=a.outcome,
                            response_status=a.response_status, response_body=a.response_body, error=a.error)
                for a in reversed(rows)]
    return DeliveryDetail(**_delivery_fields(delivery), attempts=attempts)


async def replay_event(
    session: AsyncSession, endpoint_id: str, event_id: str, *, actor: str, clock: Clock,
) -> WebhookDelivery:
    """Queue one event for this endpoint now: a new delivery, or the existing one reset to pending."""
    endpoint = await get_endpoint(session, endpoint_id)
    if endpoint.status != ENABLED:
        raise Conflict("The endpoint is disabled; enable it before replaying events to it.")
    event = await session.scalar(select(OutboxEvent).where(OutboxEvent.event_id == event_id))
    if event is None:
        raise NotFound(f"Event {event_id!r} does not exist.")
    now = clock.now()
    await session.execute(
        insert(WebhookDelivery).values(
            delivery_id=new_id("whd"), endpoint_id=endpoint_id, event_seq=event.seq, event_id=event.event_id,
            event_type=event.type, status=PENDING, attempt_count=0, next_attempt_at=now, created_at=now,
            updated_at=now,
        ).on_conflict_do_update(
            index_elements=["endpoint_id", "event_seq"],
            set_={"status": PENDING, "attempt_count": 0, "next_attempt_at": now, "lease_token": None,
                  "failed_at": None, "updated_at": now},
        ))
    delivery = await session.scalar(
        select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id,
                                      WebhookDelivery.event_seq == event.seq)
        .execution_options(populate_existing=True))
    assert delivery is not None
    await audit.record(session, clock=clock, actor=actor, action="webhook_delivery.replayed",
                       target_type="webhook_delivery", target_id=delivery.delivery_id,
                       after={"endpoint_id": endpoint_id, "event_id": event_id})
    return delivery


async def replay_failed(
    session: AsyncSession, endpoint_id: str, *, since: datetime, actor: str, clock: Clock,
) -> int:
    """Queue again every dead-lettered delivery of the endpoint created since ``since`` (at most 10 000)."""
    try:
        since = since.astimezone(UTC)
    except OverflowError as exc:
        raise ValidationFailed("since is out of range.", field="since") from exc
    endpoint = await get_endpoint(session, endpoint_id)
    if endpoint.status != ENABLED:
        raise Conflict("The endpoint is disabled; enable it before replaying events to it.")
    now = clock.now()
    ids = select(WebhookDelivery.delivery_id).where(
        WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == FAILED,
        WebhookDelivery.created_at >= since,
    ).order_by(WebhookDelivery.created_at).limit(REPLAY_FAILED_MAX).scalar_subquery()
    result = await session.execute(
        update(WebhookDelivery).where(WebhookDelivery.delivery_id.in_(ids)).values(
            status=PENDING, attempt_count=0, next_attempt_at=now, lease_token=None, failed_at=None, updated_at=now,
        ).returning(WebhookDelivery.delivery_id))
    count = len(result.all())
    await audit.record(session, clock=clock, actor=actor, action="webhook_endpoint.failed_replayed",
                       target_type="webhook_endpoint", target_id=endpoint_id,
                       after={"since": since.isoformat(), "replayed": count})
    return count


def event_catalogue() -> list[EventTypeRead]:
    return [EventTypeRead(type=s.type, version=s.version, description=s.description,
                          payload_schema=msgspec.json.schema(s.payload))
            for s in events.catalogue()]
