"""The dispatcher's database steps: fan out, claim due deliveries, record outcomes. Never commits.

Each step is meant to run in its own short transaction; no transaction is ever held across an HTTP call
(claim commits a lease, the call happens, the outcome is recorded in a second transaction).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import msgspec
from sqlalchemy import Table, and_, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit, metrics
from app.clock import Clock
from app.events import publish
from app.ids import new_id
from app.outbox import OutboxEvent
from app.settings import Settings
from app.webhooks import domain, events
from app.webhooks.models import (
    WebhookAttempt,
    WebhookCursor,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookFanout,
)
from app.webhooks.service import DISABLED, ENABLED, FAILED, PENDING, SUCCEEDED, signing_secrets

FANOUT_CURSOR = "fanout"
SYSTEM_ACTOR = "system:webhooks"
LEASE_MARGIN = timedelta(seconds=60)

_UNFANNED = text("""
SELECT e.seq FROM outbox_events e
WHERE e.seq > :cursor AND NOT EXISTS (SELECT 1 FROM webhook_fanouts f WHERE f.seq = e.seq)
ORDER BY e.seq LIMIT :limit
FOR UPDATE OF e SKIP LOCKED
""")


async def fan_out(session: AsyncSession, *, clock: Clock, settings: Settings, limit: int) -> int:
    """Turn committed, not yet fanned-out outbox events into one pending delivery per subscribed endpoint.

    Correctness rests on the per-event marker (``webhook_fanouts``), not on a high-water mark: an event
    whose transaction commits after a later-numbered one is still found, because the scan starts from a
    low-water cursor that trails ``webhook_fanout_lag_seconds`` behind (see docs/decisions.md).
    Concurrent dispatchers skip each other's locked events; ON CONFLICT makes a repeat harmless.
    """
    now = clock.now()
    cursor = await session.scalar(select(WebhookCursor.seq).where(WebhookCursor.name == FANOUT_CURSOR)) or 0
    seqs = list((await session.scalars(_UNFANNED, {"cursor": cursor, "limit": limit})).all())
    if not seqs:
        await _advance_cursor(session, now=now, lag=timedelta(seconds=settings.webhook_fanout_lag_seconds))
        return 0
    rows = (await session.execute(
        select(OutboxEvent.seq, OutboxEvent.event_id, OutboxEvent.type, OutboxEvent.occurred_at)
        .where(OutboxEvent.seq.in_(seqs)).order_by(OutboxEvent.seq))).all()
    endpoints = (await session.execute(
        select(WebhookEndpoint.endpoint_id, WebhookEndpoint.event_types)
        .where(WebhookEndpoint.status == ENABLED))).all()
    deliveries: list[dict[str, Any]] = [
        {"delivery_id": new_id("whd"), "endpoint_id": endpoint_id, "event_seq": seq, "event_id": event_id,
         "event_type": type_, "status": PENDING, "attempt_count": 0, "next_attempt_at": now,
         "created_at": now, "updated_at": now}
        for seq, event_id, type_, _occurred_at in rows
        for endpoint_id, patterns in endpoints if domain.matches(type_, patterns)
    ]
    for *_, occurred_at in rows:
        metrics.OUTBOX_LAG.observe(max(0.0, (now - occurred_at).total_seconds()))
    if deliveries:
        await session.execute(insert(WebhookDelivery).values(deliveries).on_conflict_do_nothing(
            index_elements=["endpoint_id", "event_seq"]))
    await session.execute(insert(WebhookFanout).values(
        [{"seq": seq, "fanned_out_at": now} for seq in seqs]).on_conflict_do_nothing())
    return len(seqs)


async def _advance_cursor(session: AsyncSession, *, now: datetime, lag: timedelta) -> None:
    """Move the low-water mark to the highest marker older than the lag window (never backwards)."""
    await session.execute(insert(WebhookCursor).values(name=FANOUT_CURSOR, seq=0, updated_at=now)
                          .on_conflict_do_nothing())
    current = WebhookCursor.seq
    newest_settled = (select(func.max(WebhookFanout.seq))
                      .where(WebhookFanout.seq > current, WebhookFanout.fanned_out_at <= now - lag)
                      .scalar_subquery())
    await session.execute(update(WebhookCursor).where(
        WebhookCursor.name == FANOUT_CURSOR, newest_settled.is_not(None),
    ).values(seq=func.greatest(current, newest_settled), updated_at=now))


@dataclass(frozen=True)
class Job:
    """One claimed attempt: everything the HTTP call needs, and the lease token that proves the claim."""

    delivery_id: str
    lease_token: str
    attempt: int
    endpoint_id: str
    url: str
    secrets: tuple[str, ...]
    event_id: str
    event_type: str
    body: bytes


_DUE = text("""
SELECT d.delivery_id FROM webhook_deliveries d
JOIN webhook_endpoints e ON e.endpoint_id = d.endpoint_id
WHERE d.status = 'pending' AND d.next_attempt_at <= :now AND e.status = 'enabled'
ORDER BY d.next_attempt_at, d.event_seq
LIMIT :limit
FOR UPDATE OF d SKIP LOCKED
""")


async def claim_due(session: AsyncSession, *, clock: Clock, settings: Settings, limit: int) -> list[Job]:
    """Lease up to ``limit`` due deliveries to this dispatcher until the request timeout (plus margin) passes.

    Rows locked by another dispatcher are skipped, and the lease moves ``next_attempt_at`` past the
    attempt's worst-case duration, so no attempt is made twice concurrently. If this dispatcher dies the
    lease expires and another one retries: at least once, never twice at the same time.
    """
    now = clock.now()
    ids = list((await session.scalars(_DUE, {"now": now, "limit": limit})).all())
    if not ids:
        return []
    token = secrets.token_hex(8)
    lease_until = now + timedelta(seconds=settings.webhook_timeout_seconds) + LEASE_MARGIN
    await session.execute(update(WebhookDelivery).where(WebhookDelivery.delivery_id.in_(ids)).values(
        attempt_count=WebhookDelivery.attempt_count + 1, next_attempt_at=lease_until, lease_token=token,
        last_attempt_at=now, updated_at=now))
    rows = (await session.execute(
        select(WebhookDelivery, OutboxEvent, WebhookEndpoint)
        .join(OutboxEvent, OutboxEvent.seq == WebhookDelivery.event_seq)
        .join(WebhookEndpoint, WebhookEndpoint.endpoint_id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.delivery_id.in_(ids))
        .order_by(WebhookDelivery.event_seq)
        .execution_options(populate_existing=True))).all()
    return [Job(delivery_id=d.delivery_id, lease_token=token, attempt=d.attempt_count, endpoint_id=e.endpoint_id,
                url=e.url, secrets=tuple(signing_secrets(e, now)), event_id=ev.event_id, event_type=ev.type,
                body=envelope(ev)) for d, ev, e in rows]


def envelope(event: OutboxEvent) -> bytes:
    """The request body: the same bytes on every attempt of the event."""
    return msgspec.json.encode(events.Envelope(
        id=event.event_id, type=event.type, version=event.version, seq=event.seq, occurred_at=event.occurred_at,
        account_id=event.account_id, data=event.payload))


@dataclass(frozen=True)
class Outcome:
    """What one HTTP attempt did."""

    outcome: str  # succeeded | http_error | timeout | network_error | blocked
    started_at: datetime
    latency_ms: int
    response_status: int | None = None
    response_body: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "succeeded"


async def record(
    session: AsyncSession, results: list[tuple[Job, Outcome]], *, clock: Clock, settings: Settings,
    rand: Callable[[], float],
) -> None:
    """Log the attempts and move each delivery on (pipelined statements, one transaction).

    An update only applies while the lease token still matches: if a lease expired and another
    dispatcher took the delivery over, this outcome is logged but does not move the delivery.
    """
    if not results:
        return
    now = clock.now()
    session.add_all([WebhookAttempt(
        delivery_id=job.delivery_id, endpoint_id=job.endpoint_id, number=job.attempt, started_at=result.started_at,
        latency_ms=result.latency_ms, outcome=result.outcome, response_status=result.response_status,
        response_body=result.response_body, error=result.error) for job, result in results])
    await session.flush()
    rows: list[dict[str, Any]] = []
    for job, result in results:
        row: dict[str, Any] = {
            "b_id": job.delivery_id, "b_token": job.lease_token, "status": PENDING, "next_attempt_at": None,
            "delivered_at": None, "failed_at": None, "last_response_status": result.response_status,
        }
        if result.ok:
            row.update(status=SUCCEEDED, delivered_at=now)
        elif (delay := domain.retry_delay(job.attempt, settings.webhook_retry_schedule,
                                          jitter=settings.webhook_retry_jitter, rand=rand)) is None:
            row.update(status=FAILED, failed_at=now)
        else:
            row.update(next_attempt_at=now + delay)
        rows.append(row)
    table = cast(Table, WebhookDelivery.__table__)
    await session.execute(
        update(table).where(table.c.delivery_id == bindparam("b_id"), table.c.lease_token == bindparam("b_token"))
        .values(status=bindparam("status"),
                next_attempt_at=func.coalesce(bindparam("next_attempt_at", type_=table.c.next_attempt_at.type),
                                              table.c.next_attempt_at),
                delivered_at=bindparam("delivered_at"), failed_at=bindparam("failed_at"),
                last_response_status=bindparam("last_response_status"), lease_token=None, updated_at=now),
        rows)
    health: dict[str, list[bool]] = {}
    for job, result in results:
        health.setdefault(job.endpoint_id, []).append(result.ok)
    for endpoint_id in sorted(health):  # a fixed lock order across dispatchers
        outcomes = health[endpoint_id]
        await _track_endpoint_health(session, endpoint_id, failures=0 if any(outcomes) else len(outcomes),
                                     now=now, settings=settings, clock=clock)


async def _track_endpoint_health(
    session: AsyncSession, endpoint_id: str, *, failures: int, now: datetime, settings: Settings, clock: Clock,
) -> None:
    """A success ends the failure streak; a long enough streak disables the endpoint (event + audit)."""
    if failures == 0:
        await session.execute(update(WebhookEndpoint).where(
            WebhookEndpoint.endpoint_id == endpoint_id,
            (WebhookEndpoint.consecutive_failures != 0) | WebhookEndpoint.failing_since.is_not(None),
        ).values(consecutive_failures=0, failing_since=None))
        return
    row = (await session.execute(update(WebhookEndpoint).where(WebhookEndpoint.endpoint_id == endpoint_id).values(
        consecutive_failures=WebhookEndpoint.consecutive_failures + failures,
        failing_since=func.coalesce(WebhookEndpoint.failing_since, now),
    ).returning(WebhookEndpoint.consecutive_failures, WebhookEndpoint.failing_since))).one_or_none()
    if row is None or not domain.should_disable(
            consecutive_failures=row.consecutive_failures, failing_since=row.failing_since, now=now,
            min_failures=settings.webhook_disable_min_failures,
            after=timedelta(seconds=settings.webhook_disable_after_seconds)):
        return
    disabled = (await session.execute(update(WebhookEndpoint).where(
        and_(WebhookEndpoint.endpoint_id == endpoint_id, WebhookEndpoint.status == ENABLED),
    ).values(status=DISABLED, disabled_reason="failing", disabled_at=now, updated_at=now)
        .returning(WebhookEndpoint.url))).one_or_none()
    if disabled is None:
        return
    await publish(session, events.WebhookEndpointDisabled(
        endpoint_id=endpoint_id, url=disabled.url, reason="failing", disabled_at=now,
        failing_since=row.failing_since, consecutive_failures=row.consecutive_failures), clock=clock)
    await audit.record(session, clock=clock, actor=SYSTEM_ACTOR, action="webhook_endpoint.disabled",
                       target_type="webhook_endpoint", target_id=endpoint_id,
                       before={"status": ENABLED}, after={
                           "status": DISABLED, "disabled_reason": "failing",
                           "consecutive_failures": row.consecutive_failures,
                           "failing_since": row.failing_since.isoformat()})
