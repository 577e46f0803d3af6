"""Every request that reaches Stripe, from the card routes, the webhook handlers and the billing jobs, finds its
caller outside any database transaction (observed at the fake's door, independently of the gateway's guard)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from app.clock import FrozenClock
from app.db import in_transaction
from app.outbox import OutboxEvent
from app.settings import Settings
from billing.stripe.flows import invoice_statement, reconcile, run_billing
from tests.api.stripe_app import CardWorld, card_order, pay, save_card
from tests.api.test_billback_invoices import _statement
from tests.factories import bearer
from tests.stripe_server import FakeStripe


def watch(fake: FakeStripe) -> list[tuple[str, str, bool]]:
    """(method, path, whether the calling task held an open transaction) of every request the fake answers."""
    seen: list[tuple[str, str, bool]] = []
    fake.observers.append(lambda method, path: seen.append((method, path, in_transaction())))
    return seen


async def test_card_routes_and_the_card_saved_webhook_call_stripe_outside_any_transaction(
        shop: CardWorld, sessionmaker: Any) -> None:
    seen = watch(shop.fake)
    h, user = bearer(shop.a.user_token), shop.a.user
    first = await save_card(shop)
    assert [r.status_code for r in await shop.deliver()] == [200]  # setup_intent.succeeded: made the default
    second = await save_card(shop, "pm_card_mastercard")
    await shop.deliver()
    listed = (await shop.client.get(f"/v1/payment-methods?user={user}", headers=h)).json()["data"]
    assert {c["id"]: c["is_default"] for c in listed} == {first: True, second: False}
    assert (await shop.client.post(f"/v1/payment-methods/{second}/default?user={user}", headers=h)).status_code == 200
    assert (await shop.client.delete(f"/v1/payment-methods/{first}?user={user}", headers=h)).status_code == 204
    listed = (await shop.client.get(f"/v1/payment-methods?user={user}", headers=h)).json()["data"]
    assert {c["id"]: c["is_default"] for c in listed} == {second: True}
    async with sessionmaker() as session:
        saved = (await session.scalars(select(OutboxEvent.payload).where(OutboxEvent.type == "payment_method.saved")
                                       .order_by(OutboxEvent.seq))).all()
    assert [(e["payment_method"], e["is_default"]) for e in saved] == [(first, True), (second, False)]
    paths = {path for _, path, _ in seen}
    assert {"/v1/customers", "/v1/setup_intents", f"/v1/payment_methods/{first}/detach"} <= paths
    assert [call for call in seen if call[2]] == []


async def test_paying_refunding_renewing_invoicing_and_reconciling_call_stripe_outside_any_transaction(
        shop: CardWorld, sessionmaker: Any, settings: Settings, clock: FrozenClock) -> None:
    seen = watch(shop.fake)
    gateway = shop.client.app.state.stripe
    await save_card(shop)
    order = await card_order(shop, "reports_basic")
    assert (await pay(shop, order["id"])).json()["state"] == "fulfilled"
    await shop.deliver()
    r = await shop.client.post(f"/v1/orders/{order['id']}/refund", json={"amount_minor": 100},
                               headers={**bearer(shop.a.admin_token), "Idempotency-Key": "refund-100"})
    assert r.status_code == 200 and r.json()["refunded_minor"] == 100
    clock.set(datetime(2026, 12, 1, 1, tzinfo=UTC))
    assert (await run_billing(sessionmaker, gateway, settings=settings, clock=clock)).renewed == 1
    account_id, statement_id = await _statement(sessionmaker)
    assert await invoice_statement(sessionmaker, gateway, account_id, statement_id, clock=clock) is not None
    clock.advance(timedelta(seconds=settings.reconcile_after_seconds + 1))
    assert (await reconcile(sessionmaker, gateway, settings=settings, clock=clock))["errors"] == 0
    paths = {path for _, path, _ in seen}
    assert {"/v1/payment_intents", "/v1/refunds", "/v1/invoiceitems", "/v1/invoices"} <= paths
    assert [call for call in seen if call[2]] == []
