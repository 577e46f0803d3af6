"""Renewals (``commerce billing run``) on both routes: success, concurrency, failure, grace, dunning, the end."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from app.clock import FrozenClock
from app.outbox import OutboxEvent
from app.settings import Settings
from billing.models import LedgerEntry, Order, SalesCredit, Subscription
from billing.stripe.flows import run_billing
from entitlements.models import Grant, SeatAssignment
from tests.api.stripe_app import CardWorld, allowed, card_order, idem_header, pay, save_card, succeeded_charges
from tests.factories import bearer


def _at(day: int, hour: int = 0, month: int = 12) -> datetime:
    return datetime(2026, month, day, hour, 5, tzinfo=UTC)


async def _sub(sessionmaker: Any) -> Subscription:
    async with sessionmaker() as s:
        [sub] = (await s.scalars(select(Subscription))).all()
        return sub


async def _types(sessionmaker: Any, *types: str) -> list[str]:
    async with sessionmaker() as s:
        return list((await s.scalars(select(OutboxEvent.type).where(OutboxEvent.type.in_(types))
                                     .order_by(OutboxEvent.seq))).all())


async def _run(world: CardWorld, sessionmaker: Any, settings: Settings, clock: FrozenClock) -> Any:
    return await run_billing(sessionmaker, world.client.app.state.stripe, settings=settings, clock=clock)


async def test_card_renewal_charges_off_session_once_even_when_two_runs_race(
        shop: CardWorld, sessionmaker: Any, settings: Settings, clock: FrozenClock) -> None:
    await save_card(shop)
    order = await card_order(shop, "reports_basic")
    assert (await pay(shop, order["id"])).json()["state"] == "fulfilled"
    assert (await _run(shop, sessionmaker, settings, clock)).renewed == 0  # not due before the boundary
    clock.set(_at(1))
    first, second = await asyncio.gather(_run(shop, sessionmaker, settings, clock),
                                         _run(shop, sessionmaker, settings, clock))
    assert first.renewed + second.renewed == 1 and first.failed + second.failed == 0
    assert [c["amount"] for c in succeeded_charges(shop.fake)] == [225, 900]  # a whole month, once
    sub = await _sub(sessionmaker)
    assert (sub.status, sub.current_period_end, sub.dunning_attempts) == (
        "active", datetime(2027, 1, 1, tzinfo=UTC), 0)
    async with sessionmaker() as s:
        renewal = await s.scalar(select(Order).where(Order.subscription_id == sub.subscription_id))
        motion = await s.scalar(select(SalesCredit.motion).where(SalesCredit.order_id == renewal.order_id))
    assert renewal is not None and (renewal.state, renewal.total_minor, motion) == ("fulfilled", 900, "renewal")
    assert await allowed(shop)
    assert (await _run(shop, sessionmaker, settings, clock)).renewed == 0  # idempotent
    assert await _types(sessionmaker, "renewal.succeeded") == ["renewal.succeeded"]


async def test_failed_card_renewal_gets_grace_dunning_retries_then_access_ends(
        shop: CardWorld, sessionmaker: Any, settings: Settings, clock: FrozenClock) -> None:
    card = await save_card(shop)
    order = await card_order(shop, "reports_basic")
    assert (await pay(shop, order["id"])).json()["state"] == "fulfilled"
    r = await shop.client.delete(f"/v1/payment-methods/{card}?user={shop.a.user}", headers=bearer(shop.a.user_token))
    assert r.status_code == 204, r.text
    clock.set(_at(1))
    counted: list[tuple[int, int | None]] = []  # what the CLI's progress bar is told
    report = await run_billing(sessionmaker, shop.client.app.state.stripe, settings=settings, clock=clock,
                               progress=lambda done, total: counted.append((done, total)))
    assert report.failed == 1 and report.renewed == 0 and counted == [(1, None)]
    sub = await _sub(sessionmaker)
    assert (sub.status, sub.dunning_attempts) == ("past_due", 1)
    assert sub.grace_until == datetime(2026, 12, 8, tzinfo=UTC) and sub.next_attempt_at == datetime(
        2026, 12, 2, tzinfo=UTC)
    assert await allowed(shop)  # grace: access continues
    assert (await _run(shop, sessionmaker, settings, clock)).failed == 0  # the retry is not due yet
    for day, attempts in ((2, 2), (4, 3)):
        clock.set(_at(day))
        assert (await _run(shop, sessionmaker, settings, clock)).failed == 1
        assert (await _sub(sessionmaker)).dunning_attempts == attempts and await allowed(shop)
    clock.set(_at(6))
    assert (await _run(shop, sessionmaker, settings, clock)).ended == 1
    sub = await _sub(sessionmaker)
    assert sub.status == "ended" and not await allowed(shop)
    assert succeeded_charges(shop.fake) != [] and len(succeeded_charges(shop.fake)) == 1  # only the purchase
    assert await _types(sessionmaker, "renewal.failed", "subscription.ended") == [
        "renewal.failed"] * 4 + ["subscription.ended"]
    clock.set(_at(20))
    assert (await _run(shop, sessionmaker, settings, clock)).renewed == 0


async def _budget(world: CardWorld, amount: int) -> dict[str, Any]:
    r = await world.client.post("/v1/accounts/acme/budgets", json={"name": "Main", "currency": "USD",
                                "amount_minor": amount}, headers=bearer(world.key))
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_budget_renewal_captures_the_current_seat_count_from_the_new_periods_budget(
        shop: CardWorld, sessionmaker: Any, settings: Settings, clock: FrozenClock) -> None:
    budget = await _budget(shop, 100_000)
    q = (await shop.client.post("/v1/quotes", json={"user": shop.a.user, "items": [
        {"module": "reports_basic", "quantity": 3}]}, headers=bearer(shop.a.user_token))).json()
    assert q["decision"]["route"] == "budget"
    o = (await shop.client.post("/v1/orders", json={"quote_id": q["id"]},
                                headers={**bearer(shop.a.user_token), **idem_header()})).json()
    assert o["state"] == "fulfilled"
    sub = await _sub(sessionmaker)
    async with sessionmaker() as s:
        pool = await s.scalar(select(Grant.grant_id).where(Grant.seats == 3))
    r = await shop.client.post(f"/v1/accounts/acme/grants/{pool}/seats", json={"user": shop.a.user},
                               headers=bearer(shop.a.admin_token))
    assert r.status_code in (200, 201), r.text
    r = await shop.client.patch(f"/v1/accounts/acme/subscriptions/{sub.subscription_id}", json={"seats": 5},
                                headers=bearer(shop.a.admin_token))
    assert r.status_code == 200 and r.json()["seats"] == 5, r.text
    clock.set(_at(1))
    assert (await _run(shop, sessionmaker, settings, clock)).renewed == 1
    async with sessionmaker() as s:
        entries = (await s.execute(select(LedgerEntry.period, LedgerEntry.kind, LedgerEntry.amount_minor)
                                   .order_by(LedgerEntry.entry_id))).all()
        seats = (await s.scalars(select(Grant.seats).order_by(Grant.created_at))).all()
    assert [tuple(e) for e in entries] == [("2026-11", "reserve", 675), ("2026-11", "capture", 675),
                                           ("2026-12", "reserve", 4500), ("2026-12", "capture", 4500)]
    assert list(seats) == [3, 5]
    async with sessionmaker() as s:
        holders = (await s.execute(select(Grant.seats, SeatAssignment.user_id).join(
            SeatAssignment, (SeatAssignment.account_id == Grant.account_id)
            & (SeatAssignment.grant_id == Grant.grant_id)).order_by(Grant.created_at))).all()
    assert [seats for seats, _ in holders] == [3, 5]  # the seat holder keeps a seat in the renewed pool
    assert await allowed(shop)
    state = (await shop.client.get(f"/v1/accounts/acme/budgets/{budget['id']}", headers=bearer(shop.key))).json()
    assert (state["period"], state["captured_minor"]) == ("2026-12", 4500)


async def test_budget_renewal_that_fails_recovers_on_a_dunning_retry(
        shop: CardWorld, sessionmaker: Any, settings: Settings, clock: FrozenClock) -> None:
    budget = await _budget(shop, 1000)
    q = (await shop.client.post("/v1/quotes", json={"user": shop.a.user, "items": [{"module": "reports_basic"}]},
                                headers=bearer(shop.a.user_token))).json()
    o = (await shop.client.post("/v1/orders", json={"quote_id": q["id"]},
                                headers={**bearer(shop.a.user_token), **idem_header()})).json()
    assert o["state"] == "fulfilled" and o["route"] == "budget"
    await shop.client.patch(f"/v1/accounts/acme/budgets/{budget['id']}", json={"amount_minor": 500},
                            headers=bearer(shop.key))
    clock.set(_at(1))
    assert (await _run(shop, sessionmaker, settings, clock)).failed == 1  # 900 does not fit into 500
    assert (await _sub(sessionmaker)).status == "past_due" and await allowed(shop)
    r = await shop.client.patch(f"/v1/accounts/acme/budgets/{budget['id']}", json={"amount_minor": 5000},
                                headers=bearer(shop.key))
    assert r.status_code == 200, r.text
    clock.set(_at(2))
    assert (await _run(shop, sessionmaker, settings, clock)).renewed == 1
    sub = await _sub(sessionmaker)
    assert (sub.status, sub.grace_until, sub.dunning_attempts) == ("active", None, 0)
    async with sessionmaker() as s:
        grace = (await s.scalars(select(Grant).where(Grant.source_ref.like("%:grace")))).all()
    assert len(grace) == 1 and grace[0].revoked_at is not None and await allowed(shop)
    assert await _types(sessionmaker, "renewal.failed", "renewal.succeeded") == ["renewal.failed",
                                                                                "renewal.succeeded"]


async def test_a_renewal_the_bank_wants_confirmed_waits_for_the_customer_and_completes_by_webhook(
        shop: CardWorld, sessionmaker: Any, settings: Settings, clock: FrozenClock) -> None:
    card = await save_card(shop, "pm_card_authenticationRequired")
    order = await card_order(shop, "reports_basic")
    gateway = shop.client.app.state.stripe
    pi = (await pay(shop, order["id"])).json()["payment"]["payment_intent"]
    await gateway.client.v1.payment_intents.confirm_async(pi, {"payment_method": card})
    await gateway.client.raw_request_async("post", f"/v1/_fake/authenticate/{pi}", success="true")
    await shop.deliver()
    clock.set(_at(1))
    assert (await _run(shop, sessionmaker, settings, clock)).failed == 1
    sub = await _sub(sessionmaker)
    async with sessionmaker() as s:
        renewal = await s.scalar(select(Order).where(Order.subscription_id == sub.subscription_id))
    assert renewal is not None and renewal.state == "requires_action" and sub.status == "past_due"
    assert await allowed(shop)  # grace
    clock.set(_at(2))
    assert (await _run(shop, sessionmaker, settings, clock)).failed == 1  # a retry never charges it again
    assert len([p for p in shop.fake.of_kind("payment_intent") if p["metadata"].get("commerce_order_id")
                == renewal.order_id]) == 1
    got = (await shop.client.get(f"/v1/orders/{renewal.order_id}", headers=bearer(shop.key))).json()
    renewal_pi = got["payment"]["payment_intent"]
    assert got["payment"]["client_secret"].startswith(renewal_pi)
    await gateway.client.v1.payment_intents.confirm_async(renewal_pi, {"payment_method": card})
    await gateway.client.raw_request_async("post", f"/v1/_fake/authenticate/{renewal_pi}", success="true")
    await shop.deliver()
    sub = await _sub(sessionmaker)
    assert (sub.status, sub.current_period_end) == ("active", datetime(2027, 1, 1, tzinfo=UTC))
    assert await allowed(shop) and [c["amount"] for c in succeeded_charges(shop.fake)] == [225, 900]
