"""Domain events (app/events.py): subscribers run in the publishing transaction, before the outbox row is written;
they commit or roll back with it; a session without the app's bus publishes to the outbox only."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app import audit
from app.audit import AuditEntry
from app.clock import FrozenClock
from app.db import make_sessionmaker
from app.events import Bus, Published, publish
from app.outbox import OutboxEvent
from app.webhooks.events import WebhookEndpointDisabled


def disabled(clock: FrozenClock) -> WebhookEndpointDisabled:
    return WebhookEndpointDisabled(endpoint_id="whe_1", url="https://a.example.com/x", reason="manual",
                                   disabled_at=clock.now())


async def rows(sessionmaker: async_sessionmaker[AsyncSession]) -> tuple[list[OutboxEvent], list[AuditEntry]]:
    async with sessionmaker() as s:
        return list((await s.scalars(select(OutboxEvent))).all()), list((await s.scalars(select(AuditEntry))).all())


async def test_subscribers_run_in_the_publishing_transaction_before_the_outbox_row(
        engine: AsyncEngine, clock: FrozenClock) -> None:
    heard: list[tuple[str, str | None, int]] = []

    async def note(session: AsyncSession, published: Published[WebhookEndpointDisabled]) -> None:
        pending = [o for o in session.new if isinstance(o, OutboxEvent)]
        heard.append((published.event.endpoint_id, published.account_id, len(pending)))
        await audit.record(session, clock=clock, actor="subscriber", action="heard", target_type="event",
                           target_id=published.event_id)

    bus = Bus()
    bus.subscribe(WebhookEndpointDisabled, note)
    sessions = make_sessionmaker(engine, info=bus.session_info())
    async with sessions() as s, s.begin():
        event_id = await publish(s, disabled(clock), clock=clock, account_id=None)
    outbox, entries = await rows(sessions)
    assert heard == [("whe_1", None, 0)]  # before its own outbox row existed
    assert [(o.event_id, o.type, o.payload["endpoint_id"]) for o in outbox] == [
        (event_id, "webhook_endpoint.disabled", "whe_1")]
    assert [(e.action, e.target_id) for e in entries] == [("heard", event_id)]


async def test_a_failing_subscriber_fails_the_fact_with_it(engine: AsyncEngine, clock: FrozenClock) -> None:
    async def refuse(session: AsyncSession, published: Published[WebhookEndpointDisabled]) -> None:
        await audit.record(session, clock=clock, actor="subscriber", action="heard", target_type="event",
                           target_id=published.event_id)
        raise RuntimeError("the subscriber failed")

    bus = Bus()
    bus.subscribe(WebhookEndpointDisabled, refuse)
    sessions = make_sessionmaker(engine, info=bus.session_info())
    with pytest.raises(RuntimeError):
        async with sessions() as s, s.begin():
            await publish(s, disabled(clock), clock=clock)
    assert await rows(sessions) == ([], [])  # neither the event nor what the subscriber wrote


async def test_a_session_without_the_bus_writes_the_outbox_only(
        sessionmaker: async_sessionmaker[AsyncSession], clock: FrozenClock) -> None:
    async with sessionmaker() as s, s.begin():
        await publish(s, disabled(clock), clock=clock, extra={"note": None})
    [row], entries = await rows(sessionmaker)
    assert entries == [] and row.payload == {**msgspec.to_builtins(disabled(clock)), "note": None}


def test_only_catalogued_payloads_are_published_or_subscribed_to() -> None:
    class Stray(WebhookEndpointDisabled, frozen=True):
        pass

    async def anyone(session: AsyncSession, published: Published[Any]) -> None:
        del session, published

    with pytest.raises(AssertionError, match="not a registered event payload"):
        Bus().subscribe(Stray, anyone)
