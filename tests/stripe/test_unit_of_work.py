"""The unit of work's guard: no Stripe call runs while the calling task holds an open database transaction."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from app.db import TransactionOpen, in_transaction
from billing.stripe.gateway import StripeGateway
from tests.stripe_server import FakeStripe


async def test_a_stripe_call_inside_an_open_transaction_is_refused_before_anything_is_sent(
        gateway: StripeGateway, fake: FakeStripe, sessionmaker: Any) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(text("select 1"))  # a connection now holds the transaction (and would hold locks)
        with pytest.raises(TransactionOpen):
            await gateway.create_customer(key="user:u1:customer", metadata={})
    assert fake.requests == []
    customer = await gateway.create_customer(key="user:u1:customer", metadata={})  # committed: now it may call
    assert customer.id.startswith("cus_") and len(fake.requests) == 1


async def test_a_read_session_left_open_counts_as_a_transaction_until_it_closes(
        gateway: StripeGateway, fake: FakeStripe, sessionmaker: Any) -> None:
    async with sessionmaker() as session:
        await session.execute(text("select 1"))  # autobegun
        assert in_transaction()
        with pytest.raises(TransactionOpen):
            await gateway.get_customer("cus_x")
    assert not in_transaction() and fake.requests == []


async def test_a_session_that_ran_no_statement_holds_no_transaction(gateway: StripeGateway, sessionmaker: Any) -> None:
    async with sessionmaker() as session, session.begin():  # e.g. a route's request session, not used yet
        assert not in_transaction()
        assert (await gateway.create_customer(key="user:u2:customer", metadata={})).id.startswith("cus_")


async def test_another_tasks_open_transaction_does_not_stop_this_tasks_call(
        gateway: StripeGateway, sessionmaker: Any) -> None:
    held, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with sessionmaker() as session, session.begin():
            await session.execute(text("select 1"))
            held.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await held.wait()
    try:
        assert not in_transaction()
        assert (await gateway.create_customer(key="user:u3:customer", metadata={})).id.startswith("cus_")
    finally:
        release.set()
        await holder


async def test_a_rolled_back_transaction_no_longer_counts(gateway: StripeGateway, sessionmaker: Any) -> None:
    with pytest.raises(RuntimeError):
        async with sessionmaker() as session, session.begin():
            await session.execute(text("select 1"))
            raise RuntimeError("the handler failed")
    assert not in_transaction()
    assert (await gateway.create_customer(key="user:u4:customer", metadata={})).id.startswith("cus_")


async def test_a_cancelled_query_still_unwinds_as_a_cancellation_and_leaves_no_transaction(sessionmaker: Any) -> None:
    started = asyncio.Event()

    async def slow() -> None:
        async with sessionmaker() as session, session.begin():
            await session.execute(text("select 1"))
            started.set()
            await session.execute(text("select pg_sleep(10)"))

    task = asyncio.create_task(slow())
    await started.wait()
    await asyncio.sleep(0.2)  # inside pg_sleep now
    task.cancel()
    with pytest.raises(asyncio.CancelledError):  # the guard's bookkeeping never turns it into another error
        await task
    assert not in_transaction()
    async with sessionmaker() as session:  # and the pool still works
        assert (await session.execute(text("select 2"))).scalar() == 2
