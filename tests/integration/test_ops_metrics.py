"""The operations metrics move with the work: job runs and failures, webhook deliveries by outcome, outbox lag."""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.clock import FrozenClock
from app.db import create_lock_engine
from app.jobs import Every, Job, Scheduler
from app.jobs.scheduler import JobResult
from app.settings import Settings
from app.webhooks.dispatcher import Dispatcher
from tests.factories import emit_test_event, make_endpoint
from tests.support.receiver import Receiver, Reply


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_job_runs_durations_and_final_failures_are_counted_per_job(
        sessionmaker: async_sessionmaker[AsyncSession], database_url: str, clock: FrozenClock) -> None:
    async def fine(_slot: datetime) -> JobResult:
        return {}

    async def broken(_slot: datetime) -> JobResult:
        raise RuntimeError("no")

    before = {k: value(*k[:1], **dict(k[1:])) for k in (
        ("commerce_job_runs_total", ("job", "m_fine"), ("outcome", "succeeded")),
        ("commerce_job_runs_total", ("job", "m_broken"), ("outcome", "failed")),
        ("commerce_job_failures_total", ("job", "m_broken")),
        ("commerce_job_duration_seconds_count", ("job", "m_fine")))}
    lock_engine: AsyncEngine = create_lock_engine(database_url, pool_size=2, max_overflow=0)
    try:
        one = Scheduler([Job("m_fine", Every(60), fine, "test"),
                         Job("m_broken", Every(60), broken, "test", max_attempts=2, retry_base_seconds=10)],
                        sessionmaker=sessionmaker, lock_engine=lock_engine, clock=clock)
        await one.tick()
        assert value("commerce_job_failures_total", job="m_broken") == before[
            ("commerce_job_failures_total", ("job", "m_broken"))], "a failure with attempts left is not final"
        clock.advance(timedelta(seconds=10))
        await one.tick()  # the broken job's last attempt
    finally:
        await lock_engine.dispose()
    after = {k: value(*k[:1], **dict(k[1:])) for k in before}
    deltas = [after[k] - before[k] for k in before]
    assert deltas == [1, 2, 1, 1]


async def test_webhook_deliveries_are_counted_by_outcome_and_outbox_lag_is_observed(
        sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, clock: FrozenClock) -> None:
    quick = msgspec.structs.replace(settings, webhook_retry_schedule=(10,), webhook_retry_jitter=0.0,
                                    webhook_timeout_seconds=0.5, webhook_disable_min_failures=1000)
    succeeded, refused = value("commerce_webhook_delivery_attempts_total", outcome="succeeded"), \
        value("commerce_webhook_delivery_attempts_total", outcome="http_error")
    lag_count, lag_sum = value("commerce_outbox_lag_seconds_count"), value("commerce_outbox_lag_seconds_sum")
    replies = iter([Reply(status=500), Reply()])
    async with Receiver(lambda _r: next(replies)) as rx:
        await make_endpoint(sessionmaker, clock, quick, rx.url)
        await emit_test_event(sessionmaker, clock)
        clock.advance(timedelta(seconds=3))  # the event waited three seconds for the dispatcher
        d = Dispatcher(sessionmaker, settings=quick, clock=clock, rand=lambda: 0.5)
        try:
            await d.run_once()
            clock.advance(timedelta(seconds=10))
            await d.run_once()
        finally:
            await d.aclose()
    assert len(rx.requests) == 2
    assert value("commerce_webhook_delivery_attempts_total", outcome="http_error") - refused == 1
    assert value("commerce_webhook_delivery_attempts_total", outcome="succeeded") - succeeded == 1
    assert value("commerce_outbox_lag_seconds_count") - lag_count == 1  # the first attempt only
    assert value("commerce_outbox_lag_seconds_sum") - lag_sum == 3
