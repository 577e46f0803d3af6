"""Tax through Stripe Tax (the local fake's rate table): quotes show net, tax by jurisdiction and rate, and gross;
card orders charge the gross and record the tax transaction; refunds reverse their share."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import select

from billing.models import Quote
from tests.api.stripe_app import CardWorld, allowed, idem_header, pay, save_card, succeeded_charges
from tests.api.test_auth import assert_problem
from tests.factories import bearer, make_account

_keys = itertools.count()


async def _bill_to(world: CardWorld, **fields: Any) -> dict[str, Any]:
    """Set acme's tax identity (and currency) through the accounts API."""
    return await make_account(world.client, world.key, "acme", **{"currency": "EUR", **fields})


async def _quote(world: CardWorld, *modules: str) -> dict[str, Any]:
    q = await world.client.post("/v1/quotes", json={"user": world.a.user, "items": [{"module": m} for m in modules]},
                                headers=bearer(world.a.user_token))
    assert q.status_code == 201, q.text
    return dict(q.json())


async def _order(world: CardWorld, quote: dict[str, Any]) -> dict[str, Any]:
    o = await world.client.post("/v1/orders", json={"quote_id": quote["id"]},
                                headers={**bearer(world.a.user_token), **idem_header()})
    assert o.status_code == 201, o.text
    return dict(o.json())


def _calculations(world: CardWorld) -> list[dict[str, Any]]:
    return world.fake.of_kind("tax.calculation")


async def test_a_german_consumer_pays_19_percent_on_the_card_and_the_tax_transaction_is_recorded(
        shop: CardWorld) -> None:
    await _bill_to(shop, billing_address={"country": "DE", "postal_code": "10115", "city": "Berlin"})
    await save_card(shop)
    q = await _quote(shop, "reports_basic")
    net = q["total_minor"]
    assert q["tax"]["status"] == "computed" and q["tax"]["calculation_id"] == _calculations(shop)[0]["id"]
    [germany] = q["tax"]["breakdown"]
    assert (germany["jurisdiction"], germany["rate"], germany["taxability"]) == ("Germany", "19.0", "standard_rated")
    tax = (net * 19 + 50) // 100  # half up, on the line after discount
    assert (q["net_minor"], q["tax_minor"], q["gross_minor"]) == (net, tax, net + tax)
    assert germany["taxable_minor"] == net and germany["tax_minor"] == tax
    assert q["lines"][0]["tax_minor"] == tax and q["lines"][0]["tax_code"] == "txcd_10103001"
    o = await _order(shop, q)
    assert (o["total_minor"], o["tax_minor"]) == (net + tax, tax)
    paid = (await pay(shop, o["id"])).json()
    assert paid["state"] == "fulfilled" and await allowed(shop)
    [charge] = succeeded_charges(shop.fake)
    assert charge["amount"] == net + tax  # the card is charged the gross
    [tx] = shop.fake.of_kind("tax.transaction")
    assert tx["reference"] == f"order:{o['id']}" and paid["tax_transaction"] == tx["id"]
    assert shop.fake.hidden[tx["id"]]["line_items"][0]["amount_tax"] == tax
    calc_request = next(r for r in shop.fake.requests if r.path == "/v1/tax/calculations")
    assert "tax_ids" not in calc_request.params["customer_details"]  # a consumer: no business tax id sent


async def test_a_french_business_with_a_vat_id_is_reverse_charged_at_0_percent(shop: CardWorld) -> None:
    await _bill_to(shop, billing_address={"country": "FR", "postal_code": "75002", "city": "Paris"},
                   tax_ids=[{"type": "eu_vat", "value": "fr 40 303265045"}])
    q = await _quote(shop, "reports_basic")
    assert q["tax"]["reverse_charge"] is True and q["tax_minor"] == 0
    assert q["gross_minor"] == q["net_minor"] == q["total_minor"]
    [france] = q["tax"]["breakdown"]
    assert (france["jurisdiction"], france["taxability"], france["tax_minor"]) == ("France", "reverse_charge", 0)
    calc_request = next(r for r in shop.fake.requests if r.path == "/v1/tax/calculations")
    assert calc_request.params["customer_details"]["tax_ids"] == [{"type": "eu_vat", "value": "FR40303265045"}]


async def test_a_customer_in_a_us_state_without_sales_tax_pays_none_and_one_in_new_york_does(
        shop: CardWorld) -> None:
    await _bill_to(shop, currency="USD", billing_address={"country": "US", "state": "OR", "postal_code": "97201"})
    oregon = await _quote(shop, "reports_basic")
    assert oregon["tax_minor"] == 0 and oregon["tax"]["breakdown"][0]["taxability"] == "not_subject_to_tax"
    assert oregon["tax"]["breakdown"][0]["jurisdiction"] == "Oregon"
    await _bill_to(shop, currency="USD", billing_address={"country": "US", "state": "NY", "postal_code": "10001"})
    new_york = await _quote(shop, "reports_basic")
    assert new_york["tax"]["breakdown"][0]["rate"] == "4.0" and new_york["tax_minor"] > 0


async def test_an_exempt_account_pays_no_tax(shop: CardWorld) -> None:
    await _bill_to(shop, billing_address={"country": "DE"}, tax_status="exempt")
    q = await _quote(shop, "reports_basic")
    assert q["tax"]["exempt"] is True and q["tax_minor"] == 0 and q["gross_minor"] == q["total_minor"]
    assert q["tax"]["breakdown"][0]["taxability"] == "customer_exempt"
    calc_request = next(r for r in shop.fake.requests if r.path == "/v1/tax/calculations")
    assert calc_request.params["customer_details"]["taxability_override"] == "customer_exempt"


async def test_a_users_billing_country_taxes_the_card_purchase_there(shop: CardWorld) -> None:
    await _bill_to(shop, billing_address={"country": "FR"}, tax_ids=[{"type": "eu_vat", "value": "FR40303265045"}])
    r = await shop.client.post("/v1/accounts/acme/users", json={"external_id": shop.a.user, "roles": ["analyst"],
                                                                "billing_country": "NL"}, headers=bearer(shop.key))
    assert r.status_code == 200 and r.json()["billing_country"] == "NL"
    q = await _quote(shop, "reports_basic")
    assert q["decision"]["route"] == "card"
    [nl] = q["tax"]["breakdown"]
    assert (nl["jurisdiction"], nl["rate"]) == ("Netherlands", "21.0") and not q["tax"]["reverse_charge"]


async def test_refunds_reverse_the_tax_in_proportion_and_the_rest_in_full(shop: CardWorld) -> None:
    await _bill_to(shop, billing_address={"country": "DE"})
    await save_card(shop)
    o = await _order(shop, await _quote(shop, "reports_basic"))
    assert (await pay(shop, o["id"])).json()["state"] == "fulfilled"
    gross, tax = o["total_minor"], o["tax_minor"]

    async def refund(**body: Any) -> dict[str, Any]:
        r = await shop.client.post(f"/v1/orders/{o['id']}/refund", json=body,
                                   headers={**bearer(shop.a.admin_token), "Idempotency-Key": f"tx-{next(_keys)}"})
        assert r.status_code == 200, r.text
        return dict(r.json())

    await refund(amount_minor=100)
    [original] = [t for t in shop.fake.of_kind("tax.transaction") if t["type"] == "transaction"]
    [first] = [t for t in shop.fake.of_kind("tax.transaction") if t["type"] == "reversal"]
    back = shop.fake.hidden[first["id"]]["line_items"][0]
    assert -back["amount"] - back["amount_tax"] == 100  # the refund, tax included
    assert -back["amount_tax"] == (tax * 100 * 2 + gross) // (2 * gross)  # its share of the tax, half up
    rest = await refund()
    assert rest["state"] == "refunded" and rest["refunded_minor"] == gross
    reversals = [t for t in shop.fake.of_kind("tax.transaction") if t["type"] == "reversal"]
    assert len(reversals) == 2 and all(t["reversal"]["original_transaction"] == original["id"] for t in reversals)
    returned_tax = -sum(ln["amount_tax"] for t in reversals for ln in shop.fake.hidden[t["id"]]["line_items"])
    assert returned_tax == tax  # all the tax went back, never more


async def test_a_quote_without_a_billing_address_says_tax_was_not_computed_and_asks_stripe_nothing(
        shop: CardWorld, sessionmaker: Any) -> None:
    q = await _quote(shop, "reports_basic")
    assert q["tax"]["status"] == "not_computed" and "billing address" in q["tax"]["reason"]
    assert (q["net_minor"], q["tax_minor"], q["gross_minor"]) == (None, None, None)
    assert _calculations(shop) == []
    async with sessionmaker() as s:
        row = await s.scalar(select(Quote).where(Quote.quote_id == q["id"]))
        assert row is not None and row.tax_calculation_id is None and row.tax is not None


async def test_malformed_tax_ids_are_refused_naming_each_and_nothing_changes(shop: CardWorld) -> None:
    r = await shop.client.post("/v1/accounts", json={
        "external_id": "acme", "name": "Acme", "tax_ids": [
            {"type": "eu_vat", "value": "DE12345678"}, {"type": "gb_vat", "value": "GB123456789"},
            {"type": "xx_tin", "value": "123"}]}, headers=bearer(shop.key))
    body = assert_problem(r, 422, "unprocessable")
    assert [e["field"] for e in body["errors"]] == ["tax_ids[0].value", "tax_ids[2].type"]
    got = (await shop.client.get("/v1/accounts/acme", headers=bearer(shop.key))).json()
    assert got["tax_ids"] == [] and got["tax_status"] == "taxable"
    ok = await _bill_to(shop, billing_address={"country": "GB"}, tax_ids=[{"type": "gb_vat", "value": "gb 123456789"}])
    assert ok["tax_ids"] == [{"type": "gb_vat", "value": "GB123456789"}]
    r = await shop.client.post("/v1/accounts", json={"external_id": "acme", "name": "Acme", "billing_address": {
        "country": "US", "postal_code": "10001"}}, headers=bearer(shop.key))
    assert [e["field"] for e in assert_problem(r, 422, "unprocessable")["errors"]] == ["billing_address.state"]
    again = await make_account(shop.client, shop.key, "acme")  # omitted: the tax identity stays
    assert again["tax_ids"] == ok["tax_ids"] and again["billing_address"]["country"] == "GB"


async def test_a_payment_completed_after_3d_secure_records_its_tax_transaction_from_the_webhook(
        shop: CardWorld) -> None:
    await _bill_to(shop, billing_address={"country": "DE"})
    card = await save_card(shop, "pm_card_authenticationRequired")
    q = await _quote(shop, "reports_basic")
    o = await _order(shop, q)
    pi = (await pay(shop, o["id"], card=card)).json()["payment"]["payment_intent"]
    assert shop.fake.of_kind("tax.transaction") == []  # nothing paid yet, nothing recorded
    assert shop.fake.objects[pi]["metadata"]["commerce_tax_calculation"] == q["tax"]["calculation_id"]
    gateway = shop.client.app.state.stripe
    await gateway.client.v1.payment_intents.confirm_async(pi, {"payment_method": card})
    await gateway.client.raw_request_async("post", f"/v1/_fake/authenticate/{pi}", success="true")
    await shop.deliver()
    got = (await shop.client.get(f"/v1/orders/{o['id']}", headers=bearer(shop.a.user_token))).json()
    [tx] = shop.fake.of_kind("tax.transaction")
    assert got["state"] == "fulfilled" and got["tax_transaction"] == tx["id"]
    assert shop.fake.objects[pi]["amount"] == o["total_minor"] == q["gross_minor"]


async def test_when_stripe_tax_is_down_a_budget_quote_says_so_and_a_card_quote_is_refused(shop: CardWorld) -> None:
    from tests.stripe_server import FaultKind

    await _bill_to(shop, billing_address={"country": "DE"})
    shop.fake.inject(FaultKind.SERVER_ERROR, path="/v1/tax/calculations", times=9)  # every retry fails
    assert_problem(await shop.client.post("/v1/quotes", json={"user": shop.a.user, "items": [
        {"module": "reports_basic"}]}, headers=bearer(shop.a.user_token)), 503, "payment_provider_unavailable")
    r = await shop.client.post("/v1/accounts/acme/budgets", json={"name": "Main", "currency": "EUR",
                               "amount_minor": 100_000}, headers=bearer(shop.key))
    assert r.status_code == 201, r.text
    q = await _quote(shop, "reports_basic")
    assert q["decision"]["route"] == "budget" and q["tax"]["status"] == "not_computed"
    assert "budget" in q["tax"]["reason"] and q["gross_minor"] is None
