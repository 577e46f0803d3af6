"""Faults on the card route: timeouts, 5xx, a crash after Stripe charged, lost webhooks. Never two charges,
never a paid order without its entitlement."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from app.accounts.models import Account, User
from app.clock import FrozenClock
from app.settings import Settings
from billing.models import CardPayment, Order
from billing.service._payments import start_attempt
from billing.stripe.flows import charge, reconcile
from tests.api.stripe_app import CardWorld, allowed, card_order, pay, save_card, succeeded_charges
from tests.api.test_auth import assert_problem
from tests.factories import bearer
from tests.stripe_server import FaultKind


async def _order(world: CardWorld, order_id: str) -> dict[str, Any]:
    r = await world.client.get(f"/v1/orders/{order_id}", headers=bearer(world.a.user_token))
    return dict(r.json())


async def _attempts(sessionmaker: Any) -> list[tuple[int, str]]:
    async with sessionmaker() as s:
        return [(p.attempt, p.status) for p in (await s.scalars(select(CardPayment).order_by(CardPayment.attempt)))]


async def test_a_lost_answer_is_replayed_under_the_same_key_and_charges_once(shop: CardWorld,
                                                                            sessionmaker: Any) -> None:
    await save_card(shop)
    order = await card_order(shop, "reports_basic")
    shop.fake.inject(FaultKind.LOST_RESPONSE, method="POST", path="/v1/payment_intents", times=3)
    r = await pay(shop, order["id"])
    assert_problem(r, 503, "payment_provider_unavailable")
    assert (await _order(shop, order["id"]))["state"] == "payment_pending" and not await allowed(shop)
    assert await _attempts(sessionmaker) == [(1, "pending")]
    assert len(succeeded_charges(shop.fake)) == 1  # Stripe did charge: only the answer was lost
    again = await pay(shop, order["id"])  # the user retries (a new request): the same attempt is replayed
    assert again.json()["state"] == "fulfilled" and await allowed(shop)
    assert len(succeeded_charges(shop.fake)) == 1 and await _attempts(sessionmaker) == [(1, "succeeded")]
    sent = [r for r in shop.fake.requests if r.path == "/v1/payment_intents"]
    assert {r.idempotency_key for r in sent} == {f"order:{order['id']}:pi:1"} and sent[-1].replayed


async def test_server_errors_and_timeouts_leave_the_order_payable_and_nothing_charged(shop: CardWorld,
                                                                                     sessionmaker: Any) -> None:
    await save_card(shop)
    order = await card_order(shop, "reports_basic")
    for kind in (FaultKind.SERVER_ERROR, FaultKind.TIMEOUT, FaultKind.CONNECTION_ERROR):
        shop.fake.inject(kind, method="POST", path="/v1/payment_intents", times=3)
        assert_problem(await pay(shop, order["id"]), 503, "payment_provider_unavailable")
        assert succeeded_charges(shop.fake) == [] and (await _order(shop, order["id"]))["state"] == "payment_pending"
    shop.fake.inject(FaultKind.SERVER_ERROR, method="POST", path="/v1/payment_intents", times=1)
    assert (await pay(shop, order["id"])).json()["state"] == "fulfilled"  # the SDK's own retry got through
    assert len(succeeded_charges(shop.fake)) == 1 and await _attempts(sessionmaker) == [(1, "succeeded")]


async def _crash_after_charge(world: CardWorld, sessionmaker: Any, clock: FrozenClock, order_id: str,
                              card: str) -> None:
    """Steps 1 and 2 of a payment, then the process dies before step 3 records Stripe's answer."""
    async with sessionmaker() as s, s.begin():
        order = await s.scalar(select(Order).where(Order.order_id == order_id))
        assert order is not None
        account = await s.get_one(Account, order.account_id)
        user = await s.get_one(User, (order.account_id, order.user_id))
        payment = await start_attempt(s, order, account, user, payment_method_id=card, clock=clock)
    assert payment is not None
    outcome = await charge(world.client.app.state.stripe, payment)
    assert outcome.status == "succeeded"  # ... and nothing recorded it


async def test_reconcile_finishes_a_payment_charged_before_a_crash_without_charging_again(
        shop: CardWorld, sessionmaker: Any, clock: FrozenClock, settings: Settings) -> None:
    card = await save_card(shop)
    order = await card_order(shop, "reports_basic")
    await _crash_after_charge(shop, sessionmaker, clock, order["id"], card)
    assert (await _order(shop, order["id"]))["state"] == "payment_pending" and not await allowed(shop)
    counts = await reconcile(sessionmaker, shop.client.app.state.stripe, settings=settings, clock=clock)
    assert counts["payments_replayed"] == 0  # younger than reconcile_after_seconds: maybe still in flight
    clock.advance(timedelta(seconds=settings.reconcile_after_seconds + 1))
    counts = await reconcile(sessionmaker, shop.client.app.state.stripe, settings=settings, clock=clock)
    assert counts["payments_replayed"] == 1 and counts["errors"] == 0
    assert (await _order(shop, order["id"]))["state"] == "fulfilled" and await allowed(shop)
    assert len(succeeded_charges(shop.fake)) == 1
    assert [r.replayed for r in shop.fake.requests if r.path == "/v1/payment_intents"] == [False, True]
    again = await reconcile(sessionmaker, shop.client.app.state.stripe, settings=settings, clock=clock)
    assert again["payments_replayed"] == 0 and len(succeeded_charges(shop.fake)) == 1


async def test_the_webhook_alone_completes_a_payment_whose_answer_was_never_recorded(
        shop: CardWorld, sessionmaker: Any, clock: FrozenClock) -> None:
    card = await save_card(shop)
    order = await card_order(shop, "reports_basic")
    await _crash_after_charge(shop, sessionmaker, clock, order["id"], card)
    await shop.deliver()  # found by the metadata we sent (the PaymentIntent id was never stored)
    assert (await _order(shop, order["id"]))["state"] == "fulfilled" and await allowed(shop)
    assert (await pay(shop, order["id"])).json()["state"] == "fulfilled"
    assert len(succeeded_charges(shop.fake)) == 1


async def test_reconcile_repairs_a_lost_webhook_after_3ds(shop: CardWorld, sessionmaker: Any, clock: FrozenClock,
                                                          settings: Settings) -> None:
    card = await save_card(shop, "pm_card_authenticationRequired")
    order = await card_order(shop, "reports_basic")
    pi = (await pay(shop, order["id"])).json()["payment"]["payment_intent"]
    gateway = shop.client.app.state.stripe
    await gateway.client.v1.payment_intents.confirm_async(pi, {"payment_method": card})
    await gateway.client.raw_request_async("post", f"/v1/_fake/authenticate/{pi}", success="true")
    shop.fake._undelivered.clear()  # every webhook of it is lost
    clock.advance(timedelta(seconds=settings.reconcile_after_seconds + 1))
    counts = await reconcile(sessionmaker, gateway, settings=settings, clock=clock)
    assert counts["payments_completed"] == 1
    assert (await _order(shop, order["id"]))["state"] == "fulfilled" and await allowed(shop)
    assert len(succeeded_charges(shop.fake)) == 1


async def test_two_concurrent_pay_calls_charge_once(shop: CardWorld, sessionmaker: Any) -> None:
    import asyncio

    await save_card(shop)
    order = await card_order(shop, "reports_basic")
    first, second = await asyncio.gather(pay(shop, order["id"]), pay(shop, order["id"]))
    assert {first.status_code, second.status_code} <= {200, 409}
    assert (await _order(shop, order["id"]))["state"] == "fulfilled" and await allowed(shop)
    assert len(succeeded_charges(shop.fake)) == 1 and await _attempts(sessionmaker) == [(1, "succeeded")]


async def test_an_order_whose_charge_has_no_answer_can_be_canceled_and_reconcile_refunds_the_charge(
        shop: CardWorld, sessionmaker: Any, clock: FrozenClock, settings: Settings) -> None:
    await save_card(shop)
    order = await card_order(shop, "reports_basic")
    shop.fake.inject(FaultKind.LOST_RESPONSE, method="POST", path="/v1/payment_intents", times=3)
    assert_problem(await pay(shop, order["id"]), 503, "payment_provider_unavailable")
    r = await shop.client.post(f"/v1/orders/{order['id']}/cancel", headers=bearer(shop.a.user_token))
    assert r.status_code == 200 and r.json()["state"] == "canceled" and not await allowed(shop)
    assert_problem(await pay(shop, order["id"]), 409, "illegal_transition")
    sent = len([r for r in shop.fake.requests if r.path == "/v1/payment_intents" and r.method == "POST"])
    clock.advance(timedelta(seconds=settings.reconcile_after_seconds + 1))
    counts = await reconcile(sessionmaker, shop.client.app.state.stripe, settings=settings, clock=clock)
    assert (counts["payments_completed"], counts["orphans_refunded"], counts["errors"]) == (1, 1, 0)
    assert len(succeeded_charges(shop.fake)) == 1 and shop.fake.of_kind("charge")[0]["amount_refunded"] == 225
    assert len([r for r in shop.fake.requests if r.path == "/v1/payment_intents" and r.method == "POST"]) == sent
    got = await shop.client.get(f"/v1/orders/{order['id']}", headers=bearer(shop.key))
    assert (got.json()["state"], got.json()["refunded_minor"]) == ("canceled", 225)


async def test_a_payment_completed_after_the_order_was_canceled_is_flagged_then_refunded_by_reconcile(
        shop: CardWorld, sessionmaker: Any, clock: FrozenClock, settings: Settings) -> None:
    from app.outbox import OutboxEvent

    card = await save_card(shop, "pm_card_authenticationRequired")
    order = await card_order(shop, "reports_basic")
    pi = (await pay(shop, order["id"])).json()["payment"]["payment_intent"]
    r = await shop.client.post(f"/v1/orders/{order['id']}/cancel", headers=bearer(shop.a.user_token))
    assert r.json()["state"] == "canceled"
    gateway = shop.client.app.state.stripe
    await gateway.client.v1.payment_intents.confirm_async(pi, {"payment_method": card})
    await gateway.client.raw_request_async("post", f"/v1/_fake/authenticate/{pi}", success="true")
    await shop.deliver()
    assert (await _order(shop, order["id"]))["state"] == "canceled" and not await allowed(shop)
    async with sessionmaker() as s:
        flagged = (await s.scalars(select(OutboxEvent.type).where(OutboxEvent.type == "payment.orphaned"))).all()
    assert list(flagged) == ["payment.orphaned"]
    counts = await reconcile(sessionmaker, gateway, settings=settings, clock=clock)
    assert (counts["orphans_refunded"], counts["refunds_replayed"], counts["errors"]) == (1, 1, 0)
    assert shop.fake.of_kind("charge")[0]["amount_refunded"] == 225
    assert (await _order(shop, order["id"]))["refunded_minor"] == 225
    again = await reconcile(sessionmaker, gateway, settings=settings, clock=clock)
    assert again["orphans_refunded"] == 0 and len(shop.fake.of_kind("refund")) == 1
