"""The check path's cache: a warm check runs no SQL; a change made by one process reaches another at once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import event

from app.asgi import create_app
from app.clock import FrozenClock, SystemClock
from app.settings import Settings
from entitlements.cache import SnapshotCache
from entitlements.domain import FOREVER, Snapshot
from tests.api.test_catalog import seed_demo
from tests.factories import bearer, make_key
from tests.support.database import wait_for
from tests.support.live_server import live_server


@pytest.fixture
def quiet_settings(settings: Settings) -> Settings:
    """No periodic demand-signal flush inside the measured window (it is background work, not the check)."""
    return msgspec.structs.replace(settings, demand_flush_seconds=3600.0)


async def test_a_warm_check_issues_no_sql(quiet_settings: Settings, sessionmaker: Any, clock: FrozenClock) -> None:
    app = create_app(quiet_settings, clock=clock)
    async with AsyncTestClient(app=app) as client:
        await _warm_check_issues_no_sql(client, app, sessionmaker, clock)


async def _warm_check_issues_no_sql(client: AsyncTestClient[Any], app: Litestar, sessionmaker: Any,
                                    clock: FrozenClock) -> None:
    key = await make_key(sessionmaker, clock)
    await seed_demo(client, key)
    params = {"user": "acme-ana", "feature": "reports", "quantity": 1}
    assert (await client.get("/v1/entitlements/check", params=params, headers=bearer(key))).status_code == 200
    # the API key's last-use write runs in the background (once a minute): let it finish before counting
    await asyncio.gather(*list(app.state.background_tasks))
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "rate_limit_" not in statement:  # the limiter's lease refills and heartbeats are not the check's work
            statements.append(statement)

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        for feature in ("reports", "pdf_export", "reports", "data_retention_days"):
            r = await client.get("/v1/entitlements/check", params={**params, "feature": feature},
                                 headers=bearer(key))
            assert r.status_code == 200
        r = await client.post("/v1/entitlements/check", headers=bearer(key),
                              json={"user": "acme-ana", "checks": [{"feature": "reports"}]})
        assert r.status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert statements == []
    cache = app.state.entitlements.snapshots
    assert cache.hits >= 5 and len(cache) == 1


async def test_a_grant_through_one_process_reaches_another_through_notify_not_the_ttl(
    settings: Settings, sessionmaker: Any, tmp_path: Path,
) -> None:
    # Process B keeps snapshots for 60 s: seeing the grant before that can only come from the NOTIFY push.
    # The latency itself is measured by bench/entitlements_bench.py, not asserted here.
    key = await make_key(sessionmaker, SystemClock())
    assert settings.database_url is not None
    with live_server(settings.database_url, tmp_path / "other", settings.token_secret,
                     extra_env={"COMMERCE_ENTITLEMENT_CACHE_TTL_SECONDS": "60"}) as other:
        async with AsyncTestClient(app=create_app(settings, clock=SystemClock())) as client, \
                httpx.AsyncClient(base_url=other, headers=bearer(key), timeout=5) as b:  # both on real time
            await seed_demo(client, key)
            params = {"user": "acme-ana", "feature": "pdf_export"}
            assert (await b.get("/v1/entitlements/check", params=params)).json()["allowed"] is False  # B is warm
            r = await client.post("/v1/accounts/acme/grants", headers=bearer(key), json={
                "module": "reports_pro", "user": "acme-ana", "source_ref": "x-proc"})
            assert r.status_code == 201

            async def b_allows() -> bool:
                return bool((await b.get("/v1/entitlements/check", params=params)).json()["allowed"])

            assert await wait_for(b_allows, timeout=10), "process B never saw the grant"


async def test_two_in_process_instances_share_invalidation(settings: Settings, clock: FrozenClock,
                                                           sessionmaker: Any) -> None:
    a_app, b_app = create_app(settings, clock=clock), create_app(settings, clock=clock)
    async with AsyncTestClient(app=a_app) as a, AsyncTestClient(app=b_app) as b:
        key = await make_key(sessionmaker, clock)
        await seed_demo(a, key)
        params = {"user": "acme-ana", "feature": "comments"}
        assert (await b.get("/v1/entitlements/check", params=params, headers=bearer(key))).json()["allowed"] is False
        await a.post("/v1/accounts/acme/grants", headers=bearer(key), json={"module": "comments", "source_ref": "s"})
        assert (await b.get("/v1/entitlements/check", params=params, headers=bearer(key))).json()["allowed"]


def _snap(ref: str, account: str = "acct_1") -> Snapshot:
    return Snapshot(user_ref=ref, account_ref="a", account_id=account, user_id=f"usr_{ref}", roles=frozenset(),
                    segment="smb", region="us", currency="USD", catalog_revision=1, computed_at=FOREVER,
                    valid_until=FOREVER, modules=frozenset(), features={}, used={})


def test_cache_is_a_bounded_lru() -> None:
    cache = SnapshotCache(max_entries=2, ttl=60)
    for ref in ("a", "b"):
        cache.put(_snap(ref), cache.token())
    assert cache.get("a") is not None  # a is now most recent
    cache.put(_snap("c"), cache.token())
    assert len(cache) == 2 and cache.get("b") is None and cache.get("a") is not None


def test_a_snapshot_read_before_an_invalidation_is_not_cached() -> None:
    cache = SnapshotCache(max_entries=10, ttl=60)
    token = cache.token()
    cache.invalidate("acct_1:usr_x")  # arrives while the snapshot was being read
    assert cache.put(_snap("a"), token) is False and cache.get("a") is None
    assert cache.put(_snap("b", account="acct_2"), token) is True  # other accounts are unaffected
    cache.invalidate("acct_2")
    assert cache.get("b") is None


def test_ttl_is_a_safety_net() -> None:
    cache = SnapshotCache(max_entries=10, ttl=0.01)
    cache.put(_snap("a"), cache.token())
    time.sleep(0.02)
    assert cache.get("a") is None




async def test_concurrent_misses_for_one_user_share_one_read(engine: Any, sessionmaker: Any, settings: Settings,
                                                             clock: FrozenClock) -> None:
    from app.auth import VendorPrincipal
    from entitlements.runtime import Runtime
    from tests.integration.test_entitlement_races import setup

    await setup(sessionmaker, clock)
    runtime = Runtime(settings, clock)
    runtime.sessionmaker = sessionmaker
    await runtime.view()  # the catalog is loaded; what is measured is the snapshot read
    statements: list[str] = []
    listener = lambda _c, _cur, statement, *_a: statements.append(statement)  # noqa: E731
    event.listen(engine.sync_engine, "before_cursor_execute", listener)
    try:
        principal = VendorPrincipal(key_id="key_t", scopes=frozenset())
        results = await asyncio.gather(*(runtime.snapshot(principal, "u0", clock.now()) for _ in range(12)))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", listener)
    assert len({id(snap) for snap, _ in results}) == 1
    assert len([s for s in statements if "FROM users u JOIN accounts a" in s]) == 1
