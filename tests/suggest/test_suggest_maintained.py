"""Peer statistics maintained on every change equal a full recount: random grants (own, account-wide, seat pools,
starting later), revocations (now and later), seat assignments, expiries and role changes through the services
that publish them, compared after every few steps with what a recount of the same moment writes."""

from __future__ import annotations

import contextlib
import random
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import entitlements
from app import wiring
from app.accounts.models import Account
from app.accounts.schemas import AccountUpsert, UserUpsert
from app.accounts.service import upsert_account, upsert_user
from app.clock import FrozenClock
from app.settings import Settings
from entitlements.errors import SeatsExhausted
from entitlements.models import Grant
from suggest import refresh_account
from suggest.models import StatsRefresh
from tests.api.test_purchase import key  # noqa: F401  (fixture)
from tests.factories import apply_demo_catalog

ROLES = ["analyst", "manager", "engineer", "viewer"]
Tables = tuple[dict[str, int], dict[tuple[str, str], tuple[int, int, int]], dict[tuple[str, str], int]]


async def tables(session: AsyncSession, account_id: str) -> Tables:
    roles = {r: int(n) for r, n in await session.execute(
        text("SELECT role, users FROM sug_role_stats WHERE account_id = :a"), {"a": account_id})}
    peer = {(r, m): (int(u), int(o), int(x)) for r, m, u, o, x in await session.execute(text(
        "SELECT role, module, role_users, owners, active_owners FROM sug_peer_stats WHERE account_id = :a"),
        {"a": account_id})}
    pairs = {(a, b): int(n) for a, b, n in await session.execute(
        text("SELECT module_a, module_b, users FROM sug_pair_stats WHERE account_id = :a"), {"a": account_id})}
    return roles, peer, pairs


async def recounted(sessionmaker: async_sessionmaker[AsyncSession], account_id: str, clock: FrozenClock) -> Tables:
    """What a recount of this moment writes (rolled back)."""
    async with sessionmaker() as s:
        await s.begin()
        await refresh_account(s, account_id, now=clock.now(), unused_days=30, segment=False)
        out = await tables(s, account_id)
        await s.rollback()
    return out


async def maintained(sessionmaker: async_sessionmaker[AsyncSession], account_id: str) -> Tables:
    async with sessionmaker() as s:
        return await tables(s, account_id)


@pytest.mark.parametrize("seed", [1, 2, 3, 7])  # 7: a seat refused when the pool is full (20 seeds pass)
async def test_maintained_statistics_equal_a_recount_after_random_changes(
        engine: AsyncEngine, settings: Settings, clock: FrozenClock, seed: int) -> None:
    rng = random.Random(seed)
    plain = async_sessionmaker(engine, expire_on_commit=False)
    await apply_demo_catalog(plain, clock)
    bus = wiring.sessionmaker(engine, settings)  # sessions whose events reach the engine, as the app's
    async with bus() as s, s.begin():
        modules = sorted(k for k, m in (await entitlements.service.catalog_view(s)).modules.items()
                         if m.status == "active")
        account, _ = await upsert_account(s, AccountUpsert(external_id="acme", name="Acme", segment="mid"),
                                          actor="test", clock=clock)
        account_id = account.account_id
    users: list[str] = []
    ids: dict[str, str] = {}
    for i in range(10):
        async with bus() as s, s.begin():
            acc = await s.get_one(Account, account_id)
            data = UserUpsert(external_id=f"u{i}", roles=rng.sample(ROLES, rng.randint(0, 2)))
            u, _ = await upsert_user(s, acc, data, actor="test", clock=clock)
            users.append(f"u{i}")
            ids[f"u{i}"] = u.user_id
    async with bus() as s, s.begin():  # some users used some modules' features lately (before any change)
        view = await entitlements.service.catalog_view(s)
        features = sorted({f for k in modules for f in view.modules[k].features})
        for user in users[::2]:
            for feature in rng.sample(features, 3):
                await s.execute(text("""
                    INSERT INTO ent_usage_counters (account_id, user_id, feature, period_start, period_end, used,
                                                    updated_at)
                    VALUES (:a, :u, :f, :s, :e, 3, :s)"""),
                    {"a": account_id, "u": ids[user], "f": feature, "s": clock.now() - timedelta(days=3),
                     "e": clock.now() + timedelta(days=27)})
        await refresh_account(s, account_id, now=clock.now(), unused_days=30)  # the statistics job
    assert await maintained(bus, account_id) == await recounted(plain, account_id, clock)

    n = 0
    for step in range(45):
        op = rng.choice(["grant", "grant", "grant", "revoke", "roles", "wide", "pool", "seat", "unseat", "later"])
        async with bus() as s, s.begin():
            now = clock.now()
            acc = await s.get_one(Account, account_id)
            live = list(await s.scalars(select(Grant).where(Grant.account_id == account_id,
                                                            Grant.revoked_at.is_(None)).order_by(Grant.grant_id)))
            pools = [g for g in live if g.seats is not None]
            n += 1
            if op == "grant":
                await entitlements.grant(s, account_id=account_id, user_id=ids[rng.choice(users)],
                                         module=rng.choice(modules), source="admin", source_ref=f"r{n}",
                                         starts_at=now - timedelta(days=rng.randint(0, 40)), ends_at=None, clock=clock)
            elif op == "later":  # starts in a week: held by nobody yet
                await entitlements.grant(s, account_id=account_id, user_id=ids[rng.choice(users)],
                                         module=rng.choice(modules), source="admin", source_ref=f"r{n}",
                                         starts_at=now + timedelta(days=7), ends_at=None, clock=clock)
            elif op == "wide":
                await entitlements.grant(s, account_id=account_id, user_id=None, module=rng.choice(modules),
                                         source="admin", source_ref=f"r{n}", starts_at=now, ends_at=None, clock=clock)
            elif op == "pool":
                await entitlements.grant(s, account_id=account_id, user_id=None, module=rng.choice(modules),
                                         source="admin", source_ref=f"r{n}", starts_at=now, ends_at=None, seats=3,
                                         clock=clock)
            elif op == "seat" and pools:
                with contextlib.suppress(SeatsExhausted):  # refused: its savepoint leaves nothing (as a request)
                    async with s.begin_nested():
                        await entitlements.service.assign_seat(s, account_id=account_id,
                                                               grant_id=rng.choice(pools).grant_id,
                                                               user_id=ids[rng.choice(users)], clock=clock)
            elif op == "unseat" and pools:
                await entitlements.service.unassign_seat(s, account_id=account_id,
                                                         grant_id=rng.choice(pools).grant_id,
                                                         user_id=ids[rng.choice(users)], clock=clock)
            elif op == "revoke" and live:
                later = rng.random() < 0.3  # a revocation that takes effect next week changes nothing yet
                await entitlements.revoke(s, account_id=account_id, grant_id=rng.choice(live).grant_id,
                                          reason="test", clock=clock, at=now + timedelta(days=7) if later else None)
            elif op == "roles":
                who = rng.choice(users)
                await upsert_user(s, acc, UserUpsert(external_id=who, roles=rng.sample(ROLES, rng.randint(0, 3))),
                                  actor="test", clock=clock)
        if step % 5 == 4:
            assert await maintained(bus, account_id) == await recounted(plain, account_id, clock), (step, op)
    assert await maintained(bus, account_id) == await recounted(plain, account_id, clock)
    async with plain() as s:
        row = await s.get_one(StatsRefresh, account_id)
        assert row.maintained


async def test_an_account_counted_before_maintenance_waits_for_the_job(
        engine: AsyncEngine, settings: Settings, clock: FrozenClock) -> None:
    plain = async_sessionmaker(engine, expire_on_commit=False)
    await apply_demo_catalog(plain, clock)
    bus = wiring.sessionmaker(engine, settings)
    async with bus() as s, s.begin():
        account, _ = await upsert_account(s, AccountUpsert(external_id="old", name="Old"), actor="test", clock=clock)
        user, _ = await upsert_user(s, account, UserUpsert(external_id="o1", roles=["analyst"]), actor="test",
                                    clock=clock)
        row = await s.get_one(StatsRefresh, account.account_id)
        assert row.maintained and row.users == 1  # a new account is counted on its first user
        row.maintained = False  # as the migration leaves accounts counted before it
    async with bus() as s, s.begin():
        await entitlements.grant(s, account_id=account.account_id, user_id=user.user_id, module="advanced_charts",
                                 source="admin", source_ref="x", starts_at=clock.now(), ends_at=None, clock=clock)
    async with plain() as s:
        _, peer, _ = await tables(s, account.account_id)
    assert ("analyst", "advanced_charts") not in peer  # not applied to counts it cannot trust
    async with bus() as s, s.begin():
        await refresh_account(s, account.account_id, now=clock.now(), unused_days=30)
    async with plain() as s:
        _, peer, _ = await tables(s, account.account_id)
        assert peer[("analyst", "advanced_charts")] == (1, 1, 0)
        assert (await s.get_one(StatsRefresh, account.account_id)).maintained



async def test_a_fast_path_purchase_keeps_the_statistics_equal_to_a_recount(
        client: Any, key: str, engine: AsyncEngine, clock: FrozenClock,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A budget order of two modules written by the fast path's one statement (D90): its grants' inline part
    (``peers.granted_in``) leaves the counts a recount of that moment writes."""
    import billing.service._fast_order as fast
    from tests.api.test_purchase import budget, order, quote
    from tests.factories import make_tenant, make_user

    built: list[bool] = []
    real = fast._build

    def spy(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        built.append(found is not None)
        return found

    monkeypatch.setattr(fast, "_build", spy)
    acme = await make_tenant(client, key, "acme")
    await make_user(client, key, "acme", "acme-other", roles=["analyst", "viewer"])
    await budget(client, key, 100_000, account="acme")
    await quote(client, acme.user_token, acme.user, "reports_basic")  # the process caches the live catalog
    q = await quote(client, acme.user_token, acme.user, "reports_basic", "comments")
    r = await order(client, acme.user_token, q["id"])
    assert r.status_code == 201, r.text
    assert built == [True], "the purchase took the fast path"
    plain = async_sessionmaker(engine, expire_on_commit=False)
    async with plain() as s:
        account_id = await s.scalar(select(Account.account_id).where(Account.external_id == "acme"))
        assert account_id is not None
    got = await maintained(plain, account_id)
    assert got == await recounted(plain, account_id, clock)
    assert got[1][("analyst", "comments")] == (2, 1, 0) and got[2][("comments", "reports_basic")] == 1
