"""Idempotency-Key: replay, conflicting body, concurrent duplicates, expiry, failures."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from litestar import Request, Response, post
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, text

from app.audit import AuditEntry
from app.clock import FrozenClock
from app.deps import DbSession
from app.errors import Unprocessable
from app.idempotency import run_idempotent
from app.settings import Settings
from tests.api.test_auth import assert_problem
from tests.factories import bearer, make_key
from tests.support.apps import commerce_app

CALLS: list[str] = []
STARTED, GATE = asyncio.Event(), asyncio.Event()  # a request that waits inside its work until the test says


@post("/v1/test-slow-charge", opt={"scope": "commerce:write"}, status_code=201)
async def slow_charge(request: Request[Any, Any, Any], db_session: DbSession) -> Response[dict[str, Any]]:
    async def produce() -> tuple[int, dict[str, Any]]:
        body = await request.json()
        CALLS.append(body["ref"])
        if body.get("wait"):
            STARTED.set()
            await asyncio.wait_for(GATE.wait(), 20)
        await db_session.execute(text("SELECT pg_sleep(0.3)"))
        if body.get("fail"):
            raise Unprocessable("cannot charge this", reason="test")
        return 201, {"charged": body["amount_minor"], "ref": body["ref"], "n": len(CALLS)}

    return await run_idempotent(request, db_session, produce, required=True)


@pytest.fixture
async def slow_client(settings: Settings, clock: FrozenClock) -> Any:
    CALLS.clear()
    STARTED.clear()
    GATE.clear()
    with commerce_app(settings, clock=clock, extra_route_handlers=[slow_charge]) as app:
        async with AsyncTestClient(app=app) as c:
            yield c


@contextlib.asynccontextmanager
async def concurrent(settings: Settings, clock: FrozenClock) -> AsyncIterator[httpx.AsyncClient]:
    """The app in the test's own event loop (the test client serialises requests): requests really overlap."""
    CALLS.clear()
    STARTED.clear()
    GATE.clear()
    with commerce_app(settings, clock=clock, extra_route_handlers=[slow_charge]) as app:
        async with app.lifespan(), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                     base_url="http://testserver.local", timeout=30) as c:
            yield c


@pytest.fixture
async def key(sessionmaker: Any, clock: FrozenClock) -> str:
    return await make_key(sessionmaker, clock)


def hdr(key: str, idem: str) -> dict[str, str]:
    return {**bearer(key), "Idempotency-Key": idem}


async def test_same_key_and_body_replays_the_first_response(slow_client: Any, key: str) -> None:
    body = {"ref": "o-1", "amount_minor": 1250}
    r1 = await slow_client.post("/v1/test-slow-charge", json=body, headers=hdr(key, "k1"))
    r2 = await slow_client.post("/v1/test-slow-charge", json=body, headers=hdr(key, "k1"))
    assert r1.status_code == r2.status_code == 201
    assert r1.content == r2.content and r2.headers["idempotent-replayed"] == "true"
    assert CALLS == ["o-1"]


async def test_same_key_with_another_body_is_422(slow_client: Any, key: str) -> None:
    await slow_client.post("/v1/test-slow-charge", json={"ref": "o-1", "amount_minor": 1}, headers=hdr(key, "k1"))
    r = await slow_client.post("/v1/test-slow-charge", json={"ref": "o-1", "amount_minor": 2}, headers=hdr(key, "k1"))
    assert_problem(r, 422)
    assert CALLS == ["o-1"]


async def test_keys_are_per_caller(slow_client: Any, key: str, sessionmaker: Any, clock: FrozenClock) -> None:
    other = await make_key(sessionmaker, clock)
    body = {"ref": "o-1", "amount_minor": 1}
    await slow_client.post("/v1/test-slow-charge", json=body, headers=hdr(key, "k1"))
    await slow_client.post("/v1/test-slow-charge", json=body, headers=hdr(other, "k1"))
    assert CALLS == ["o-1", "o-1"]


async def test_concurrent_duplicates_never_both_execute(settings: Settings, clock: FrozenClock, key: str) -> None:
    async with concurrent(settings, clock) as client:
        await _duplicates(client, key)


async def _duplicates(slow_client: httpx.AsyncClient, key: str) -> None:
    body = {"ref": "o-9", "amount_minor": 500}
    results = await asyncio.gather(*[
        slow_client.post("/v1/test-slow-charge", json=body, headers=hdr(key, "same")) for _ in range(8)])
    assert sum(r.status_code == 409 for r in results) >= 1  # they really overlapped
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}
    assert CALLS == ["o-9"]
    for r in results:
        if r.status_code == 409:
            assert_problem(r, 409)
    r = await slow_client.post("/v1/test-slow-charge", json=body, headers=hdr(key, "same"))
    assert r.status_code == 201 and r.json()["n"] == 1


async def test_missing_key_on_a_money_route_is_400(slow_client: Any, key: str) -> None:
    r = await slow_client.post("/v1/test-slow-charge", json={"ref": "x", "amount_minor": 1}, headers=bearer(key))
    body = assert_problem(r, 400)
    assert "Idempotency-Key" in body["detail"] and CALLS == []


async def test_a_failed_attempt_replays_its_problem_and_commits_nothing(slow_client: Any, key: str) -> None:
    body = {"ref": "o-2", "amount_minor": 1, "fail": True}
    r1 = await slow_client.post("/v1/test-slow-charge", json=body, headers=hdr(key, "kf"))
    r2 = await slow_client.post("/v1/test-slow-charge", json=body, headers=hdr(key, "kf"))
    assert_problem(r1, 422) and assert_problem(r2, 422)
    assert r1.json()["reason"] == "test" and r2.headers["idempotent-replayed"] == "true"
    assert CALLS == ["o-2"]


async def test_expired_keys_can_be_reused(slow_client: Any, key: str, clock: FrozenClock, settings: Settings) -> None:
    await slow_client.post("/v1/test-slow-charge", json={"ref": "a", "amount_minor": 1}, headers=hdr(key, "k"))
    clock.advance(timedelta(seconds=settings.idempotency_ttl_seconds + 1))
    r = await slow_client.post("/v1/test-slow-charge", json={"ref": "b", "amount_minor": 2}, headers=hdr(key, "k"))
    assert r.status_code == 201 and CALLS == ["a", "b"]


async def test_account_upsert_with_key_writes_once(client: AsyncTestClient[Any], key: str, sessionmaker: Any) -> None:
    body = {"external_id": "acme", "name": "Acme"}
    r1 = await client.post("/v1/accounts", json=body, headers=hdr(key, "acct-1"))
    r2 = await client.post("/v1/accounts", json=body, headers=hdr(key, "acct-1"))
    assert r1.status_code == r2.status_code == 201 and r1.json() == r2.json()
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(AuditEntry)) == 1
    assert_problem(await client.post("/v1/accounts", json=body, headers=hdr(key, "bad key with spaces")), 400)


async def test_a_live_first_attempt_keeps_duplicates_out_however_long_it_runs(
    settings: Settings, key: str, clock: FrozenClock,
) -> None:
    async with concurrent(settings, clock) as client:
        await _live_first_attempt(client, key, clock)


async def _live_first_attempt(slow_client: httpx.AsyncClient, key: str, clock: FrozenClock) -> None:
    body = {"ref": "o-live", "amount_minor": 700, "wait": True}
    first = asyncio.create_task(slow_client.post("/v1/test-slow-charge", json=body, headers=hdr(key, "live")))
    await asyncio.wait_for(STARTED.wait(), 20)
    clock.advance(timedelta(minutes=10))  # far beyond any lease: liveness, not time, decides
    assert_problem(await slow_client.post("/v1/test-slow-charge", json=body, headers=hdr(key, "live")), 409)
    GATE.set()
    r1 = await first
    assert r1.status_code == 201 and CALLS == ["o-live"]
    r2 = await slow_client.post("/v1/test-slow-charge", json=body, headers=hdr(key, "live"))
    assert r2.status_code == 201 and r2.headers["idempotent-replayed"] == "true" and r2.content == r1.content


async def test_an_attempt_whose_lock_died_cannot_commit_after_a_retry_took_over(
    settings: Settings, key: str, sessionmaker: Any, clock: FrozenClock,
) -> None:
    async with concurrent(settings, clock) as client:
        await _lock_lost(client, key, sessionmaker)


async def _lock_lost(slow_client: httpx.AsyncClient, key: str, sessionmaker: Any) -> None:
    body = {"ref": "o-lost", "amount_minor": 900, "wait": True}
    first = asyncio.create_task(slow_client.post("/v1/test-slow-charge", json=body, headers=hdr(key, "lost")))
    await asyncio.wait_for(STARTED.wait(), 20)
    async with sessionmaker() as s, s.begin():  # the first attempt's lock connection dies; the attempt lives on
        killed = await s.scalar(text(
            "SELECT count(pg_terminate_backend(a.pid)) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid "
            "WHERE a.application_name = 'commerce-locks' AND l.locktype = 'advisory' AND l.granted"))
    assert killed == 1
    retry = await slow_client.post("/v1/test-slow-charge", json={**body, "wait": False},
                                   headers=hdr(key, "lost"))
    assert retry.status_code == 422  # same key, other body
    GATE.set()
    retry = await slow_client.post("/v1/test-slow-charge", json=body, headers=hdr(key, "lost"))
    assert retry.status_code == 201 and CALLS == ["o-lost", "o-lost"]
    late = await first
    assert_problem(late, 409)  # its work rolled back: only the retry's answer was kept
    replay = await slow_client.post("/v1/test-slow-charge", json=body, headers=hdr(key, "lost"))
    assert replay.headers["idempotent-replayed"] == "true" and replay.content == retry.content
