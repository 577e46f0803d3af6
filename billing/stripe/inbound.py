"""Stripe's webhook events in: verify, store once per event id, dispatch to the handlers registered by type.

Stripe delivers at least once, late and out of order, so:
* the ``stripe_events`` row (event id primary key) makes a second delivery a no-op once processed;
* the event is stored in its own short transaction, then handled in a second one that takes the row
  lock (two concurrent deliveries of one event serialize) and marks it processed; a failing handler
  rolls back its work, records the error and answers 500 so Stripe delivers again;
* handlers must be idempotent and order-safe on their own: re-read the current object (from our tables,
  or from Stripe) instead of trusting the event's snapshot.

Two kinds of handlers, and neither calls Stripe inside a transaction:
* ``@register("payment_intent.succeeded")``: ``(session, event, ctx)``, runs inside the event's transaction;
  ``ctx`` carries the clock and deliberately no gateway;
* ``@register_prepared("setup_intent.succeeded")``: ``(event, gateway)``, runs first, outside any transaction
  (it may call Stripe), and returns the step to run inside the event's transaction (or None).
Events without a handler are stored and marked processed (nothing to do).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import stripe
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import Clock
from billing.stripe.gateway import StripeGateway
from billing.stripe.models import StripeEventRecord

__all__ = ["EventContext", "Receipt", "StripeEventRecord", "process", "receive", "register", "register_prepared",
           "reprocess_pending"]

log = logging.getLogger("commerce.stripe.events")


@dataclass(frozen=True)
class EventContext:
    clock: Clock


EventHandler = Callable[[AsyncSession, stripe.Event, EventContext], Awaitable[None]]
Step = Callable[[AsyncSession, EventContext], Awaitable[None]]
Prepare = Callable[[stripe.Event, StripeGateway], Awaitable[Step | None]]
_HANDLERS: dict[str, list[EventHandler]] = {}
_PREPARED: dict[str, list[Prepare]] = {}


def register(event_type: str) -> Callable[[EventHandler], EventHandler]:
    """Decorator: call ``handler`` for every event of ``event_type`` (several handlers run in order)."""

    def add(handler: EventHandler) -> EventHandler:
        _HANDLERS.setdefault(event_type, []).append(handler)
        return handler

    return add


def register_prepared(event_type: str) -> Callable[[Prepare], Prepare]:
    """Decorator for handlers that need Stripe: run ``prepare`` outside any transaction, then its step inside."""

    def add(prepare: Prepare) -> Prepare:
        _PREPARED.setdefault(event_type, []).append(prepare)
        return prepare

    return add


def handlers_for(event_type: str) -> list[EventHandler]:
    return list(_HANDLERS.get(event_type, ()))


@dataclass(frozen=True)
class Receipt:
    event_id: str
    type: str
    duplicate: bool


async def receive(
    sessionmaker: async_sessionmaker[AsyncSession], gateway: StripeGateway, payload: bytes,
    signature_header: str | None, *, clock: Clock,
) -> Receipt:
    """Verify (InvalidWebhookSignature otherwise), store once, and handle one delivery of an event."""
    event = gateway.construct_event(payload, signature_header)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            insert(StripeEventRecord)
            .values(event_id=event.id, type=event.type, received_at=clock.now(), processed_at=None, attempts=0,
                    payload=json.loads(payload))
            .on_conflict_do_nothing(index_elements=["event_id"])
        )
    duplicate = not await process(sessionmaker, gateway, event, clock=clock)
    return Receipt(event_id=event.id, type=event.type, duplicate=duplicate)


async def process(
    sessionmaker: async_sessionmaker[AsyncSession], gateway: StripeGateway, event: stripe.Event, *, clock: Clock,
) -> bool:
    """Run the handlers of a stored event unless it was processed already; True when they ran now.

    The three steps: prepared handlers call Stripe (no transaction open), then the event's transaction runs
    every handler and marks the event processed. A concurrent duplicate may prepare too (prepared handlers
    are idempotent by key), but only one of them runs the transaction's steps.
    """
    ctx = EventContext(clock=clock)
    if await _processed(sessionmaker, event.id):
        return False
    try:
        steps = [step for prepare in _PREPARED.get(event.type, ()) if (step := await prepare(event, gateway))]
        async with sessionmaker() as session, session.begin():
            row = await session.scalar(
                select(StripeEventRecord).where(StripeEventRecord.event_id == event.id).with_for_update())
            assert row is not None, "the event is stored before it is processed"
            if row.processed_at is not None:
                return False
            for handler in handlers_for(event.type):
                await handler(session, event, ctx)
            for step in steps:
                await step(session, ctx)
            row.processed_at, row.attempts, row.last_error = clock.now(), row.attempts + 1, None
    except Exception as exc:
        log.exception("handling Stripe event %s (%s) failed", event.id, event.type)
        async with sessionmaker() as session, session.begin():
            await session.execute(
                update(StripeEventRecord).where(StripeEventRecord.event_id == event.id)
                .values(attempts=StripeEventRecord.attempts + 1, last_error=f"{type(exc).__name__}: {exc}"[:2000]))
        raise
    return True


async def _processed(sessionmaker: async_sessionmaker[AsyncSession], event_id: str) -> bool:
    async with sessionmaker() as session:
        at = await session.scalar(select(StripeEventRecord.processed_at).where(StripeEventRecord.event_id == event_id))
        return at is not None


async def reprocess_pending(
    sessionmaker: async_sessionmaker[AsyncSession], gateway: StripeGateway, *, clock: Clock, limit: int = 500,
) -> tuple[int, int]:
    """Run the handlers of stored events that were never processed (a handler failed); (done, failed)."""
    async with sessionmaker() as session:
        rows = (await session.scalars(
            select(StripeEventRecord).where(StripeEventRecord.processed_at.is_(None))
            .order_by(StripeEventRecord.received_at).limit(limit))).all()
    done = failed = 0
    for row in rows:
        event = gateway.client.construct_event_without_verification(json.dumps(row.payload))
        try:
            done += await process(sessionmaker, gateway, event, clock=clock)
        except Exception:
            failed += 1
    return done, failed
