"""The card route over HTTP through the real SDK and the local Stripe: pay, 3-D Secure, declines, webhooks."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from app.outbox import OutboxEvent
from billing.models import CardPayment, Subscription
from tests.api.stripe_app import CardWorld, allowed, card_order, idem_header, pay, save_card, succeeded_charges
from tests.api.test_auth import assert_problem
from tests.factories import bearer


async def _types(sessionmaker: Any, prefix: str) -> list[str]:
    async with sessionmaker() as s:
        return list((await s.scalars(select(OutboxEvent.type).where(OutboxEvent.type.like(prefix))
                                     .order_by(OutboxEvent.seq))).all())


async def test_card_order_is_charged_once_off_session_then_entitled_and_provisioned(
        shop: CardWorld, sessionmaker: Any) -> None:
    card = await save_card(shop)
    order = await card_order(shop, "reports_basic")
    assert not await allowed(shop)
    headers = idem_header()
    first, again = await pay(shop, order["id"], headers=headers), await pay(shop, order["id"], headers=headers)
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    o = first.json()
    assert (o["state"], o["provision_status"], o["payment"]["status"]) == ("fulfilled", "requested", "succeeded")
    assert o["payment"]["client_secret"] is None and await allowed(shop)
    [charge] = succeeded_charges(shop.fake)
    assert (charge["amount"], charge["payment_method"], charge["metadata"]["commerce_order_id"]) == (
        225, card, order["id"])
    sent = [r for r in shop.fake.requests if r.path == "/v1/payment_intents"]
    assert [r.idempotency_key for r in sent] == [f"order:{order['id']}:pi:1"]
    # a third call (new key) on a fulfilled order charges nothing more; the webhook arriving late changes nothing
    assert (await pay(shop, order["id"])).json()["state"] == "fulfilled"
    assert [r.json()["duplicate"] for r in await shop.deliver()].count(False) >= 1
    assert len(succeeded_charges(shop.fake)) == 1
    assert await _types(sessionmaker, "order.%") == ["order.created", "order.payment_pending", "order.paid",
                                                     "order.fulfilled"]
    async with sessionmaker() as s:
        [sub] = (await s.scalars(select(Subscription))).all()
    assert (sub.module, sub.route, sub.status, sub.current_period_end.isoformat()) == (
        "reports_basic", "card", "active", "2026-12-01T00:00:00+00:00")


async def test_3ds_hands_the_client_secret_to_the_widget_and_the_webhook_completes_the_order(
        shop: CardWorld, sessionmaker: Any) -> None:
    card = await save_card(shop, "pm_card_authenticationRequired")
    order = await card_order(shop, "reports_basic")
    o = (await pay(shop, order["id"])).json()
    assert o["state"] == "requires_action" and o["payment"]["status"] == "requires_action"
    pi = o["payment"]["payment_intent"]
    assert o["payment"]["client_secret"].startswith(pi + "_secret_") and not await allowed(shop)
    # the widget confirms on-session (Stripe.js), the card holder passes 3-D Secure
    gateway = shop.client.app.state.stripe
    await gateway.client.v1.payment_intents.confirm_async(pi, {"payment_method": card})
    await gateway.client.raw_request_async("post", f"/v1/_fake/authenticate/{pi}", success="true")
    assert (await shop.client.get(f"/v1/orders/{order['id']}", headers=bearer(shop.a.user_token))).json()[
        "state"] == "requires_action"  # the synchronous answer was only a hint: the webhook decides
    events = list(shop.fake.events)
    await shop.deliver()
    got = (await shop.client.get(f"/v1/orders/{order['id']}", headers=bearer(shop.a.user_token))).json()
    assert got["state"] == "fulfilled" and got["payment"]["client_secret"] is None and await allowed(shop)
    # Stripe delivers everything again, newest first (duplicated and out of order): nothing changes
    shop.fake._undelivered.extend(reversed([e for e in events if e["type"].startswith("payment_intent.")]))
    assert all(r.json()["duplicate"] for r in await shop.deliver())
    assert len(succeeded_charges(shop.fake)) == 1
    assert await _types(sessionmaker, "order.%") == ["order.created", "order.payment_pending",
                                                     "order.requires_action", "order.paid", "order.fulfilled"]


async def test_out_of_order_failure_after_success_never_fails_a_paid_order(shop: CardWorld) -> None:
    card = await save_card(shop, "pm_card_authenticationRequired")
    order = await card_order(shop, "reports_basic")
    pi = (await pay(shop, order["id"])).json()["payment"]["payment_intent"]
    gateway = shop.client.app.state.stripe
    await gateway.client.v1.payment_intents.confirm_async(pi, {"payment_method": card})
    await gateway.client.raw_request_async("post", f"/v1/_fake/authenticate/{pi}", success="true")
    pending = list(shop.fake._undelivered)
    succeeded = [e for e in pending if e["type"] == "payment_intent.succeeded"]
    # the success arrives first, the earlier payment_failed (authentication_required) and requires_action late
    shop.fake._undelivered[:] = succeeded + [e for e in pending if e not in succeeded]
    await shop.deliver()
    assert (await shop.client.get(f"/v1/orders/{order['id']}", headers=bearer(shop.a.user_token))).json()[
        "state"] == "fulfilled"


async def test_failed_authentication_fails_the_order_and_grants_nothing(shop: CardWorld) -> None:
    card = await save_card(shop, "pm_card_authenticationRequired")
    order = await card_order(shop, "reports_basic")
    pi = (await pay(shop, order["id"])).json()["payment"]["payment_intent"]
    gateway = shop.client.app.state.stripe
    await gateway.client.v1.payment_intents.confirm_async(pi, {"payment_method": card})
    await gateway.client.raw_request_async("post", f"/v1/_fake/authenticate/{pi}", success="false")
    await shop.deliver()
    got = (await shop.client.get(f"/v1/orders/{order['id']}", headers=bearer(shop.a.user_token))).json()
    assert got["state"] == "failed" and "authenticated" in got["failure_reason"] and not await allowed(shop)


async def test_decline_fails_with_a_clear_reason_and_a_retry_with_another_card_succeeds(
        shop: CardWorld, sessionmaker: Any) -> None:
    await save_card(shop, "pm_card_chargeDeclinedInsufficientFunds")
    order = await card_order(shop, "reports_basic")
    o = (await pay(shop, order["id"])).json()
    assert (o["state"], o["failure_reason"]) == ("failed", "Your card was declined: insufficient funds.")
    assert o["payment"]["status"] == "failed" and not await allowed(shop) and succeeded_charges(shop.fake) == []
    good = await save_card(shop)
    o = (await pay(shop, order["id"], card=good)).json()
    assert (o["state"], o["failure_reason"], o["payment"]["attempt"]) == ("fulfilled", None, 2)
    assert await allowed(shop) and len(succeeded_charges(shop.fake)) == 1
    async with sessionmaker() as s:
        keys = (await s.scalars(select(CardPayment.idempotency_key).order_by(CardPayment.attempt))).all()
    assert list(keys) == [f"order:{order['id']}:pi:1", f"order:{order['id']}:pi:2"]


async def test_paying_without_a_saved_card_tells_the_widget_to_run_card_setup(shop: CardWorld) -> None:
    order = await card_order(shop, "reports_basic")
    r = await pay(shop, order["id"])
    assert_problem(r, 422, "card_setup_required")
    assert r.json()["setup_url"] == "/v1/payment-methods/setup"
    assert shop.fake.of_kind("payment_intent") == []
    other = await pay(shop, order["id"], card="pm_" + "x" * 20)
    assert other.status_code in (404, 422)


async def test_another_users_order_and_a_foreign_card_cannot_be_paid(shop: CardWorld) -> None:
    await save_card(shop)
    b_card = await save_card(shop, token=shop.b.user_token, user=shop.b.user)
    order = await card_order(shop, "reports_basic")
    assert_problem(await pay(shop, order["id"], token=shop.b.user_token), 404, "order_not_found")
    assert_problem(await pay(shop, order["id"], card=b_card), 404, "not_found")
    assert shop.fake.of_kind("payment_intent") == []


async def test_pay_requires_an_idempotency_key(shop: CardWorld) -> None:
    order = await card_order(shop, "reports_basic")
    r = await shop.client.post(f"/v1/orders/{order['id']}/pay", content=json.dumps({}),
                               headers=bearer(shop.a.user_token))
    assert r.status_code == 400
