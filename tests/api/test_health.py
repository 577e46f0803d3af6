from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient


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


async def test_openapi_document_is_served_and_documents_every_route(client: AsyncTestClient[Any]) -> None:
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert "/v1/accounts" in spec["paths"]
    assert "BearerAuth" in spec["components"]["securitySchemes"]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert op.get("summary"), f"{method.upper()} {path} has no summary"
