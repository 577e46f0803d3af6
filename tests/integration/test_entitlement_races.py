"""Concurrency proofs on real PostgreSQL: enforced usage never exceeds a limit, seats never over-assign."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.accounts import service as accounts
from app.accounts.schemas import AccountUpsert, UserUpsert
from app.auth import VendorPrincipal
from app.clock import FrozenClock
from app.db import create_fast_engine, release_driver_connections
from app.demo import demo_catalog_toml
from catalog import service as catalog
from entitlements import grant
from entitlements.errors import LimitExceeded, SeatsExhausted
from entitlements.models import Grant, SeatAssignment, UsageCounter, UsageEvent
from entitlements.schemas import UsageBatch, UsageEventIn
from entitlements.service import assign_seat, catalog_view, fast_usage, record_usage
from tests.support.race import race

VENDOR = VendorPrincipal(key_id="key_test", scopes=frozenset({"usage:write"}))


async def setup(sessionmaker: Any, clock: FrozenClock, users: int = 1) -> tuple[str, list[str]]:
    async with sessionmaker() as s, s.begin():
        await catalog.apply_document(s, catalog.parse_source(toml=demo_catalog_toml()), actor="t", clock=clock)
        acc, _ = await accounts.upsert_account(s, AccountUpsert(external_id="acme", name="Acme"), actor="t",
                                               clock=clock)
        ids = []
        for i in range(users):
            u, _ = await accounts.upsert_user(s, acc, UserUpsert(external_id=f"u{i}"), actor="t", clock=clock)
            ids.append(u.user_id)
    return acc.account_id, ids


async def test_concurrent_enforced_consumers_never_exceed_the_limit(engine: AsyncEngine, sessionmaker: Any,
                                                                    clock: FrozenClock) -> None:
    account_id, (user_id,) = await setup(sessionmaker, clock)
    async with sessionmaker() as s, s.begin():
        await grant(s, account_id=account_id, user_id=user_id, module="reports_basic", source="admin",
                    source_ref="r", starts_at=clock.now(), ends_at=None, clock=clock)  # 50 reports a month
        view = await catalog_view(s)

    async def consume(session: AsyncSession, i: int) -> int:
        result = await record_usage(session, [UsageEventIn(event_id=f"e{i}", user="u0", feature="reports",
                                                           quantity=7)],
                                    principal=VENDOR, enforce=True, clock=clock, view=view, backfill_days=35)
        return result.accepted

    results = await race(engine, 20, consume)
    accepted = [r for r in results if r == 1]
    refused = [r for r in results if isinstance(r, LimitExceeded)]
    assert len(accepted) == 7 and len(refused) == 13, results  # 7 x 7 = 49 <= 50 < 56
    async with sessionmaker() as s:
        assert await s.scalar(select(UsageCounter.used)) == 49
        assert await s.scalar(select(func.count()).select_from(UsageEvent)) == 7  # refused batches wrote nothing


async def test_replayed_events_are_counted_once_under_concurrency(engine: AsyncEngine, sessionmaker: Any,
                                                                  clock: FrozenClock) -> None:
    account_id, _ = await setup(sessionmaker, clock)
    async with sessionmaker() as s:
        view = await catalog_view(s)

    async def replay(session: AsyncSession, i: int) -> int:
        events = [UsageEventIn(event_id=f"same-{j}", user="u0", feature="reports", quantity=2) for j in range(5)]
        return (await record_usage(session, events, principal=VENDOR, enforce=False, clock=clock, view=view,
                                   backfill_days=35)).accepted

    results = await race(engine, 10, replay)
    assert sum(r for r in results if isinstance(r, int)) == 5, results
    async with sessionmaker() as s:
        assert await s.scalar(select(UsageCounter.used).where(UsageCounter.account_id == account_id)) == 10


async def test_fast_batches_sharing_ids_count_each_event_once(database_url: str, sessionmaker: Any,
                                                             clock: FrozenClock) -> None:
    """The fast path takes a batch's ids to be new and falls back to the careful statement when one is not (D104):
    racing batches that share some ids store and count each event once and report the rest as duplicates."""
    account_id, _ = await setup(sessionmaker, clock, users=2)
    async with sessionmaker() as s:
        view = await catalog_view(s)
    engine = create_fast_engine(database_url, pool_size=10, max_overflow=0)
    try:
        def batch(i: int) -> UsageBatch:
            return UsageBatch(events=[*(UsageEventIn(event_id=f"shared-{j}", user="u0", feature="reports", quantity=2)
                                        for j in range(3)),
                                      *(UsageEventIn(event_id=f"own-{i}-{j}", user=f"u{j % 2}", feature="reports")
                                        for j in range(2))])

        results = await asyncio.gather(*(fast_usage(engine, VENDOR, batch(i), clock=clock, view=view,
                                                    backfill_days=35) for i in range(10)))
        assert all(r is not None for r in results), results
        assert sum(r.accepted for r in results if r) == 3 + 20
        assert sum(r.duplicates for r in results if r) == 27
    finally:
        await release_driver_connections(engine)
        await engine.dispose()
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(UsageEvent)) == 23
        assert await s.scalar(select(func.sum(UsageCounter.used)).where(UsageCounter.account_id == account_id)) == 26


async def test_seats_are_never_over_assigned_under_concurrency(engine: AsyncEngine, sessionmaker: Any,
                                                               clock: FrozenClock) -> None:
    account_id, users = await setup(sessionmaker, clock, users=12)
    async with sessionmaker() as s, s.begin():
        pool = await grant(s, account_id=account_id, user_id=None, module="nl_query", source="order",
                           source_ref="o1", starts_at=clock.now(), ends_at=None, seats=3, clock=clock)

    async def take(session: AsyncSession, i: int) -> str:
        await assign_seat(session, account_id=account_id, grant_id=pool.grant_id, user_id=users[i], clock=clock)
        return users[i]

    results = await race(engine, 12, take)
    assert len([r for r in results if isinstance(r, str)]) == 3
    assert all(isinstance(r, str | SeatsExhausted) for r in results), results
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(SeatAssignment)) == 3
        assert await s.scalar(select(Grant.seats_assigned).where(Grant.grant_id == pool.grant_id)) == 3


async def test_grant_retries_race_to_one_grant(engine: AsyncEngine, sessionmaker: Any, clock: FrozenClock) -> None:
    account_id, (user_id,) = await setup(sessionmaker, clock)

    async def give(session: AsyncSession, i: int) -> str:
        g = await grant(session, account_id=account_id, user_id=user_id, module="comments", source="order",
                        source_ref="ord_1", starts_at=clock.now(), ends_at=None, clock=clock)
        return g.grant_id

    results = await race(engine, 8, give)
    assert len(set(results)) == 1 and all(isinstance(r, str) for r in results), results
