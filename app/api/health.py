"""Liveness and readiness probes (public)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from sqlalchemy.ext.asyncio import AsyncConnection

from app.migrate import head_revision, revision_of
from app.schemas import Output


class Health(Output, frozen=True):
    status: str


class Readiness(Output, frozen=True):
    status: str
    database: str
    migrations: str
    revision: str | None = None
    expected: str | None = None
    dispatcher: str = "off"  # ok | off | stopped (its loop ended)
    scheduler: str = "off"  # ok | off | stalled (its loop ended or stopped ticking)


def _background(request: Request[Any, Any, Any]) -> tuple[str, str]:
    """Health of this process's webhook dispatcher and job scheduler loops."""
    state = request.app.state
    task = state.get("dispatcher_task")
    dispatcher = "off" if task is None else ("stopped" if task.done() else "ok")
    jobs = state.get("jobs")
    return dispatcher, "off" if jobs is None else jobs.health()


@get("/healthz", opt={"public": True, "owner": "public"}, tags=["Operations"], summary="The process is up")
async def healthz() -> Health:
    return Health(status="ok")


@get("/readyz", opt={"public": True, "owner": "public"}, tags=["Operations"],
     summary="Database reachable and migrated, background loops alive",
     description="503 until the database answers and its schema is at the migrations' head, and while this "
                 "process's webhook dispatcher or job scheduler (when switched on) has stopped.")
async def readyz(request: Request[Any, Any, Any]) -> Response[Readiness]:
    expected = head_revision()
    dispatcher, scheduler = _background(request)
    try:
        async with request.app.state.engine.connect() as conn:
            c: AsyncConnection = conn
            current = await revision_of(c)
    except Exception:
        body = Readiness(status="unavailable", database="unreachable", migrations="unknown", expected=expected,
                         dispatcher=dispatcher, scheduler=scheduler)
        return Response(body, status_code=503)
    migrations = "head" if current == expected else "behind"
    ready = migrations == "head" and dispatcher != "stopped" and scheduler != "stalled"
    body = Readiness(status="ok" if ready else "unavailable", database="ok", migrations=migrations,
                     revision=current, expected=expected, dispatcher=dispatcher, scheduler=scheduler)
    return Response(body, status_code=200 if ready else 503)
