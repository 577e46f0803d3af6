"""The ledger invariant under concurrency: captured + reserved never exceeds the amount."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import service as accounts
from app.accounts.schemas import AccountUpsert
from app.clock import FrozenClock
from app.db import create_engine
from app.outbox import OutboxEvent
from billing import service
from billing.errors import BudgetExhausted, HoldStateConflict
from billing.models import Budget, BudgetPeriod, LedgerEntry
from billing.service._budgets import ledger_sums
from tests.support.race import race


async def _budget(sessionmaker: Any, clock: FrozenClock, amount: int) -> Budget:
    async with sessionmaker() as s, s.begin():
        acc, _ = await accounts.upsert_account(s, AccountUpsert(external_id="acme", name="Acme"), actor="t",
                                               clock=clock)
        return await service.create_budget(s, acc, name="Main", currency="USD", amount_minor=amount,
                                           cost_center=None, anchor_day=1, actor="t", clock=clock)


async def test_200_concurrent_holds_take_exactly_what_fits(database_url: str, sessionmaker: Any,
                                                           clock: FrozenClock) -> None:
    budget = await _budget(sessionmaker, clock, amount=10_000)  # fits 40 purchases of 250
    engine = create_engine(database_url, pool_size=50, max_overflow=0)

    async def buy(session: AsyncSession, i: int) -> str:
        b = await session.get_one(Budget, (budget.account_id, budget.budget_id))
        hold = await service.reserve(session, b, order_id=f"ord_{i}", amount_minor=250, clock=clock,
                                     capture_now=i % 2 == 0)
        return hold.state

    results: list[Any] = []
    for batch in range(4):  # 4 waves of 50 racing connections = 200 attempts
        results += await race(engine, 50, lambda s, i, b=batch: buy(s, b * 50 + i))
    await engine.dispose()
    ok = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, BudgetExhausted)]
    assert len(ok) == 40 and len(refused) == 160 and len(ok) + len(refused) == 200
    async with sessionmaker() as s:
        b = await s.get_one(Budget, (budget.account_id, budget.budget_id))
        state = await service.budget_state(s, b, clock=clock)
        sums = await ledger_sums(s, b, state.period)
    assert state.reserved_minor + state.captured_minor == 10_000 and state.remaining_minor == 0
    assert sums["reserve"] == 10_000
    assert state.captured_minor == sums.get("capture", 0)
    assert state.reserved_minor == sums["reserve"] - sums.get("capture", 0) - sums.get("release", 0)


async def test_capture_release_refund_move_money_once(sessionmaker: Any, clock: FrozenClock) -> None:
    budget = await _budget(sessionmaker, clock, amount=1_000)
    async with sessionmaker() as s, s.begin():
        b = await s.get_one(Budget, (budget.account_id, budget.budget_id))
        held = await service.reserve(s, b, order_id="o1", amount_minor=600, clock=clock)
        again = await service.reserve(s, b, order_id="o1", amount_minor=600, clock=clock)
        assert again.hold_id == held.hold_id  # one hold per order
        await service.capture(s, held, currency="USD", clock=clock)
        await service.capture(s, held, currency="USD", clock=clock)  # idempotent
        await service.refund(s, held, amount_minor=100, currency="USD", clock=clock)
        other = await service.reserve(s, b, order_id="o2", amount_minor=400, clock=clock)
        await service.release(s, other, currency="USD", clock=clock)
        await service.release(s, other, currency="USD", clock=clock)  # idempotent
        state = await service.budget_state(s, b, clock=clock)
        assert (state.captured_minor, state.reserved_minor, state.remaining_minor) == (500, 0, 500)
        for bad in (lambda: service.refund(s, held, amount_minor=501, currency="USD", clock=clock),
                    lambda: service.capture(s, other, currency="USD", clock=clock)):
            try:
                await bad()
            except HoldStateConflict:
                pass
            else:
                raise AssertionError("expected HoldStateConflict")
        kinds = (await s.scalars(select(LedgerEntry.kind).order_by(LedgerEntry.entry_id))).all()
    assert list(kinds) == ["reserve", "capture", "refund", "reserve", "release"]


async def test_threshold_events_fire_once_per_period(sessionmaker: Any, clock: FrozenClock) -> None:
    budget = await _budget(sessionmaker, clock, amount=1_000)
    async with sessionmaker() as s, s.begin():
        b = await s.get_one(Budget, (budget.account_id, budget.budget_id))
        for i, amount in enumerate((400, 200, 300, 100)):
            await service.reserve(s, b, order_id=f"o{i}", amount_minor=amount, clock=clock, capture_now=True)
        await s.flush()
        events = (await s.scalars(select(OutboxEvent).where(OutboxEvent.type == "budget.threshold_reached")
                                  .order_by(OutboxEvent.seq))).all()
    assert [e.payload["threshold_pct"] for e in events] == [50, 80, 100]


async def test_the_database_refuses_overspending_even_without_the_guard(sessionmaker: Any, clock: FrozenClock) -> None:
    import pytest
    from sqlalchemy import update
    from sqlalchemy.exc import IntegrityError

    budget = await _budget(sessionmaker, clock, amount=100)
    async with sessionmaker() as s, s.begin():
        b = await s.get_one(Budget, (budget.account_id, budget.budget_id))
        await service.budget_state(s, b, clock=clock)
    with pytest.raises(IntegrityError):
        async with sessionmaker() as s, s.begin():
            await s.execute(update(BudgetPeriod).values(captured_minor=101))
    async with sessionmaker() as s:
        assert await s.scalar(select(func.max(BudgetPeriod.captured_minor))) == 0
