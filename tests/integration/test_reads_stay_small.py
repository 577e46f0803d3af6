"""Reads of one user's grants cost the same in an account of thousands: the snapshot a check or a suggestion loads,
the quote's held modules and ``held_by`` find the user's own, account-wide and seat grants by index probes, not by
reading every grant of the account (EXPLAIN's buffer count, before and after the account grows by 4,000 grants)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import FrozenClock
from entitlements import grant
from entitlements.models import Grant
from entitlements.service import assign_seat, owned_modules
from entitlements.service._fast import held_modules_sql
from entitlements.service._grants import held_by
from entitlements.service._snapshot import _SNAPSHOT
from tests.integration.test_entitlement_races import setup

GROWTH = 4000


async def _buffers(session: AsyncSession, sql: str, params: dict[str, Any]) -> int:
    """Shared buffers the statement touched (hit or read), from EXPLAIN (ANALYZE, BUFFERS)."""
    plan = (await session.execute(text("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql), params)).scalar_one()
    top = plan[0]["Plan"]
    return int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])


def _held_by_sql(account_id: str, user_id: str, now: Any) -> tuple[str, dict[str, Any]]:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]  # named parameters, unlike asyncpg's
    compiled = select(Grant.module).where(*held_by(account_id, user_id, now)).compile(dialect=dialect)
    sql = re.sub(r"::(VARCHAR|TIMESTAMP WITH TIME ZONE)", "", compiled.string)  # the casts the dialect adds
    return re.sub(r"%\((\w+)\)s", r":\1", sql), dict(compiled.params)


async def _costs(session: AsyncSession, account_id: str, user_id: str, now: Any) -> dict[str, int]:
    held = f"SELECT {held_modules_sql(':a', ':u', ':now', bought=False)}"
    return {
        "snapshot": await _buffers(session, str(_SNAPSHOT.text), {"ref": "u0", "now": now}),
        "held_modules": await _buffers(session, held, {"a": account_id, "u": user_id, "now": now}),
        "held_by": await _buffers(session, *_held_by_sql(account_id, user_id, now)),
    }


async def test_a_users_grants_are_read_by_index_however_many_the_account_has(sessionmaker: Any,
                                                                            clock: FrozenClock) -> None:
    account_id, (user_id, other_id) = await setup(sessionmaker, clock, users=2)
    now = clock.now()
    async with sessionmaker() as s, s.begin():
        for module, user, seats in (("reports_basic", user_id, None), ("advanced_charts", None, None),
                                    ("nl_query", None, 2), ("geo_maps", other_id, None)):
            g = await grant(s, account_id=account_id, user_id=user, module=module, source="admin",
                            source_ref=module, starts_at=now - timedelta(days=1), ends_at=None, seats=seats,
                            clock=clock)
            if seats:
                await assign_seat(s, account_id=account_id, grant_id=g.grant_id, user_id=user_id, clock=clock)
    async with sessionmaker() as s, s.begin():
        await s.execute(text("ANALYZE"))
        before = await _costs(s, account_id, user_id, now)
        expected = {"reports_basic", "advanced_charts", "nl_query"}  # own, account-wide, an assigned seat
        assert await owned_modules(s, account_id, user_id, now=now) == expected
    async with sessionmaker() as s, s.begin():  # 4,000 more users, each with a grant of its own
        await s.execute(text(
            "INSERT INTO users (account_id, user_id, external_id, roles, created_at, updated_at) "
            "SELECT :a, 'usr_bulk' || i, 'bulk-' || i, '{}', :now, :now FROM generate_series(1, :n) AS i"),
            {"a": account_id, "now": now, "n": GROWTH})
        await s.execute(text(
            "INSERT INTO ent_grants (account_id, grant_id, user_id, module, source, source_ref, starts_at, "
            "seats_assigned, created_at, updated_at) "
            "SELECT :a, 'grt_bulk' || i, 'usr_bulk' || i, 'reports_basic', 'admin', 'bulk' || i, :start, 0, :now, "
            ":now FROM generate_series(1, :n) AS i"),
            {"a": account_id, "now": now, "start": now - timedelta(days=1), "n": GROWTH})
        await s.execute(text("ANALYZE"))
    async with sessionmaker() as s, s.begin():
        after = await _costs(s, account_id, user_id, now)
        assert await owned_modules(s, account_id, user_id, now=now) == expected
    # an index grows a level at most; reading the account's grants would touch dozens of pages more
    assert all(after[k] <= before[k] + 6 for k in before), (before, after)
