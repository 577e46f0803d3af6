"""Periodic jobs inside the service: each slot of each job runs once across every instance.

Any number of processes (app workers, ``commerce worker``) run a ``Scheduler``. For each job, a process
first takes a PostgreSQL session advisory lock named after the job on a connection of the lock pool, so
one process at a time looks at and runs that job; the run itself is a row keyed by (job, slot), so a slot
can never run twice even if clocks disagree. The lock is held for the whole run and dies with its
connection: a row left ``running`` while its lock is free belongs to a dead process and is retried.
Missed slots after downtime collapse into one run of the latest slot (the jobs catch up everything due).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app import metrics
from app.clock import Clock
from app.jobs.models import JobRun
from app.jobs.schedule import Schedule, retry_delay
from app.tracing import job_span

log = logging.getLogger("commerce.jobs")

LOCK_NAMESPACE = 0x4A4F4253  # 'JOBS': the two-key advisory lock space, apart from the one-key space
ERROR_MAX_CHARS = 500
OPEN = ("running", "retrying")

JobResult = Mapping[str, Any]


@dataclass(frozen=True)
class Job:
    """A periodic job: ``run(slot_at)`` does the work in its own transactions and returns counts."""

    name: str
    schedule: Schedule
    run: Callable[[datetime], Awaitable[JobResult]]
    description: str
    max_attempts: int = 3
    retry_base_seconds: int = 60
    timeout_seconds: float = 3600.0


@dataclass(frozen=True)
class Ran:
    """What one run did (returned to the CLI and tests)."""

    job: str
    slot_at: datetime
    status: str
    attempts: int
    duration_ms: int
    detail: JobResult | None = None
    error: str | None = None


FailureHook = Callable[[AsyncSession, Job, JobRun], Awaitable[None]]


def runner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def lock_key(name: str) -> int:
    """A signed 32-bit key per job name for ``pg_try_advisory_lock(namespace, key)``."""
    return int.from_bytes(zlib.crc32(name.encode()).to_bytes(4, "big"), "big", signed=True)


class Scheduler:
    """Runs due jobs; ``tick`` is one pass over every job (tests call it directly), ``run`` loops."""

    def __init__(self, jobs: Sequence[Job], *, sessionmaker: async_sessionmaker[AsyncSession],
                 lock_engine: AsyncEngine, clock: Clock, poll_seconds: float = 15.0,
                 on_failure: FailureHook | None = None, runner: str | None = None, concurrency: int = 4) -> None:
        assert len({j.name for j in jobs}) == len(jobs), "job names are unique"
        self.jobs = {j.name: j for j in jobs}
        self.sessionmaker, self._lock_engine, self._clock = sessionmaker, lock_engine, clock
        self._poll_seconds, self._on_failure = poll_seconds, on_failure
        self.runner = runner or runner_name()
        self._slots = asyncio.Semaphore(concurrency)
        self.last_tick_at: float | None = None  # monotonic; readiness asks whether the loop is alive

    # -- the loop ---------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, grace_seconds: float = 10.0) -> None:
        """Every poll, start each job that is not already running here as a task of its own, so a long job
        (a billing run) neither delays the others nor the loop; on stop, running jobs get ``grace_seconds``,
        then are cancelled (their slots are retried by another process, or this one after a restart)."""
        log.info("scheduler started", extra={"jobs": sorted(self.jobs)})
        running: dict[str, asyncio.Task[Ran | None]] = {}
        while not stop.is_set():
            for name, job in self.jobs.items():
                if name not in running or running[name].done():
                    running[name] = asyncio.create_task(self._guarded(job), name=f"job-{name}")
            self.last_tick_at = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._poll_seconds)
        pending = [t for t in running.values() if not t.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace_seconds)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        log.info("scheduler stopped")

    async def _guarded(self, job: Job) -> Ran | None:
        try:
            return await self._under_lock(job, manual=False)
        except Exception:  # the database is away, say: the next poll tries again
            log.exception("scheduler pass for %s failed; retrying", job.name)
            return None

    def healthy(self) -> bool:
        """The loop polled recently (long jobs run in their own tasks and never hold it up)."""
        if self.last_tick_at is None:
            return True  # still starting
        return time.monotonic() - self.last_tick_at < max(60.0, 4 * self._poll_seconds)

    async def tick(self) -> list[Ran]:
        """One pass over every job, waiting for what it runs (tests and ``commerce jobs``)."""
        self.last_tick_at = time.monotonic()
        results = await asyncio.gather(*(self._under_lock(job, manual=False) for job in self.jobs.values()))
        return [r for r in results if r is not None]

    async def run_now(self, name: str) -> Ran | None:
        """Run one job at once (``commerce jobs run``); None when another process is running it."""
        return await self._under_lock(self.jobs[name], manual=True)

    # -- one job ----------------------------------------------------------------------------------------

    async def _under_lock(self, job: Job, *, manual: bool) -> Ran | None:
        async with self._slots:  # bounds the lock connections (and concurrent jobs) of this process
            return await self._locked(job, manual=manual)

    async def _locked(self, job: Job, *, manual: bool) -> Ran | None:
        conn = await self._lock_engine.connect()
        try:
            if not await _try_lock(conn, job.name):
                return None
            claimed = await self._claim(job, manual=manual)
            if claimed is None:
                return None
            return await self._execute(job, claimed)
        finally:
            await asyncio.shield(_release(conn))

    async def _claim(self, job: Job, *, manual: bool) -> JobRun | None:
        """Pick the run to do now (orphan, due retry, new slot or manual) and mark it running."""
        now = self._clock.now()
        async with self.sessionmaker() as session, session.begin():
            open_runs = list((await session.scalars(
                select(JobRun).where(JobRun.job == job.name, JobRun.status.in_(OPEN)).order_by(JobRun.slot_at)
            )).all())
            for run in open_runs:
                if run.status == "running":  # we hold the job's lock, so its runner is gone
                    log.warning("job %s: the run of %s was abandoned by %s; retrying", job.name,
                                run.slot_at.isoformat(), run.runner)
                    if not await self._failed(session, job, run, now=now, error="abandoned by a dead process"):
                        continue
                    run.next_attempt_at = now
            if manual:
                return await self._start_new(session, job, slot_at=now, trigger="manual", now=now)
            due = [r for r in open_runs if r.status == "retrying" and r.next_attempt_at is not None
                   and r.next_attempt_at <= now]
            latest = job.schedule.latest(now)
            done = await session.scalar(select(func.max(JobRun.slot_at)).where(
                JobRun.job == job.name, JobRun.trigger == "schedule"))
            if done is None or done < latest:
                for run in open_runs:  # the new slot's run catches up what an older pending retry would do
                    if run.status == "retrying":
                        run.status, run.next_attempt_at = "superseded", None
                return await self._start_new(session, job, slot_at=latest, trigger="schedule", now=now)
            if due:
                run = due[0]
                run.status, run.started_at, run.runner = "running", now, self.runner
                run.attempts += 1
                run.next_attempt_at = None
                return run
            return None

    async def _start_new(self, session: AsyncSession, job: Job, *, slot_at: datetime, trigger: str,
                         now: datetime) -> JobRun | None:
        inserted = await session.scalar(
            insert(JobRun).values(job=job.name, slot_at=slot_at, status="running", attempts=1, trigger=trigger,
                                  started_at=now, runner=self.runner)
            .on_conflict_do_nothing().returning(JobRun.slot_at))
        if inserted is None:  # the unique (job, slot) row is the last word, whatever the locks said
            return None
        return await session.get(JobRun, (job.name, slot_at))

    async def _execute(self, job: Job, run: JobRun) -> Ran:
        started = time.perf_counter()
        log.info("job %s started (slot %s, attempt %d)", job.name, run.slot_at.isoformat(), run.attempts)
        detail: JobResult | None = None
        error: str | None = None
        try:
            with job_span(job.name, run.slot_at.isoformat()):
                detail = await asyncio.wait_for(job.run(run.slot_at), timeout=job.timeout_seconds)
        except Exception as exc:  # any failure of the work is recorded, retried and alerted; never fatal here
            log.exception("job %s failed (slot %s, attempt %d)", job.name, run.slot_at.isoformat(), run.attempts)
            error = f"{type(exc).__name__}: {exc}"[:ERROR_MAX_CHARS]
        duration_ms = int((time.perf_counter() - started) * 1000)
        now = self._clock.now()
        async with self.sessionmaker() as session, session.begin():
            row = await session.get(JobRun, (run.job, run.slot_at), with_for_update=True)
            assert row is not None
            row.finished_at, row.duration_ms = now, duration_ms
            if error is None:
                row.status, row.error = "succeeded", None
                row.detail = dict(detail or {})
            else:
                await self._failed(session, job, row, now=now, error=error)
            status, attempts = row.status, row.attempts
        metrics.JOB_RUNS.labels(job=job.name, outcome="succeeded" if error is None else "failed").inc()
        metrics.JOB_SECONDS.labels(job=job.name).observe(duration_ms / 1000)
        log.info("job %s %s in %d ms", job.name, status, duration_ms, extra={"detail": detail})
        return Ran(job=job.name, slot_at=run.slot_at, status=status, attempts=attempts, duration_ms=duration_ms,
                   detail=detail, error=error)

    async def _failed(self, session: AsyncSession, job: Job, run: JobRun, *, now: datetime, error: str) -> bool:
        """Record a failed attempt; True when it will be retried, else the run failed for good (alerted)."""
        run.error = error
        if run.attempts < job.max_attempts:
            run.status = "retrying"
            run.next_attempt_at = now + retry_delay(attempt=run.attempts, base_seconds=job.retry_base_seconds)
            return True
        run.status, run.next_attempt_at = "failed", None
        log.error("job %s failed for good after %d attempts (slot %s): %s", job.name, run.attempts,
                  run.slot_at.isoformat(), error)
        metrics.JOB_FAILURES.labels(job=job.name).inc()
        if self._on_failure is not None:
            await self._on_failure(session, job, run)
        return False


async def _try_lock(conn: AsyncConnection, name: str) -> bool:
    got = bool(await conn.scalar(select(func.pg_try_advisory_lock(LOCK_NAMESPACE, lock_key(name)))))
    await conn.commit()  # a session lock outlives this transaction; nothing stays open while the job runs
    return got


async def _release(conn: AsyncConnection) -> None:
    """Give the connection back without locks; one that cannot say so is dropped (the server unlocks it)."""
    try:
        await conn.execute(select(func.pg_advisory_unlock_all()))
        await conn.commit()
        await conn.close()
    except Exception as exc:
        log.warning("could not release a job lock (%s); closing its connection", exc)
        await conn.invalidate()
        await conn.close()


async def purge_history(session: AsyncSession, *, before: datetime) -> int:
    """Delete finished runs that started before ``before`` (open runs are kept whatever their age)."""
    result = await session.execute(delete(JobRun).where(JobRun.status.not_in(OPEN), JobRun.slot_at < before))
    return int(getattr(result, "rowcount", 0) or 0)
