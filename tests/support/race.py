"""Run N coroutines on N separate database connections, released together by a barrier, so they truly race."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

T = TypeVar("T")


async def race(
    engine: AsyncEngine, n: int, work: Callable[[AsyncSession, int], Awaitable[T]],
) -> list[T | BaseException]:
    """Open n connections first, then start ``work(session, i)`` on each at the same instant.

    Each worker runs in its own transaction on its own connection (committed when ``work`` returns,
    rolled back when it raises). Results (or the exceptions raised) come back in order.
    """
    assert engine.pool.size() + engine.pool._max_overflow >= n, "engine pool too small for the race"  # type: ignore[attr-defined]
    barrier = asyncio.Barrier(n)
    maker = async_sessionmaker(engine, expire_on_commit=False)

    async def one(i: int) -> T:
        async with maker() as session:
            await session.connection()  # connection checked out and transaction begun before the start signal
            await barrier.wait()
            try:
                result = await work(session, i)
                await session.commit()
                return result
            except BaseException:
                await session.rollback()
                raise

    return await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
