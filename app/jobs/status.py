"""What each job did last and when it runs next (``commerce jobs`` and ``GET /v1/ops/jobs``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from app.jobs.models import JobRun
from app.jobs.scheduler import Job
from app.schemas import Output


class JobRead(Output, frozen=True):
    name: str
    description: str
    schedule: str
    next_run_at: datetime
    last_slot_at: datetime | None = None
    last_status: str | None = None
    last_trigger: str | None = None
    last_started_at: datetime | None = None
    last_finished_at: datetime | None = None
    last_duration_ms: int | None = None
    last_attempts: int | None = None
    last_error: str | None = None
    last_detail: dict[str, Any] | None = None
    last_success_at: datetime | None = None


class JobsRead(Output, frozen=True):
    scheduler: str
    data: list[JobRead]


async def job_status(session: AsyncSession, jobs: Sequence[Job], *, now: datetime) -> list[JobRead]:
    """Three small queries for every job: the latest run of each, and the latest success of each."""
    names = [j.name for j in jobs]
    latest = {r.job: r for r in (await session.scalars(
        select(JobRun).where(JobRun.job.in_(names)).ext(distinct_on(JobRun.job))
        .order_by(JobRun.job, JobRun.started_at.desc().nulls_last(), JobRun.slot_at.desc()))).all()}
    scheduled: dict[str, datetime] = {job: at for job, at in (await session.execute(
        select(JobRun.job, func.max(JobRun.slot_at)).where(JobRun.job.in_(names), JobRun.trigger == "schedule")
        .group_by(JobRun.job))).all()}
    success: dict[str, datetime | None] = {job: at for job, at in (await session.execute(
        select(JobRun.job, func.max(JobRun.finished_at)).where(JobRun.job.in_(names), JobRun.status == "succeeded")
        .group_by(JobRun.job))).all()}
    return [_read(job, latest.get(job.name), scheduled.get(job.name), success.get(job.name), now=now) for job in jobs]


def _read(job: Job, run: JobRun | None, last_scheduled: datetime | None, success: datetime | None, *,
          now: datetime) -> JobRead:
    slot = job.schedule.latest(now)
    if last_scheduled is None or last_scheduled < slot:
        next_run = slot  # due now: the next tick of any instance runs it
    elif run is not None and run.status == "retrying" and run.next_attempt_at is not None:
        next_run = run.next_attempt_at
    else:
        next_run = job.schedule.following(now)
    base = JobRead(name=job.name, description=job.description, schedule=job.schedule.describe(),
                   next_run_at=next_run, last_success_at=success)
    if run is None:
        return base
    return JobRead(name=job.name, description=job.description, schedule=job.schedule.describe(),
                   next_run_at=next_run, last_success_at=success, last_slot_at=run.slot_at, last_status=run.status,
                   last_trigger=run.trigger, last_started_at=run.started_at, last_finished_at=run.finished_at,
                   last_duration_ms=run.duration_ms, last_attempts=run.attempts, last_error=run.error,
                   last_detail=run.detail)
