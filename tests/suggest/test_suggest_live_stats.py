"""The live statistics behind the sentences, over HTTP: a segment share is over every user with the role in the
segment (not only the accounts where someone owns the module), account-wide adoption counts every role, and a
module granted days ago (by an admin, not an order) is neither nudged nor proposed for dropping."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import delete, select

from app.clock import FrozenClock
from app.settings import Settings
from tests.api.test_catalog import seed_demo
from tests.factories import bearer, make_account, make_key, make_user, session_token
from tests.suggest.test_suggestions import grant, suggest, usage


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No holdout, and every candidate with something true to say is answered (no score floor)."""
    return msgspec.structs.replace(settings, suggest_holdout_pct=0, suggest_min_score=0.0)


@pytest.fixture
async def key(client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock) -> str:
    k = await make_key(sessionmaker, clock)
    await seed_demo(client, k)
    return k


async def recount(client: AsyncTestClient[Any], key: str, *accounts: str) -> None:
    r = await client.post("/v1/suggestions/recount", json={"accounts": list(accounts)}, headers=bearer(key))
    assert r.status_code == 200 and r.json()["accounts"] == len(accounts), r.text


def reasons(body: dict[str, Any], module: str) -> list[str]:
    item = next((d for d in body["data"] if d["module"] == module), None)
    return list(item["reasons"]) if item else []


async def test_a_segment_share_counts_every_user_with_the_role_in_the_segment(
        client: AsyncTestClient[Any], key: str) -> None:
    # Owners: 3 of 5 analysts at north; none of 20 at south. The share is 3 of 25 (12 %), never 3 of 5 (60 %).
    await make_account(client, key, "north", segment="public_sector")
    await make_account(client, key, "south", segment="public_sector")
    for i in range(5):
        await make_user(client, key, "north", f"north-{i}", roles=["analyst"])
        if i < 3:
            await grant(client, key, "north", module="advanced_charts", user=f"north-{i}", source_ref=f"n{i}")
    for i in range(20):
        await make_user(client, key, "south", f"south-{i}", roles=["analyst"])
    await recount(client, key, "north", "south")
    body = await suggest(client, await session_token(client, key, "south", "south-0"), "south-0", limit=10)
    said = reasons(body, "advanced_charts")
    assert "12% of analysts at public sector companies like yours use Advanced Charts." in said
    assert not any("60%" in r for r in said)
    north = await suggest(client, await session_token(client, key, "north", "north-3"), "north-3", limit=10)
    assert "3 of the 4 other people in your account use Advanced Charts." in reasons(north, "advanced_charts")


async def test_a_module_granted_days_ago_by_an_admin_is_not_nudged_back(
        client: AsyncTestClient[Any], key: str, clock: FrozenClock) -> None:
    # Four analysts use Advanced Charts; "fresh" got it 5 days ago and "old" 60 days ago, and neither used it.
    await make_account(client, key, "east", segment="public_sector")
    now = clock.now()
    for i in range(4):
        await make_user(client, key, "east", f"east-{i}", roles=["analyst"])
        await grant(client, key, "east", module="advanced_charts", user=f"east-{i}", source_ref=f"e{i}",
                    starts_at=(now - timedelta(days=90)).isoformat())
        await usage(client, key, f"east-{i}", "advanced_charts", 2, "seed")
    for name, days in (("fresh", 5), ("old", 60)):
        await make_user(client, key, "east", name, roles=["analyst"])
        await grant(client, key, "east", module="advanced_charts", user=name, source_ref=name,
                    starts_at=(now - timedelta(days=days)).isoformat())
    await recount(client, key, "east")
    old = await suggest(client, await session_token(client, key, "east", "old"), "old", limit=10)
    # Unused for 60 days: a nudge to use it, or the advisor's "drop it" (both are about the module).
    assert any(d["module"] == "advanced_charts" and d["kind"] in ("adoption", "plan_change") for d in old["data"])
    fresh = await suggest(client, await session_token(client, key, "east", "fresh"), "fresh", limit=10)
    assert all(d["module"] != "advanced_charts" for d in fresh["data"])


async def test_vendor_sees_the_served_weights_and_a_backtest_needs_an_ended_window(
        client: AsyncTestClient[Any], key: str, clock: FrozenClock) -> None:
    w = (await client.get("/v1/suggestions/weights", headers=bearer(key))).json()
    assert w["version"] is None and w["learned"] is False and w["weights"]["account_peers"] > 0
    today = clock.now().date()
    r = await client.get("/v1/suggestions/backtest", params={"at": str(today - timedelta(days=10))},
                         headers=bearer(key))
    assert r.status_code == 422 and "has not ended" in r.json()["detail"]
    r = await client.get("/v1/suggestions/backtest", params={"at": "yesterday"}, headers=bearer(key))
    assert r.status_code == 400
    for far in ("0001-01-01", "9999-12-31"):  # out of range, never an overflow
        r = await client.get("/v1/suggestions/backtest", params={"at": far}, headers=bearer(key))
        assert r.status_code == 422, r.text
    r = await client.get("/v1/suggestions/backtest", params={"at": str(today - timedelta(days=40))},
                         headers=bearer(key))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["buyers"] == 0 and {s["strategy"] for s in body["scores"]} >= {"popularity", "engine (default weights)"}


async def test_the_first_request_of_an_account_leaves_the_count_to_the_background(
        client: AsyncTestClient[Any], key: str, sessionmaker: Any, clock: FrozenClock, settings: Settings) -> None:
    from app.accounts.models import Account
    from entitlements.runtime import Runtime
    from suggest import peers, service
    from suggest.models import RoleStat, StatsRefresh

    await make_account(client, key, "west", segment="public_sector")
    async with sessionmaker() as s:
        account_id = await s.scalar(select(Account.account_id).where(Account.external_id == "west"))
    refresher = peers.Refresher(clock, 30)
    ctx = service.Context(settings=settings, clock=clock, runtime=Runtime(settings, clock), refresher=refresher,
                          sessionmaker=sessionmaker)
    async with sessionmaker() as s, s.begin():  # an account made without the app's events: never counted
        await s.execute(delete(StatsRefresh).where(StatsRefresh.account_id == account_id))
        await s.execute(delete(RoleStat).where(RoleStat.account_id == account_id))
    async with sessionmaker() as s, s.begin():
        assert not await service._ensure_stats(s, ctx, account_id, clock.now())
        scheduled = set(refresher.running)  # read before anything else may run
        assert await peers.refreshed_at(s, account_id) is None  # not counted in the request's transaction
    assert scheduled == {account_id}
    await asyncio.gather(*refresher.tasks)
    async with sessionmaker() as s:
        assert await peers.refreshed_at(s, account_id) == clock.now()
    r = await client.post("/v1/suggestions/recount", json={"accounts": ["nobody"]}, headers=bearer(key))
    assert r.status_code == 404
