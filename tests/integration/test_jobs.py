"""The scheduler: each slot of a job runs once across many schedulers; catch-up, retries, alerts, orphans."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.clock import FrozenClock
from app.db import create_lock_engine
from app.jobs import Every, Job, Scheduler
from app.jobs.models import JobRun
from app.jobs.scheduler import LOCK_NAMESPACE, JobResult, lock_key
from app.outbox import OutboxEvent


async def until(condition: Callable[[], bool], *, limit: float = 10.0) -> None:
    """Wait on state: yield to the loop until ``condition`` holds (bounded)."""
    async with asyncio.timeout(limit):
        while not condition():
            await asyncio.sleep(0.005)


@pytest.fixture
async def lock_engines(database_url: str) -> AsyncIterator[list[AsyncEngine]]:
    engines = [create_lock_engine(database_url, pool_size=2, max_overflow=2) for _ in range(4)]
    yield engines
    for e in engines:
        await e.dispose()


def schedulers(jobs: list[Job], sessionmaker: async_sessionmaker[AsyncSession], engines: list[AsyncEngine],
               clock: FrozenClock, **kw: Any) -> list[Scheduler]:
    return [Scheduler(jobs, sessionmaker=sessionmaker, lock_engine=e, clock=clock, runner=f"instance-{i}", **kw)
            for i, e in enumerate(engines)]


async def runs(sessionmaker: async_sessionmaker[AsyncSession], job: str) -> list[JobRun]:
    async with sessionmaker() as s:
        return list((await s.scalars(select(JobRun).where(JobRun.job == job).order_by(JobRun.slot_at))).all())


async def test_each_slot_runs_once_when_four_instances_tick_at_the_same_time(
        sessionmaker: async_sessionmaker[AsyncSession], lock_engines: list[AsyncEngine], clock: FrozenClock) -> None:
    calls: list[datetime] = []
    release = asyncio.Event()

    async def work(slot: datetime) -> JobResult:
        calls.append(slot)
        await release.wait()  # hold the run open while the other instances tick
        return {"n": len(calls)}

    fleet = schedulers([Job("count", Every(60), work, "test")], sessionmaker, lock_engines, clock)
    for _ in range(3):  # three slots, each ticked by all four instances at once, twice
        ticks = [asyncio.create_task(s.tick()) for s in fleet for _ in range(2)]
        await until(lambda ticks=ticks: len(calls) >= 1 and sum(t.done() for t in ticks) == len(ticks) - 1)
        release.set()
        await asyncio.gather(*ticks)
        release.clear()
        assert len(calls) == 1, "a slot ran more than once"
        calls.clear()
        clock.advance(timedelta(seconds=60))
    rows = await runs(sessionmaker, "count")
    assert [r.status for r in rows] == ["succeeded"] * 3 and all(r.attempts == 1 for r in rows)
    assert len({r.slot_at for r in rows}) == 3


async def test_missed_slots_after_downtime_catch_up_in_one_run(
        sessionmaker: async_sessionmaker[AsyncSession], lock_engines: list[AsyncEngine], clock: FrozenClock) -> None:
    slots: list[datetime] = []

    async def work(slot: datetime) -> JobResult:
        slots.append(slot)
        return {}

    one = schedulers([Job("hourly", Every(3600), work, "test")], sessionmaker, lock_engines[:1], clock)[0]
    await one.tick()
    clock.advance(timedelta(hours=10, minutes=5))  # ten slots missed while every instance was down
    assert len(await one.tick()) == 1 and await one.tick() == []
    assert len(slots) == 2 and slots[1] - slots[0] == timedelta(hours=10)
    assert slots[1] == clock.now().replace(minute=0, second=0, microsecond=0)


async def test_a_failing_job_is_retried_with_backoff_then_raises_an_alert_event(
        sessionmaker: async_sessionmaker[AsyncSession], lock_engines: list[AsyncEngine], clock: FrozenClock) -> None:
    from app.jobs.wiring import JobWiring
    from tests.conftest import load_settings

    attempts: list[datetime] = []

    async def broken(slot: datetime) -> JobResult:
        attempts.append(clock.now())
        raise RuntimeError("the ledger is on fire")

    wiring = JobWiring(sessionmaker=sessionmaker, settings=load_settings({}, env="test", token_secret="x" * 40),
                       clock=clock, stripe=None)
    job = Job("fragile", Every(86_400), broken, "test", max_attempts=3, retry_base_seconds=60)
    one = Scheduler([job], sessionmaker=sessionmaker, lock_engine=lock_engines[0], clock=clock,
                    on_failure=wiring.on_failure)
    assert (await one.tick())[0].status == "retrying"
    assert await one.tick() == []  # the backoff has not passed
    clock.advance(timedelta(seconds=60))
    assert (await one.tick())[0].status == "retrying"
    clock.advance(timedelta(seconds=119))
    assert await one.tick() == []  # second backoff is 120 s
    clock.advance(timedelta(seconds=1))
    last = (await one.tick())[0]
    assert (last.status, last.attempts) == ("failed", 3) and len(attempts) == 3
    assert last.error == "RuntimeError: the ledger is on fire"
    clock.advance(timedelta(hours=1))
    assert await one.tick() == []  # failed for good: no more attempts until the next slot
    async with sessionmaker() as s:
        alerts = (await s.scalars(select(OutboxEvent).where(OutboxEvent.type == "job.failed"))).all()
    assert len(alerts) == 1 and alerts[0].payload["job"] == "fragile" and alerts[0].payload["attempts"] == 3


async def test_a_run_abandoned_by_a_dead_instance_is_retried_by_another(
        sessionmaker: async_sessionmaker[AsyncSession], lock_engines: list[AsyncEngine], clock: FrozenClock,
        database_url: str) -> None:
    calls: list[str] = []
    started = asyncio.Event()

    async def work(slot: datetime) -> JobResult:
        calls.append("run")
        started.set()
        await asyncio.Event().wait()  # never finishes: its instance "dies" below
        return {}

    async def quick(slot: datetime) -> JobResult:
        calls.append("retry")
        return {}

    doomed_engine = create_lock_engine(database_url, pool_size=1, max_overflow=0)
    doomed = Scheduler([Job("report", Every(3600), work, "test")], sessionmaker=sessionmaker,
                       lock_engine=doomed_engine, clock=clock, runner="doomed")
    task = asyncio.create_task(doomed.tick())
    await asyncio.wait_for(started.wait(), 10)
    survivor = Scheduler([Job("report", Every(3600), quick, "test")], sessionmaker=sessionmaker,
                         lock_engine=lock_engines[0], clock=clock, runner="survivor")
    assert await survivor.tick() == []  # the doomed instance still holds the job
    # the instance dies: the server loses its lock connection (as with a killed process's socket)
    async with sessionmaker() as s:
        pid = await s.scalar(text("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = :ns"
                                  " AND objid = :key"), {"ns": LOCK_NAMESPACE, "key": lock_key("report") % 2**32})
        assert pid is not None
        await s.execute(select(func.pg_terminate_backend(pid)))
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await doomed_engine.dispose()
    async with sessionmaker() as s:  # the row still says running: nobody recorded an outcome
        assert await s.scalar(select(JobRun.status).where(JobRun.job == "report")) == "running"
    ran = await survivor.tick()
    assert [(r.status, r.attempts) for r in ran] == [("succeeded", 2)] and calls == ["run", "retry"]
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(JobRun)) == 1


async def test_a_long_job_delays_neither_the_other_jobs_nor_the_loop(
        sessionmaker: async_sessionmaker[AsyncSession], lock_engines: list[AsyncEngine], clock: FrozenClock) -> None:
    release, quick_ran = asyncio.Event(), asyncio.Event()

    async def slow(slot: datetime) -> JobResult:
        await release.wait()
        return {}

    async def quick(slot: datetime) -> JobResult:
        quick_ran.set()
        return {}

    one = Scheduler([Job("slow", Every(3600), slow, "test"), Job("quick", Every(60), quick, "test")],
                    sessionmaker=sessionmaker, lock_engine=lock_engines[0], clock=clock, poll_seconds=0.05)
    stop = asyncio.Event()
    loop = asyncio.create_task(one.run(stop))
    await asyncio.wait_for(quick_ran.wait(), 10)
    quick_ran.clear()
    clock.advance(timedelta(seconds=60))
    await asyncio.wait_for(quick_ran.wait(), 10)  # the next slot of quick ran while slow still runs
    assert one.healthy() and not release.is_set()
    release.set()
    stop.set()
    await asyncio.wait_for(loop, 10)
    assert {r.job: r.status for r in await runs(sessionmaker, "slow")} == {"slow": "succeeded"}
