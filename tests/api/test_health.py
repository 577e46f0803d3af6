from __future__ import annotations

from typing import Any

import msgspec
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from app.asgi import create_app
from app.clock import FrozenClock
from app.settings import Settings


async def test_healthz_answers_without_credentials(client: AsyncTestClient[Any]) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_readyz_reports_database_at_migration_head(client: AsyncTestClient[Any]) -> None:
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["database"] == "ok" and body["migrations"] == "head"
    assert body["revision"] == body["expected"]


async def test_readyz_is_503_while_the_schema_is_not_at_head(client: AsyncTestClient[Any], sessionmaker: Any) -> None:
    async with sessionmaker() as s, s.begin():  # as after a deploy of newer code before `commerce migrate`
        await s.execute(text("UPDATE alembic_version SET version_num = '0018'"))
    r = await client.get("/readyz")
    assert r.status_code == 503, r.text
    body = r.json()
    assert (body["status"], body["database"], body["migrations"], body["revision"]) == (
        "unavailable", "ok", "behind", "0018")
    assert body["expected"] != "0018"


async def test_readyz_is_503_when_the_webhook_dispatcher_loop_has_stopped(settings: Settings,
                                                                         clock: FrozenClock) -> None:
    on = msgspec.structs.replace(settings, dispatcher="on")
    async with AsyncTestClient(app=create_app(on, clock=clock)) as c:
        body = (await c.get("/readyz")).json()
        assert (body["status"], body["dispatcher"]) == ("ok", "ok")
        task = c.app.state.dispatcher_task
        task.cancel()
        while not task.done():
            await c.get("/healthz")  # yield to the app's loop until the cancellation lands
        r = await c.get("/readyz")
        assert r.status_code == 503 and r.json()["dispatcher"] == "stopped"


async def test_openapi_document_is_served_and_documents_every_route(client: AsyncTestClient[Any]) -> None:
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert "/v1/accounts" in spec["paths"]
    assert "BearerAuth" in spec["components"]["securitySchemes"]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert op.get("summary"), f"{method.upper()} {path} has no summary"
