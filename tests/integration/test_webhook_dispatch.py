"""The dispatcher against a real HTTP receiver on loopback, with a frozen clock."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import msgspec
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit import AuditEntry
from app.clock import FrozenClock
from app.outbox import OutboxEvent
from app.settings import Settings
from app.webhooks import service
from app.webhooks.dispatcher import Dispatcher
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.webhooks.verify import verify
from tests.factories import emit_test_event, make_endpoint
from tests.support.outbox import emit
from tests.support.receiver import Receiver, Reply

Maker = async_sessionmaker[AsyncSession]


@pytest.fixture
def wsettings(settings: Settings) -> Settings:
    return msgspec.structs.replace(
        settings, webhook_retry_schedule=(10, 60, 300), webhook_retry_jitter=0.0, webhook_timeout_seconds=0.5,
        webhook_disable_min_failures=1000, webhook_batch_size=50)


def dispatcher(sessionmaker: Maker, settings: Settings, clock: FrozenClock) -> Dispatcher:
    return Dispatcher(sessionmaker, settings=settings, clock=clock, rand=lambda: 0.5)


async def deliveries(sessionmaker: Maker) -> list[WebhookDelivery]:
    async with sessionmaker() as s:
        return list((await s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.event_seq))).all())


async def attempts(sessionmaker: Maker) -> list[WebhookAttempt]:
    async with sessionmaker() as s:
        return list((await s.scalars(select(WebhookAttempt).order_by(WebhookAttempt.attempt_id))).all())


async def test_event_is_delivered_once_signed_with_a_stable_event_id(
    sessionmaker: Maker, wsettings: Settings, clock: FrozenClock,
) -> None:
    async with Receiver() as rx:
        _, secret = await make_endpoint(sessionmaker, clock, wsettings, rx.url)
        event_id = await emit_test_event(sessionmaker, clock, n=42)
        d = dispatcher(sessionmaker, wsettings, clock)
        assert await d.run_once() >= 1
        assert await d.run_once() == 0
        await d.aclose()
    assert len(rx.requests) == 1
    req = rx.requests[0]
    assert req.method == "POST" and req.path == "/hooks"
    assert req.headers["commerce-event-id"] == event_id
    assert req.headers["content-type"] == "application/json"
    verify(req.body, req.headers["commerce-signature"], secret, now=clock.now().timestamp())
    body = json.loads(req.body)
    assert body["id"] == event_id and body["type"] == "test.ping" and body["data"] == {"n": 42}
    [delivery] = await deliveries(sessionmaker)
    assert delivery.status == "succeeded" and delivery.attempt_count == 1
    [attempt] = await attempts(sessionmaker)
    assert attempt.outcome == "succeeded" and attempt.response_status == 200 and attempt.response_body == "ok"
    assert attempt.latency_ms >= 0


async def test_500s_are_retried_on_the_backoff_schedule_then_dead_lettered(
    sessionmaker: Maker, wsettings: Settings, clock: FrozenClock,
) -> None:
    async with Receiver(lambda _r: Reply(status=500, body=b"boom" * 1000)) as rx:
        await make_endpoint(sessionmaker, clock, wsettings, rx.url)
        event_id = await emit_test_event(sessionmaker, clock)
        d = dispatcher(sessionmaker, wsettings, clock)
        await d.run_once()
        assert len(rx.requests) == 1
        for wait, expected_requests in [(9, 1), (1, 2), (59, 2), (1, 3), (299, 3), (1, 4), (10_000, 4)]:
            clock.advance(timedelta(seconds=wait))
            await d.run_once()
            assert len(rx.requests) == expected_requests, wait
        await d.aclose()
    assert {r.headers["commerce-event-id"] for r in rx.requests} == {event_id}
    assert [r.headers["commerce-delivery-attempt"] for r in rx.requests] == ["1", "2", "3", "4"]
    [delivery] = await deliveries(sessionmaker)
    assert delivery.status == "failed" and delivery.attempt_count == 4 and delivery.failed_at is not None
    log = await attempts(sessionmaker)
    assert [a.outcome for a in log] == ["http_error"] * 4
    assert all(a.response_status == 500 and a.response_body is not None and len(a.response_body) <= 1024
               for a in log)


async def test_timeouts_and_refused_connections_are_retried(
    sessionmaker: Maker, wsettings: Settings, clock: FrozenClock,
) -> None:
    answers = iter([Reply(delay=2.0), Reply(status=204, body=b"")])
    async with Receiver(lambda _r: next(answers)) as rx:
        await make_endpoint(sessionmaker, clock, wsettings, rx.url)
        await emit_test_event(sessionmaker, clock)
        d = dispatcher(sessionmaker, wsettings, clock)
        await d.run_once()
        [delivery] = await deliveries(sessionmaker)
        assert delivery.status == "pending" and delivery.next_attempt_at == clock.now() + timedelta(seconds=10)
        clock.advance(timedelta(seconds=10))
        await d.run_once()
        await d.aclose()
    assert [a.outcome for a in await attempts(sessionmaker)] == ["timeout", "succeeded"]
    assert (await deliveries(sessionmaker))[0].status == "succeeded"

    # Nothing listens any more: a network error, retried later.
    await emit_test_event(sessionmaker, clock)
    d = dispatcher(sessionmaker, wsettings, clock)
    await d.run_once()
    await d.aclose()
    assert (await attempts(sessionmaker))[-1].outcome == "network_error"
    assert (await deliveries(sessionmaker))[-1].status == "pending"


async def test_redirects_are_not_followed(sessionmaker: Maker, wsettings: Settings, clock: FrozenClock) -> None:
    async with Receiver(lambda _r: Reply(status=302, headers={"Location": "http://127.0.0.1:1/elsewhere"})) as rx:
        await make_endpoint(sessionmaker, clock, wsettings, rx.url)
        await emit_test_event(sessionmaker, clock)
        d = dispatcher(sessionmaker, wsettings, clock)
        await d.run_once()
        await d.aclose()
    assert len(rx.requests) == 1
    [attempt] = await attempts(sessionmaker)
    assert attempt.outcome == "http_error" and attempt.response_status == 302


async def test_two_dispatchers_racing_deliver_each_attempt_once(
    sessionmaker: Maker, wsettings: Settings, clock: FrozenClock,
) -> None:
    async with Receiver(lambda _r: Reply(delay=0.005)) as rx:
        await make_endpoint(sessionmaker, clock, wsettings, rx.url)
        await make_endpoint(sessionmaker, clock, wsettings, rx.url.replace("/hooks", "/other"))
        async with sessionmaker() as s, s.begin():
            ids = [await emit(s, clock=clock, type="test.ping", payload={"i": i}) for i in range(60)]
        settings = msgspec.structs.replace(wsettings, webhook_batch_size=7)
        a, b = dispatcher(sessionmaker, settings, clock), dispatcher(sessionmaker, settings, clock)
        await asyncio.gather(a.run_once(), b.run_once(), a.run_once(), b.run_once())
        await asyncio.gather(a.aclose(), b.aclose())
    seen = [(r.path, r.headers["commerce-event-id"]) for r in rx.requests]
    assert len(seen) == 120 and len(set(seen)) == 120
    assert {e for _, e in seen} == set(ids)
    rows = await deliveries(sessionmaker)
    assert len(rows) == 120 and all(r.status == "succeeded" and r.attempt_count == 1 for r in rows)


async def test_events_of_a_rolled_back_transaction_are_never_delivered(
    sessionmaker: Maker, wsettings: Settings, clock: FrozenClock,
) -> None:
    async with Receiver() as rx:
        await make_endpoint(sessionmaker, clock, wsettings, rx.url)
        with pytest.raises(RuntimeError):
            async with sessionmaker() as s, s.begin():
                await emit(s, clock=clock, type="test.lost", payload={})
                raise RuntimeError("rollback")
        kept = await emit_test_event(sessionmaker, clock)
        d = dispatcher(sessionmaker, wsettings, clock)
        await d.run_once()
        await d.aclose()
    assert [r.headers["commerce-event-id"] for r in rx.requests] == [kept]


async def test_an_event_committed_after_a_later_numbered_one_is_still_delivered(
    sessionmaker: Maker, wsettings: Settings, clock: FrozenClock,
) -> None:
    async with Receiver() as rx:
        await make_endpoint(sessionmaker, clock, wsettings, rx.url)
        d = dispatcher(sessionmaker, wsettings, clock)
        async with sessionmaker() as slow, slow.begin():
            early = await emit(slow, clock=clock, type="test.slow", payload={})  # lower seq, commits last
            await slow.flush()  # allocate its seq now
            late = await emit_test_event(sessionmaker, clock)
            await d.run_once()
            assert [r.headers["commerce-event-id"] for r in rx.requests] == [late]
        await d.run_once()
        await d.aclose()
    assert [r.headers["commerce-event-id"] for r in rx.requests] == [late, early]
    async with sessionmaker() as s:
        seqs = {e: q for e, q in (await s.execute(select(OutboxEvent.event_id, OutboxEvent.seq))).all()}
    assert seqs[early] < seqs[late]


async def test_secret_rotation_overlap_signs_with_both_until_it_ends(
    sessionmaker: Maker, wsettings: Settings, clock: FrozenClock,
) -> None:
    async with Receiver() as rx:
        endpoint_id, old = await make_endpoint(sessionmaker, clock, wsettings, rx.url)
        async with sessionmaker() as s, s.begin():
            rotated = await service.rotate_secret(s, endpoint_id, overlap_seconds=3600, actor="test",
                                                  settings=wsettings, clock=clock)
        d = dispatcher(sessionmaker, wsettings, clock)
        await emit_test_event(sessionmaker, clock)
        await d.run_once()
        clock.advance(timedelta(seconds=3600))
        await emit_test_event(sessionmaker, clock)
        await d.run_once()
        await d.aclose()
    during, after = rx.requests
    now = clock.now().timestamp()
    assert during.headers["commerce-signature"].count("v1=") == 2
    verify(during.body, during.headers["commerce-signature"], old, now=now - 3600)
    verify(during.body, during.headers["commerce-signature"], rotated.secret, now=now - 3600)
    assert after.headers["commerce-signature"].count("v1=") == 1
    verify(after.body, after.headers["commerce-signature"], rotated.secret, now=now)
    with pytest.raises(ValueError):
        verify(after.body, after.headers["commerce-signature"], old, now=now)


async def test_endpoint_failing_continuously_is_disabled_with_event_and_audit(
    sessionmaker: Maker, wsettings: Settings, clock: FrozenClock,
) -> None:
    settings = msgspec.structs.replace(wsettings, webhook_disable_min_failures=3,
                                       webhook_disable_after_seconds=60, webhook_retry_schedule=(30,) * 5)
    async with Receiver(lambda r: Reply(status=503)) as bad, Receiver() as good:
        bad_id, _ = await make_endpoint(sessionmaker, clock, settings, bad.url)
        await make_endpoint(sessionmaker, clock, settings, good.url, ["webhook_endpoint.disabled"])
        await emit_test_event(sessionmaker, clock)
        d = dispatcher(sessionmaker, settings, clock)
        for _ in range(4):
            await d.run_once()
            clock.advance(timedelta(seconds=30))
        await d.run_once()
        await d.aclose()
        assert len(bad.requests) == 3  # disabled after the third failure (>= 60 s of failing)
        [notice] = good.requests
    body = json.loads(notice.body)
    assert body["type"] == "webhook_endpoint.disabled"
    assert body["data"]["endpoint_id"] == bad_id and body["data"]["reason"] == "failing"
    async with sessionmaker() as s:
        endpoint = await s.get_one(WebhookEndpoint, bad_id)
        audits = (await s.scalars(select(AuditEntry).where(AuditEntry.action == "webhook_endpoint.disabled"))).all()
    assert endpoint.status == "disabled" and endpoint.disabled_reason == "failing"
    assert [a.actor for a in audits] == ["system:webhooks"]


async def test_a_success_resets_the_failure_streak(
    sessionmaker: Maker, wsettings: Settings, clock: FrozenClock,
) -> None:
    answers = iter([Reply(status=500), Reply(status=200)])
    async with Receiver(lambda _r: next(answers)) as rx:
        endpoint_id, _ = await make_endpoint(sessionmaker, clock, wsettings, rx.url)
        await emit_test_event(sessionmaker, clock)
        d = dispatcher(sessionmaker, wsettings, clock)
        await d.run_once()
        async with sessionmaker() as s:
            assert (await s.get_one(WebhookEndpoint, endpoint_id)).consecutive_failures == 1
        clock.advance(timedelta(seconds=10))
        await d.run_once()
        await d.aclose()
    async with sessionmaker() as s:
        endpoint = await s.get_one(WebhookEndpoint, endpoint_id)
    assert endpoint.consecutive_failures == 0 and endpoint.failing_since is None


async def test_deliveries_to_addresses_outside_the_allow_list_are_blocked(
    sessionmaker: Maker, wsettings: Settings, clock: FrozenClock,
) -> None:
    async with Receiver() as rx:
        await make_endpoint(sessionmaker, clock, wsettings, rx.url)
        await emit_test_event(sessionmaker, clock)
        strict = msgspec.structs.replace(wsettings, webhook_allowed_networks=())
        d = dispatcher(sessionmaker, strict, clock)
        await d.run_once()
        await d.aclose()
    assert rx.requests == []
    [attempt] = await attempts(sessionmaker)
    assert attempt.outcome == "blocked" and "internal" in (attempt.error or "")


async def test_unsubscribed_and_disabled_endpoints_get_nothing(
    sessionmaker: Maker, wsettings: Settings, clock: FrozenClock,
) -> None:
    async with Receiver() as rx:
        await make_endpoint(sessionmaker, clock, wsettings, rx.url, ["provision.requested"])
        off_id, _ = await make_endpoint(sessionmaker, clock, wsettings, rx.url)
        async with sessionmaker() as s, s.begin():
            await service.set_enabled(s, off_id, enabled=False, actor="test", clock=clock)
        await emit_test_event(sessionmaker, clock)
        d = dispatcher(sessionmaker, wsettings, clock)
        await d.run_once()
        await d.aclose()
    assert rx.requests == []
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(WebhookDelivery)) == 0


async def test_loop_runs_until_stopped(sessionmaker: Maker, wsettings: Settings, clock: FrozenClock) -> None:
    async with Receiver() as rx:
        await make_endpoint(sessionmaker, clock, wsettings, rx.url)
        stop = asyncio.Event()
        settings = msgspec.structs.replace(wsettings, webhook_poll_seconds=0.02)
        task = asyncio.create_task(dispatcher(sessionmaker, settings, clock).run(stop))
        await emit_test_event(sessionmaker, clock)
        for _ in range(200):
            if rx.requests:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 5)
    assert len(rx.requests) == 1


