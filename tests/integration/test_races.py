"""Races on real separate connections: upserts of one external id, and idempotency claims."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.accounts import service
from app.accounts.models import Account
from app.accounts.schemas import AccountUpsert
from app.audit import AuditEntry
from app.clock import FrozenClock
from tests.support.race import race


async def test_concurrent_upserts_of_one_account_create_it_exactly_once(
    engine: AsyncEngine, sessionmaker: Any, clock: FrozenClock,
) -> None:
    async def upsert(session: AsyncSession, i: int) -> bool:
        _, created = await service.upsert_account(
            session, AccountUpsert(external_id="raced", name=f"Name {i}"), actor="test", clock=clock)
        return created

    results = await race(engine, 16, upsert)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert results.count(True) == 1
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Account)) == 1
        actions = (await s.scalars(select(AuditEntry.action))).all()
    assert actions.count("account.created") == 1


async def test_race_helper_really_overlaps_transactions(engine: AsyncEngine) -> None:
    import asyncio

    from sqlalchemy import text

    everyone_inside = asyncio.Barrier(8)

    async def backend(session: AsyncSession, i: int) -> int:
        pid = await session.scalar(text("SELECT pg_backend_pid()"))
        # Every transaction waits here for all the others: run one after another, they would never all arrive.
        await asyncio.wait_for(everyone_inside.wait(), timeout=10)
        return int(pid or 0)

    pids = await race(engine, 8, backend)
    assert not [p for p in pids if isinstance(p, BaseException)], pids
    assert len(set(pids)) == 8
