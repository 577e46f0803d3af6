"""The fast paths' driver connections (app.db.driver_connection, D102): kept checked out between requests, handed
back to SQLAlchemy's pool whenever they are not plainly idle, and all given back before the engine goes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import create_fast_engine, driver_connection, held_connections, release_driver_connections

Make = Callable[[int, int], AsyncEngine]


@pytest.fixture
async def make_engine(database_url: str) -> AsyncIterator[Make]:
    """Fast engines of a pool size and overflow; their kept connections given back and the engines disposed after."""
    made: list[AsyncEngine] = []

    def make(pool_size: int, max_overflow: int) -> AsyncEngine:
        made.append(create_fast_engine(database_url, pool_size=pool_size, max_overflow=max_overflow))
        return made[-1]

    yield make
    for engine in made:
        await release_driver_connections(engine)
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]  # every kept one went back
        await engine.dispose()


async def test_an_idle_connection_is_kept_and_handed_over_again_without_the_pool(make_engine: Make) -> None:
    engine = make_engine(2, 1)
    async with driver_connection(engine) as first:
        pid = first.get_server_pid()
        assert await first.fetchval("SELECT current_setting('plan_cache_mode')") == "force_generic_plan"
    assert held_connections(engine) == 1
    async with driver_connection(engine) as again:
        assert again is first and again.get_server_pid() == pid
        assert held_connections(engine) == 0  # handed over, not shared
    assert held_connections(engine) == 1
    assert engine.pool.checkedout() == 1  # type: ignore[attr-defined]  # kept out of the pool while idle


async def test_no_more_than_the_pool_size_is_kept(make_engine: Make) -> None:
    engine = make_engine(2, 3)

    async def hold(ready: asyncio.Event, go: asyncio.Event) -> None:
        async with driver_connection(engine) as conn:
            await conn.fetchval("SELECT 1")
            ready.set()
            await go.wait()

    go = asyncio.Event()
    readies = [asyncio.Event() for _ in range(5)]
    tasks = [asyncio.create_task(hold(r, go)) for r in readies]
    await asyncio.gather(*(r.wait() for r in readies))
    assert engine.pool.checkedout() == 5  # type: ignore[attr-defined]
    go.set()
    await asyncio.gather(*tasks)
    assert held_connections(engine) == 2
    assert engine.pool.checkedout() == 2  # type: ignore[attr-defined]  # the other three went back


async def test_a_connection_left_in_a_transaction_or_by_an_error_goes_back_to_the_pool(make_engine: Make) -> None:
    engine = make_engine(2, 0)
    async with driver_connection(engine) as conn:
        await conn.execute("BEGIN")  # a statement of the request left its transaction open
        await conn.execute("CREATE TEMP TABLE left_behind (x int)")
    assert held_connections(engine) == 0
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]  # discarded on its way back

    with pytest.raises(asyncpg.PostgresError):
        async with driver_connection(engine) as conn:
            await conn.execute("SELECT 1/0")
    assert held_connections(engine) == 0

    async with driver_connection(engine) as conn:
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT to_regclass('pg_temp.left_behind') IS NULL")  # rolled back
    assert held_connections(engine) == 1


async def test_a_cancelled_request_does_not_leave_its_connection_to_the_next(make_engine: Make) -> None:
    engine = make_engine(1, 0)

    async def slow() -> None:
        async with driver_connection(engine) as conn:
            await conn.execute("SELECT pg_sleep(5)")

    task = asyncio.create_task(slow())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert held_connections(engine) == 0
    async with driver_connection(engine) as conn:  # the pool's only connection, usable again
        assert await conn.fetchval("SELECT 41 + 1") == 42


async def test_a_kept_connection_the_server_closed_is_not_handed_over(make_engine: Make, database_url: str) -> None:
    engine = make_engine(2, 0)
    async with driver_connection(engine) as conn, driver_connection(engine) as other:
        gone, alive = conn.get_server_pid(), other.get_server_pid()
    assert held_connections(engine) == 2  # ``conn`` on top: handed over next
    killer = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        assert await killer.fetchval("SELECT pg_terminate_backend($1)", gone)
    finally:
        await killer.close()
    for _ in range(50):  # the event loop sees the socket close
        if conn.is_closed():
            break
        await asyncio.sleep(0.02)
    assert conn.is_closed()
    async with driver_connection(engine) as first, driver_connection(engine) as second:
        assert first.get_server_pid() == alive and second.get_server_pid() != gone
        assert await first.fetchval("SELECT 1") == 1 and await second.fetchval("SELECT 2") == 2
