"""Concurrent callers of one key share one run of the work (the API key and snapshot caches' misses)."""

from __future__ import annotations

import asyncio

import pytest

from app.singleflight import SingleFlight


async def test_concurrent_callers_share_one_run_and_a_later_call_runs_again() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    runs = 0
    gate = asyncio.Event()

    async def work() -> int:
        nonlocal runs
        runs += 1
        await gate.wait()
        return runs

    waiting = [asyncio.create_task(flight.run("k", work)) for _ in range(5)]
    other = asyncio.create_task(flight.run("other", work))
    await asyncio.sleep(0)
    gate.set()
    answers = await asyncio.gather(*waiting)
    await other
    assert runs == 2  # one run for "k" shared by its five callers, one for "other"
    assert len(set(answers)) == 1
    assert await flight.run("k", work) == 3  # nothing pending: a new run


async def test_a_failure_reaches_every_caller_of_that_run() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    gate = asyncio.Event()

    async def fail() -> int:
        await gate.wait()
        raise LookupError("gone")

    callers = [asyncio.create_task(flight.run("k", fail)) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, LookupError) for r in results)
    with pytest.raises(LookupError):
        await flight.run("k", fail)
