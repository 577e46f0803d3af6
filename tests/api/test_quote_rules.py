"""Quote rules that keep money right: one line per module, card minimums per currency."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from app.clock import FrozenClock
from billing.models import Order, Quote
from billing.stripe.errors import PaymentProviderRejected
from tests.api.stripe_app import CardWorld, card_order, pay, save_card, succeeded_charges
from tests.api.test_auth import assert_problem
from tests.factories import bearer


async def test_a_quote_listing_a_module_twice_is_refused_and_stores_nothing(shop: CardWorld,
                                                                             sessionmaker: Any) -> None:
    body = {"user": shop.a.user, "items": [{"module": "reports_basic"}, {"module": "reports_basic", "quantity": 2}]}
    r = await shop.client.post("/v1/quotes", json=body, headers=bearer(shop.a.user_token))
    problem = assert_problem(r, 422, "module_not_available")
    assert [e["field"] for e in problem["errors"]] == ["items[1].module"]
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Quote)) == 0


async def _late_quote(world: CardWorld, clock: FrozenClock) -> dict[str, Any]:
    """reports_basic quoted half a day before the period ends: 0.15 USD, under the 0.50 USD card minimum."""
    clock.advance(timedelta(days=7))  # 2026-11-30 12:00
    r = await world.client.post("/v1/quotes", json={"user": world.a.user, "items": [{"module": "reports_basic"}]},
                                headers=bearer(world.key))
    assert r.status_code == 201, r.text
    assert r.json()["total_minor"] == 15
    return dict(r.json())


async def test_a_card_quote_under_the_card_minimum_is_refused_at_quote_time_with_the_reason(
        shop: CardWorld, clock: FrozenClock) -> None:
    q = await _late_quote(shop, clock)
    assert q["decision"]["route"] is None and q["decision"]["outcome"] == "blocked"
    assert any("below the smallest card payment of 0.50 USD" in r for r in q["decision"]["reasons"])
    o = await shop.client.post("/v1/orders", json={"quote_id": q["id"]},
                               headers={**bearer(shop.key), "Idempotency-Key": "small-1"})
    assert_problem(o, 422)
    assert shop.fake.of_kind("payment_intent") == []


async def test_a_purchase_under_the_card_minimum_goes_to_the_budget_when_the_policy_allows_it(
        shop: CardWorld, clock: FrozenClock) -> None:
    r = await shop.client.post("/v1/accounts/acme/budgets", json={"name": "Main", "currency": "USD",
                                                                  "amount_minor": 10_000}, headers=bearer(shop.key))
    assert r.status_code == 201, r.text
    policy = await shop.client.put("/v1/accounts/acme/guardrails", json={"routes": ["budget", "card"],
                                                                         "preferred_route": "card"},
                                   headers=bearer(shop.key))
    assert policy.status_code == 200, policy.text
    q = await _late_quote(shop, clock)
    assert q["decision"]["route"] == "budget", q["decision"]
    o = await shop.client.post("/v1/orders", json={"quote_id": q["id"]},
                               headers={**bearer(shop.key), "Idempotency-Key": "small-2"})
    assert o.status_code == 201 and o.json()["state"] == "fulfilled" and o.json()["total_minor"] == 15
    assert shop.fake.of_kind("payment_intent") == []


async def test_an_order_stripe_refuses_to_charge_fails_with_a_reason_and_can_be_canceled(
        shop: CardWorld, sessionmaker: Any) -> None:
    await save_card(shop)
    order = await card_order(shop, "reports_basic")
    async with sessionmaker() as s, s.begin():  # an order placed before the minimum was checked at quote time
        await s.execute(update(Order).where(Order.order_id == order["id"]).values(total_minor=30))
    paid = await pay(shop, order["id"])
    assert paid.status_code == 200, paid.text
    assert paid.json()["state"] == "failed" and "nothing was charged" in paid.json()["failure_reason"]
    r = await shop.client.post(f"/v1/orders/{order['id']}/cancel", headers=bearer(shop.a.user_token))
    assert r.status_code == 200 and r.json()["state"] == "canceled"
    assert succeeded_charges(shop.fake) == []


async def test_the_fake_applies_each_currencys_card_rules(shop: CardWorld) -> None:
    gateway = shop.client.app.state.stripe
    card = await save_card(shop)
    [customer] = shop.fake.of_kind("customer")
    cases = [(49, "usd", False), (50, "usd", True), (29, "gbp", False), (49, "jpy", False), (50, "jpy", True),
             (1005, "kwd", False), (1010, "kwd", True)]
    for amount, currency, ok in cases:
        try:
            await gateway.charge_off_session(amount_minor=amount, currency=currency, customer_id=customer["id"],
                                             payment_method_id=card, metadata={}, key=f"rule-{amount}-{currency}")
            accepted = True
        except PaymentProviderRejected:
            accepted = False
        assert accepted is ok, (amount, currency)
