"""Bill-back statements as Stripe invoices with automatic tax: the customer's tax identity, tax per line, reverse
charge shown; and a quote made where Stripe is not configured says tax was not computed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from app.accounts.models import Account
from app.asgi import create_app
from app.clock import FrozenClock
from app.settings import Settings
from billing.models import Statement
from billing.stripe.flows import invoice_statement
from tests.api.stripe_app import CardWorld
from tests.factories import apply_demo_catalog, bearer, make_account, make_key, make_tenant

_LINES = [  # two orders: one of two modules with different tax codes and behaviours, one of a module without code
    {"order_id": "ord_a", "currency": "EUR", "captured_minor": 1500, "refunded_minor": 0, "net_minor": 1500,
     "modules": ["reports_basic", "comments"],
     "parts": [{"module": "reports_basic", "amount_minor": 1000, "tax_code": "txcd_10103001"},
               {"module": "comments", "amount_minor": 500, "tax_behavior": "inclusive"}]},
    {"order_id": "ord_b", "currency": "EUR", "captured_minor": 400, "refunded_minor": 0, "net_minor": 400,
     "modules": ["usage"]},
]


async def _statement(world: CardWorld, sessionmaker: Any, **identity: Any) -> tuple[str, str]:
    await make_account(world.client, world.key, "acme", currency="EUR", **identity)
    async with sessionmaker() as s, s.begin():
        account = await s.scalar(select(Account).where(Account.external_id == "acme"))
        assert account is not None
        s.add(Statement(account_id=account.account_id, statement_id="stm_tax", period="2026-10", currency="EUR",
                        lines=_LINES, captured_minor=1900, refunded_minor=0, total_minor=1900, status="closed",
                        stripe_invoice_id=None, created_at=datetime(2026, 11, 1, tzinfo=UTC)))
    return account.account_id, "stm_tax"


async def _read(world: CardWorld) -> dict[str, Any]:
    r = await world.client.get("/v1/accounts/acme/statements", headers=bearer(world.key))
    assert r.status_code == 200, r.text
    return dict(r.json()["data"][0])


async def test_a_german_statement_is_invoiced_with_automatic_tax_and_lists_tax_per_line(
        shop: CardWorld, sessionmaker: Any, clock: FrozenClock) -> None:
    account_id, statement_id = await _statement(shop, sessionmaker, billing_address={"country": "DE"})
    await invoice_statement(sessionmaker, shop.client.app.state.stripe, account_id, statement_id, clock=clock)
    [invoice] = shop.fake.of_kind("invoice")
    assert invoice["automatic_tax"]["enabled"] and invoice["customer_address"]["country"] == "DE"
    items = {i["metadata"]["ref"]: i for i in shop.fake.of_kind("invoiceitem")}
    assert sorted(items) == ["ord_a:comments", "ord_a:reports_basic", "ord_b"]  # one item per part
    assert shop.fake.hidden[items["ord_a:reports_basic"]["id"]]["tax_code"] == "txcd_10103001"
    assert shop.fake.hidden[items["ord_a:comments"]["id"]]["tax_behavior"] == "inclusive"
    assert shop.fake.hidden[items["ord_b"]["id"]]["tax_code"] is None  # the vendor's default code at Stripe
    # 19 % on top of 1000 and 400; 500 already includes its 80
    assert invoice["total"] == 1900 + 190 + 76
    read = await _read(shop)
    assert [line["tax_minor"] for line in read["lines"]] == [190 + 80, 76]
    assert (read["tax_minor"], read["reverse_charge"]) == (190 + 80 + 76, False)


async def test_a_french_business_statement_is_reverse_charged_and_says_so(
        shop: CardWorld, sessionmaker: Any, clock: FrozenClock) -> None:
    account_id, statement_id = await _statement(
        shop, sessionmaker, billing_address={"country": "FR"}, tax_ids=[{"type": "eu_vat", "value": "FR40303265045"}])
    gateway = shop.client.app.state.stripe
    await invoice_statement(sessionmaker, gateway, account_id, statement_id, clock=clock)
    [invoice] = shop.fake.of_kind("invoice")
    assert invoice["customer_tax_ids"] == [{"type": "eu_vat", "value": "FR40303265045"}]
    assert {t["taxability_reason"] for t in invoice["total_taxes"]} == {"reverse_charge"}
    assert invoice["total"] == 1900
    read = await _read(shop)
    assert (read["tax_minor"], read["reverse_charge"]) == (0, True)
    assert [line["tax_minor"] for line in read["lines"]] == [0, 0]
    customer = shop.fake.of_kind("customer")[0]
    await invoice_statement(sessionmaker, gateway, account_id, statement_id, clock=clock)  # a re-run: nothing new
    assert len(shop.fake.hidden[customer["id"]]["tax_ids"]) == 1 and len(shop.fake.of_kind("invoice")) == 1


async def test_a_statement_of_an_account_without_address_is_invoiced_without_tax(
        shop: CardWorld, sessionmaker: Any, clock: FrozenClock) -> None:
    account_id, statement_id = await _statement(shop, sessionmaker)
    await invoice_statement(sessionmaker, shop.client.app.state.stripe, account_id, statement_id, clock=clock)
    [invoice] = shop.fake.of_kind("invoice")
    assert invoice["automatic_tax"]["enabled"] is False and invoice["total"] == 1900
    read = await _read(shop)
    assert read["tax_minor"] is None and read["lines"][0]["tax_minor"] is None


async def test_without_stripe_a_quote_says_tax_was_not_computed(settings: Settings, sessionmaker: Any,
                                                                 clock: FrozenClock) -> None:
    app = create_app(msgspec.structs.replace(settings, stripe_backend="off"), clock=clock)
    assert app.state.get("stripe") is None
    async with AsyncTestClient(app=app) as client:
        key = await make_key(sessionmaker, clock)
        await apply_demo_catalog(sessionmaker, clock)
        a = await make_tenant(client, key, "initech")
        await make_account(client, key, "initech", billing_address={"country": "DE"})
        q = await client.post("/v1/quotes", json={"user": a.user, "items": [{"module": "reports_basic"}]},
                              headers=bearer(a.user_token))
    assert q.status_code == 201, q.text
    tax = q.json()["tax"]
    assert tax["status"] == "not_computed" and "not configured" in tax["reason"]
    assert q.json()["gross_minor"] is None and q.json()["tax_minor"] is None and tax["breakdown"] == []


async def test_reconcile_records_a_tax_transaction_and_a_reversal_that_stripe_tax_did_not_answer(
        shop: CardWorld, sessionmaker: Any, clock: FrozenClock, settings: Settings) -> None:
    from billing.stripe.flows import reconcile
    from tests.api.stripe_app import idem_header, pay, save_card
    from tests.stripe_server import FaultKind

    await make_account(shop.client, shop.key, "acme", currency="EUR", billing_address={"country": "DE"})
    await save_card(shop)
    q = (await shop.client.post("/v1/quotes", json={"user": shop.a.user, "items": [{"module": "reports_basic"}]},
                                headers=bearer(shop.a.user_token))).json()
    o = (await shop.client.post("/v1/orders", json={"quote_id": q["id"]},
                                headers={**bearer(shop.a.user_token), **idem_header()})).json()
    shop.fake.inject(FaultKind.SERVER_ERROR, path="/v1/tax/transactions", times=6)  # every retry fails
    paid = (await pay(shop, o["id"])).json()
    assert paid["state"] == "fulfilled" and paid["tax_transaction"] is None  # paid and granted all the same
    r = await shop.client.post(f"/v1/orders/{o['id']}/refund", json={"amount_minor": 100},
                               headers={**bearer(shop.a.admin_token), "Idempotency-Key": "tax-rec-1"})
    assert r.status_code == 200 and r.json()["refunded_minor"] == 100  # no tax transaction yet: nothing reversed
    shop.fake.clear_faults()
    counts = await reconcile(sessionmaker, shop.client.app.state.stripe, settings=settings, clock=clock)
    assert (counts["tax_transactions"], counts["tax_reversals"]) == (1, 1)
    kinds = sorted(t["type"] for t in shop.fake.of_kind("tax.transaction"))
    assert kinds == ["reversal", "transaction"]
    again = await reconcile(sessionmaker, shop.client.app.state.stripe, settings=settings, clock=clock)
    assert (again["tax_transactions"], again["tax_reversals"]) == (0, 0)
    got = (await shop.client.get(f"/v1/orders/{o['id']}", headers=bearer(shop.a.user_token))).json()
    assert got["tax_transaction"] == next(t["id"] for t in shop.fake.of_kind("tax.transaction")
                                          if t["type"] == "transaction")
