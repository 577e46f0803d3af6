"""Outbox events exist only when the transaction that wrote them commits."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.clock import FrozenClock
from app.outbox import OutboxEvent
from tests.support.outbox import emit


async def test_committed_events_are_stored_in_order(sessionmaker: Any, clock: FrozenClock) -> None:
    async with sessionmaker() as s, s.begin():
        first = await emit(s, clock=clock, type="test.one", payload={"n": 1}, account_id=None)
        second = await emit(s, clock=clock, type="test.two", payload={"n": 2}, account_id=None)
    async with sessionmaker() as s:
        rows = (await s.scalars(select(OutboxEvent).order_by(OutboxEvent.seq))).all()
    assert [(r.event_id, r.type, r.payload) for r in rows] == [
        (first, "test.one", {"n": 1}), (second, "test.two", {"n": 2})]
    assert rows[0].occurred_at == clock.now()


async def test_events_of_a_rolled_back_transaction_never_exist(sessionmaker: Any, clock: FrozenClock) -> None:
    with pytest.raises(RuntimeError):
        async with sessionmaker() as s, s.begin():
            await emit(s, clock=clock, type="test.lost", payload={}, account_id=None)
            raise RuntimeError("boom")
    async with sessionmaker() as s:
        assert (await s.scalars(select(OutboxEvent))).all() == []
