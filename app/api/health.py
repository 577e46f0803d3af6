"""Liveness and readiness probes (public)."""

from __future__ import annotations

from typing import Any

from alembic.runtime.migration import MigrationContext
from litestar import Request, Response, get
from sqlalchemy.ext.asyncio import AsyncConnection

from app.migrate import head_revision
from app.schemas import Output


class Health(Output, frozen=True):
    status: str


class Readiness(Output, frozen=True):
    status: str
    database: str
    migrations: str
    revision: str | None = None
    expected: str | None = None


@get("/healthz", opt={"public": True, "owner": "public"}, tags=["Operations"], summary="The process is up")
async def healthz() -> Health:
    return Health(status="ok")


def _current_revision(sync_conn: Any) -> str | None:
    return MigrationContext.configure(sync_conn).get_current_revision()


@get("/readyz", opt={"public": True, "owner": "public"}, tags=["Operations"], summary="Database reachable and migrated",
     description="503 until the database answers and its schema is at the migrations' head.")
async def readyz(request: Request[Any, Any, Any]) -> Response[Readiness]:
    expected = head_revision()
    try:
        async with request.app.state.engine.connect() as conn:
            c: AsyncConnection = conn
            current = await c.run_sync(_current_revision)
    except Exception:
        body = Readiness(status="unavailable", database="unreachable", migrations="unknown", expected=expected)
        return Response(body, status_code=503)
    if current != expected:
        body = Readiness(status="unavailable", database="ok", migrations="behind", revision=current,
                         expected=expected)
        return Response(body, status_code=503)
    return Response(Readiness(status="ok", database="ok", migrations="head", revision=current, expected=expected))
