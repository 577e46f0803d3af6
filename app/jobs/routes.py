"""Operations routes: the scheduled jobs' state."""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from app.deps import ClockDep, DbSession, SettingsDep
from app.jobs.status import JobsRead, job_status


@get("/v1/ops/jobs", opt={"scope": "ops:read", "owner": "vendor"}, tags=["Operations"],
     summary="Scheduled jobs: last run, outcome, duration and next run",
     description="Every periodic job of the deployment, whichever instance ran it.")
async def list_jobs(request: Request[Any, Any, Any], db_session: DbSession, clock: ClockDep,
                    settings: SettingsDep) -> JobsRead:
    jobs = request.app.state.job_list
    return JobsRead(scheduler=settings.scheduler, data=await job_status(db_session, jobs, now=clock.now()))
