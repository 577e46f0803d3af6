"""Stripe's real rules, enforced by the fake too: idempotency keys expire after 24 hours, refunds have a
status that can fail, card minimums and amount rules per currency."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from app.clock import FrozenClock
from app.settings import Settings
from billing.stripe.flows import reconcile
from tests.api.stripe_app import CardWorld, allowed, card_order, pay, save_card, succeeded_charges
from tests.api.test_auth import assert_problem
from tests.factories import bearer
from tests.stripe_server import FaultKind

DAY = 24 * 3600


async def _order(world: CardWorld, order_id: str) -> dict[str, Any]:
    return dict((await world.client.get(f"/v1/orders/{order_id}", headers=bearer(world.key))).json())


async def test_the_fake_forgets_idempotency_keys_after_24_hours(shop: CardWorld) -> None:
    gateway = shop.client.app.state.stripe
    first = await gateway.create_customer(key="cust-1", metadata={})
    assert (await gateway.create_customer(key="cust-1", metadata={})).id == first.id
    shop.fake.advance(DAY + 60)
    assert (await gateway.create_customer(key="cust-1", metadata={})).id != first.id


async def test_reconcile_adopts_a_payment_older_than_stripes_key_window_instead_of_charging_again(
        shop: CardWorld, sessionmaker: Any, clock: FrozenClock, settings: Settings) -> None:
    await save_card(shop)
    order = await card_order(shop, "reports_basic")
    shop.fake.inject(FaultKind.LOST_RESPONSE, method="POST", path="/v1/payment_intents", times=3)
    assert_problem(await pay(shop, order["id"]), 503, "payment_provider_unavailable")
    assert len(succeeded_charges(shop.fake)) == 1  # Stripe charged; the answer was lost
    clock.advance(timedelta(hours=30))
    shop.fake.advance(30 * 3600)  # Stripe no longer remembers the attempt's key
    counts = await reconcile(sessionmaker, shop.client.app.state.stripe, settings=settings, clock=clock)
    assert counts["errors"] == 0
    assert (await _order(shop, order["id"]))["state"] == "fulfilled" and await allowed(shop)
    assert len(succeeded_charges(shop.fake)) == 1 and len(shop.fake.of_kind("payment_intent")) == 1
    again = await reconcile(sessionmaker, shop.client.app.state.stripe, settings=settings, clock=clock)
    assert again["errors"] == 0 and len(succeeded_charges(shop.fake)) == 1


async def test_an_old_attempt_that_never_reached_stripe_is_charged_once_on_reconcile(
        shop: CardWorld, sessionmaker: Any, clock: FrozenClock, settings: Settings) -> None:
    await save_card(shop)
    order = await card_order(shop, "reports_basic")
    shop.fake.inject(FaultKind.TIMEOUT, method="POST", path="/v1/payment_intents", times=3)
    assert_problem(await pay(shop, order["id"]), 503, "payment_provider_unavailable")
    assert succeeded_charges(shop.fake) == []
    clock.advance(timedelta(hours=30))
    shop.fake.advance(30 * 3600)
    await reconcile(sessionmaker, shop.client.app.state.stripe, settings=settings, clock=clock)
    assert (await _order(shop, order["id"]))["state"] == "fulfilled"
    assert len(succeeded_charges(shop.fake)) == 1


async def _paid(world: CardWorld) -> dict[str, Any]:
    await save_card(world)
    order = await card_order(world, "reports_basic")
    o = (await pay(world, order["id"])).json()
    assert o["state"] == "fulfilled"
    await world.deliver()
    return dict(o)


async def _refund(world: CardWorld, order_id: str, key: str, **body: Any) -> Any:
    return await world.client.post(f"/v1/orders/{order_id}/refund", json=body,
                                   headers={**bearer(world.a.admin_token), "Idempotency-Key": key})


async def _settle(world: CardWorld, status: str) -> None:
    [refund] = [r for r in world.fake.of_kind("refund") if r["status"] == "pending"]
    gateway = world.client.app.state.stripe
    await gateway.client.raw_request_async("post", f"/v1/_fake/refunds/{refund['id']}/settle", status=status)
    await world.deliver()


async def _event_types(sessionmaker: Any) -> list[str]:
    from sqlalchemy import select

    from app.outbox import OutboxEvent
    async with sessionmaker() as s:
        return list((await s.scalars(select(OutboxEvent.type).where(OutboxEvent.type.like("order.%refund%"))
                                     .order_by(OutboxEvent.seq))).all())


async def test_a_pending_refund_changes_nothing_until_stripe_says_it_succeeded(shop: CardWorld,
                                                                               sessionmaker: Any) -> None:
    o = await _paid(shop)
    shop.fake.refunds_pending = True
    r = await _refund(shop, o["id"], "pending-1")
    assert r.status_code == 200 and (r.json()["state"], r.json()["refunded_minor"]) == ("fulfilled", 0)
    await shop.deliver()  # refund.created (pending) and charge.refunded counting the pending amount
    got = await _order(shop, o["id"])
    assert (got["state"], got["refunded_minor"]) == ("fulfilled", 0) and await allowed(shop)
    assert_problem(await _refund(shop, o["id"], "pending-2", amount_minor=50), 409, "payment_in_progress")
    await _settle(shop, "succeeded")
    got = await _order(shop, o["id"])
    assert (got["state"], got["refunded_minor"]) == ("refunded", 225) and not await allowed(shop)
    assert await _event_types(sessionmaker) == ["order.refund_pending", "order.refunded"]


async def test_a_failed_refund_returns_no_money_keeps_the_order_and_tells_the_vendor(shop: CardWorld,
                                                                                     sessionmaker: Any) -> None:
    o = await _paid(shop)
    shop.fake.refunds_pending = True
    assert (await _refund(shop, o["id"], "fail-1", amount_minor=100)).status_code == 200
    await shop.deliver()
    await _settle(shop, "failed")
    shop.fake._undelivered.extend(shop.fake.events_of("charge.refunded"))  # the old snapshot again: ignored
    await shop.deliver()
    got = await _order(shop, o["id"])
    assert (got["state"], got["refunded_minor"]) == ("fulfilled", 0) and await allowed(shop)
    assert await _event_types(sessionmaker) == ["order.refund_pending", "order.refund_failed"]
    shop.fake.refunds_pending = False
    again = await _refund(shop, o["id"], "fail-2", amount_minor=100)  # the money is still owed: refund again
    assert again.status_code == 200 and again.json()["refunded_minor"] == 100


async def test_a_partial_card_refund_and_a_lost_dispute_reverse_the_sales_credit(shop: CardWorld) -> None:
    o = await _paid(shop)
    assert (await _refund(shop, o["id"], "credit-1", amount_minor=100)).status_code == 200
    await shop.deliver()
    [charge] = shop.fake.of_kind("charge")
    gateway = shop.client.app.state.stripe
    await gateway.client.raw_request_async("post", f"/v1/_fake/charges/{charge['id']}/dispute")
    dispute_id = shop.fake.of_kind("dispute")[0]["id"]
    await gateway.client.raw_request_async("post", f"/v1/_fake/disputes/{dispute_id}/close", status="lost")
    await shop.deliver()
    await shop.deliver()
    r = await shop.client.get("/v1/billing/sales-credit", params={"period": "2026-11"}, headers=bearer(shop.key))
    rows = [(x["kind"], x["bookings"], x["amount_minor"]) for x in r.json()["rows"]]
    assert rows == [("booking", 1, 225), ("reversal", 2, -225)]
