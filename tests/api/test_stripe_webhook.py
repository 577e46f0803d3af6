"""POST /v1/stripe/webhook: signature on the raw body, stored once per event id, dispatched by type."""

from __future__ import annotations

import json
import time
from typing import Any

import stripe
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.outbox import OutboxEvent
from billing.stripe import inbound as stripe_events
from billing.stripe.inbound import EventContext, StripeEventRecord
from tests.api.stripe_app import CardWorld
from tests.factories import bearer
from tests.stripe_server import widget_saves_card


def _event(event_id: str = "evt_test_1", type_: str = "test.ping") -> str:
    return json.dumps({"id": event_id, "object": "event", "api_version": stripe.api_version,
                       "created": int(time.time()), "livemode": False, "pending_webhooks": 1, "type": type_,
                       "data": {"object": {"id": "x_1", "object": "customer"}},
                       "request": {"id": None, "idempotency_key": None}})


async def _post(world: CardWorld, payload: str, header: str | None) -> Any:
    headers = {"Stripe-Signature": header} if header is not None else {}
    return await world.client.post("/v1/stripe/webhook", content=payload.encode(), headers=headers)


async def _rows(sessionmaker: Any) -> list[StripeEventRecord]:
    async with sessionmaker() as session:
        return list((await session.scalars(select(StripeEventRecord))).all())


async def test_a_signed_event_is_processed_once_and_a_duplicate_is_ignored(world: CardWorld,
                                                                         sessionmaker: Any) -> None:
    calls: list[str] = []

    @stripe_events.register("test.counted")
    async def count(session: AsyncSession, event: stripe.Event, ctx: EventContext) -> None:
        calls.append(event.id)

    try:
        payload = _event(type_="test.counted")
        first = await _post(world, payload, world.fake.sign(payload))
        again = await _post(world, payload, world.fake.sign(payload))  # Stripe retries, re-signed
    finally:
        stripe_events._HANDLERS["test.counted"].remove(count)
    assert first.status_code == 200 and first.json() == {"received": True, "event": "evt_test_1", "duplicate": False}
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert calls == ["evt_test_1"]
    [row] = await _rows(sessionmaker)
    assert (row.event_id, row.type, row.attempts) == ("evt_test_1", "test.counted", 1)
    assert row.processed_at is not None and row.payload["id"] == "evt_test_1"


async def test_bad_missing_or_old_signatures_are_400_and_nothing_is_stored(world: CardWorld,
                                                                         sessionmaker: Any) -> None:
    payload = _event()
    for header in (None, "garbage", world.fake.sign(payload + " "),
                   world.fake.sign(payload, timestamp=int(time.time()) - 600),
                   stripe.WebhookSignature.generate_signature_header(payload, "whsec_someone_else")):
        r = await _post(world, payload, header)
        assert r.status_code == 400, header
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "invalid_signature"
    assert await _rows(sessionmaker) == []


async def test_a_failing_handler_is_500_then_the_redelivery_processes_it(world: CardWorld,
                                                                        sessionmaker: Any) -> None:
    failures = [RuntimeError("database hiccup")]

    @stripe_events.register("test.flaky")
    async def flaky(session: AsyncSession, event: stripe.Event, ctx: EventContext) -> None:
        if failures:
            raise failures.pop()

    try:
        payload = _event("evt_flaky", "test.flaky")
        assert (await _post(world, payload, world.fake.sign(payload))).status_code == 500
        [row] = await _rows(sessionmaker)
        assert row.processed_at is None and row.attempts == 1 and "database hiccup" in (row.last_error or "")
        assert (await _post(world, payload, world.fake.sign(payload))).json()["duplicate"] is False
    finally:
        stripe_events._HANDLERS["test.flaky"].remove(flaky)
    [row] = await _rows(sessionmaker)
    assert row.processed_at is not None and row.attempts == 2 and row.last_error is None


async def test_card_saved_event_sets_the_default_once_even_when_delivered_twice(world: CardWorld,
                                                                               sessionmaker: Any) -> None:
    card = await widget_saves_card(world.client, bearer(world.a.user_token), world.a.user)
    [event] = world.fake.events_of("setup_intent.succeeded")
    assert [r.json()["duplicate"] for r in await world.deliver()] == [False]
    world.fake._undelivered.append(event)  # Stripe delivers it again
    assert [r.json()["duplicate"] for r in await world.deliver()] == [True]
    customer = world.fake.objects[world.fake.objects[card]["customer"]]
    assert customer["invoice_settings"]["default_payment_method"] == card
    async with sessionmaker() as session:
        saved = (await session.scalars(select(OutboxEvent).where(OutboxEvent.type == "payment_method.saved"))).all()
    assert [(e.payload["payment_method"], e.payload["is_default"], e.payload["last4"]) for e in saved] == [
        (card, True, "4242")]


async def test_a_late_card_saved_event_does_not_override_a_newer_default(world: CardWorld) -> None:
    h = bearer(world.a.user_token)
    first = await widget_saves_card(world.client, h, world.a.user)
    second = await widget_saves_card(world.client, h, world.a.user, "pm_card_mastercard")
    r = await world.client.post(f"/v1/payment-methods/{second}/default?user={world.a.user}", headers=h)
    assert r.status_code == 200
    await world.client.delete(f"/v1/payment-methods/{first}?user={world.a.user}", headers=h)
    await world.deliver()  # both setup_intent.succeeded events arrive only now, out of date
    customer = world.fake.objects[world.fake.objects[second]["customer"]]
    assert customer["invoice_settings"]["default_payment_method"] == second


async def test_unhandled_event_types_are_stored_and_marked_processed(world: CardWorld, sessionmaker: Any) -> None:
    payload = _event("evt_other", "customer.updated")
    assert (await _post(world, payload, world.fake.sign(payload))).status_code == 200
    async with sessionmaker() as session:
        assert await session.scalar(
            select(func.count()).select_from(StripeEventRecord).where(StripeEventRecord.processed_at.is_not(None))) == 1


async def test_reprocess_pending_retries_events_whose_handler_failed(world: CardWorld, sessionmaker: Any) -> None:
    failures = [RuntimeError("down")]

    @stripe_events.register("test.later")
    async def later(session: AsyncSession, event: stripe.Event, ctx: EventContext) -> None:
        if failures:
            raise failures.pop()

    try:
        payload = _event("evt_later", "test.later")
        assert (await _post(world, payload, world.fake.sign(payload))).status_code == 500
        gateway = world.client.app.state.stripe
        clock = world.client.app.state.clock
        assert await stripe_events.reprocess_pending(sessionmaker, gateway, clock=clock) == (1, 0)
        assert await stripe_events.reprocess_pending(sessionmaker, gateway, clock=clock) == (0, 0)
    finally:
        stripe_events._HANDLERS["test.later"].remove(later)
