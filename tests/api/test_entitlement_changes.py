"""The entitlement change stream over HTTP: JSON batches with a resumable cursor, and server-sent events."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from app.clock import FrozenClock, SystemClock
from app.demo import demo_catalog_toml
from app.settings import Settings
from tests.api.test_auth import assert_problem
from tests.api.test_catalog import seed_demo
from tests.factories import bearer, make_key, session_token
from tests.support.live_server import live_server

CHANGES = "/v1/entitlements/changes"


@pytest.fixture
async def key(client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock) -> str:
    k = await make_key(sessionmaker, clock)
    await seed_demo(client, k)
    return k


async def poll(client: AsyncTestClient[Any], token: str, cursor: str | None = None) -> dict[str, Any]:
    r = await client.get(CHANGES, params={"cursor": cursor} if cursor else {}, headers=bearer(token))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def grant(client: AsyncTestClient[Any], key: str, account: str, **body: Any) -> None:
    r = await client.post(f"/v1/accounts/{account}/grants", json=body, headers=bearer(key))
    assert r.status_code in (200, 201), r.text


async def test_a_cursor_resumes_after_a_grant_and_a_usage_batch(client: AsyncTestClient[Any], key: str) -> None:
    first = await poll(client, key)
    assert first["changes"] == [] and first["reset"] is False and first["catalog_revision"] >= 1
    await grant(client, key, "acme", module="reports_pro", user="acme-ana", source_ref="c-1")
    await grant(client, key, "globex", module="comments", source_ref="c-2")  # account-wide
    second = await poll(client, key, first["cursor"])
    assert sorted(second["changes"], key=lambda c: c["account"]) == [
        {"account": "acme", "user": "acme-ana"}, {"account": "globex", "user": None}]
    assert (await poll(client, key, second["cursor"]))["changes"] == []  # nothing is told twice
    r = await client.post("/v1/usage", headers=bearer(key), json={"events": [
        {"event_id": "u-1", "user": "acme-vic", "feature": "reports", "quantity": 1}]})
    assert r.status_code == 200, r.text
    assert (await poll(client, key, second["cursor"]))["changes"] == [{"account": "acme", "user": "acme-vic"}]


async def test_an_end_user_hears_only_of_itself_and_its_account(client: AsyncTestClient[Any], key: str) -> None:
    ana = await session_token(client, key, "acme", "acme-ana")
    start = await poll(client, ana)
    await grant(client, key, "acme", module="reports_pro", user="acme-vic", source_ref="c-3")
    await grant(client, key, "globex", module="comments", source_ref="c-4")
    assert (await poll(client, ana, start["cursor"]))["changes"] == []
    await grant(client, key, "acme", module="comments", source_ref="c-5")
    assert (await poll(client, ana, start["cursor"]))["changes"] == [{"account": "acme", "user": None}]


async def test_a_key_bound_to_an_account_hears_nothing_of_others(client: AsyncTestClient[Any], key: str) -> None:
    r = await client.post("/v1/api-keys", headers=bearer(key), json={
        "name": "globex-only", "scopes": ["entitlements:read"], "accounts": ["globex"]})
    bound = r.json()["secret"]
    start = await poll(client, bound)
    await grant(client, key, "acme", module="reports_pro", user="acme-ana", source_ref="c-6")
    assert (await poll(client, bound, start["cursor"]))["changes"] == []


async def test_a_malformed_cursor_is_a_400_and_a_stale_one_resets(client: AsyncTestClient[Any], key: str) -> None:
    r = await client.get(CHANGES, params={"cursor": "bm90LWEtY3Vyc29y"}, headers=bearer(key))
    assert_problem(r, 400)
    stale = base64.urlsafe_b64encode(b"1.1000").decode().rstrip("=")  # issued in 1970: past the retention
    answer = await poll(client, key, stale)
    assert answer["reset"] is True and answer["changes"] == [] and answer["cursor"] != stale


async def test_the_event_stream_delivers_a_committed_grant(settings: Settings, sessionmaker: Any,
                                                           tmp_path: Path) -> None:
    # a real server: the in-process test client buffers whole responses, and a stream never ends
    key = await make_key(sessionmaker, SystemClock())
    assert settings.database_url is not None
    with live_server(settings.database_url, tmp_path / "live", settings.token_secret) as base:
        async with httpx.AsyncClient(base_url=base, headers=bearer(key), timeout=10) as http:
            await http.post("/v1/accounts", json={"external_id": "acme", "name": "Acme"})
            await http.post("/v1/accounts/acme/users", json={"external_id": "acme-ana"})
            await http.post("/v1/catalog/apply", json={"toml": demo_catalog_toml()})
            async with http.stream("GET", CHANGES, headers={"Accept": "text/event-stream"}) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                events = _events(response.aiter_lines())
                kind, ready = await anext(events)
                assert kind == "ready" and ready["reset"] is False
                r = await http.post("/v1/accounts/acme/grants", json={
                    "module": "reports_pro", "user": "acme-ana", "source_ref": "c-7"})
                assert r.status_code == 201, r.text
                kind, batch = await asyncio.wait_for(anext(events), 5)
    assert kind == "changes" and batch["changes"] == [{"account": "acme", "user": "acme-ana"}]
    assert batch["cursor"] != ready["cursor"]


async def _events(lines: Any) -> Any:
    kind, data = "", ""
    async for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data += line[6:]
        elif line == "" and data:
            yield kind, json.loads(data)
            kind, data = "", ""
