"""The fake answers a browser as Stripe answers Stripe.js: CORS, the publishable key on client-side endpoints
only, the intent's client secret, typed test card numbers, and a 3-D Secure challenge page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.stripe_server import WEBHOOK_SECRET, FakeStripe, FakeStripeServer, serve

PK = "pk_test_browser"
SK = {"Authorization": "Bearer sk_test_backend"}


def _form(**fields: str) -> dict[str, str]:
    return {"key": PK, **fields}


async def _customer_and_setup(http: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    customer = (await http.post("/v1/customers", headers=SK, data={"email": "a@example.com"})).json()["id"]
    seti = (await http.post("/v1/setup_intents", headers=SK, data={"customer": customer})).json()
    return customer, seti


async def _typed_card(http: httpx.AsyncClient, number: str) -> httpx.Response:
    return await http.post("/v1/payment_methods", data=_form(**{
        "type": "card", "card[number]": number, "card[exp_month]": "12", "card[exp_year]": "34", "card[cvc]": "123"}))


@pytest.fixture
async def server() -> AsyncIterator[FakeStripeServer]:
    async with serve(FakeStripe(webhook_secret=WEBHOOK_SECRET)) as running:
        yield running


async def test_a_browser_gets_cors_answers_from_any_origin(server: FakeStripeServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        pre = await http.options("/v1/setup_intents/seti_x/confirm", headers={
            "Origin": "http://127.0.0.1:9", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == "*"
        assert "Authorization" in pre.headers["access-control-allow-headers"]
        answer = await _typed_card(http, "4242424242424242")
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in answer.headers


async def test_a_typed_test_card_saves_through_the_setup_intent_with_its_client_secret(
        server: FakeStripeServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        customer, seti = await _customer_and_setup(http)
        pm = (await _typed_card(http, "4242 4242 4242 4242")).json()
        assert (pm["card"]["last4"], pm["card"]["exp_year"], pm["customer"]) == ("4242", 2034, None)
        done = await http.post(f"/v1/setup_intents/{seti['id']}/confirm", data=_form(
            client_secret=seti["client_secret"], payment_method=pm["id"]))
        assert done.status_code == 200 and done.json()["status"] == "succeeded"
        listed = (await http.get("/v1/payment_methods", headers=SK, params={"customer": customer})).json()
        assert [p["id"] for p in listed["data"]] == [pm["id"]]


async def test_a_publishable_key_needs_the_client_secret_and_reaches_no_secret_endpoint(
        server: FakeStripeServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        customer, seti = await _customer_and_setup(http)
        pm = (await _typed_card(http, "4242424242424242")).json()
        for secret in ("", seti["client_secret"] + "x"):
            wrong = await http.post(f"/v1/setup_intents/{seti['id']}/confirm", data=_form(
                client_secret=secret, payment_method=pm["id"]))
            assert wrong.status_code == 404 and wrong.json()["error"]["code"] == "resource_missing"
        for method, path in (("POST", "/v1/customers"), ("GET", f"/v1/customers/{customer}"),
                             ("POST", "/v1/refunds"), ("GET", "/v1/payment_methods")):
            refused = await http.request(method, path, **({"data": _form()} if method == "POST" else
                                                          {"params": _form(customer=customer)}))
            assert refused.status_code == 401 and "publishable" in refused.json()["error"]["message"]
        untouched = (await http.get(f"/v1/setup_intents/{seti['id']}", headers=SK)).json()
        assert untouched["status"] == "requires_payment_method"
        nobody = await http.post("/v1/payment_methods", data={"type": "card"})
        assert nobody.status_code == 401


@pytest.mark.parametrize(("number", "code"), [("4242424242424241", "incorrect_number"),
                                              ("4111111111111111", "card_declined")])
async def test_a_wrong_or_real_card_number_is_refused_like_stripe_test_mode(
        server: FakeStripeServer, number: str, code: str) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        r = await _typed_card(http, number)
        assert r.status_code == 402 and r.json()["error"]["code"] == code
        assert not server.fake.of_kind("payment_method")


async def test_3ds_challenge_page_completes_the_payment_and_tells_the_framing_page(server: FakeStripeServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        customer, _ = await _customer_and_setup(http)
        pm = (await _typed_card(http, "4000002760003184")).json()
        pi = (await http.post("/v1/payment_intents", headers=SK, data={
            "amount": "2900", "currency": "usd", "customer": customer})).json()
        assert pm["card"]["last4"] == "3184"
        waiting = (await http.post(f"/v1/payment_intents/{pi['id']}/confirm", data=_form(
            client_secret=pi["client_secret"], payment_method=pm["id"]))).json()
        assert waiting["status"] == "requires_action"
        url = waiting["next_action"]["use_stripe_sdk"]["stripe_js"]
        assert url.startswith(f"{server.base_url}/_fake/3ds/{pi['id']}?client_secret=")

        assert (await http.get(f"/_fake/3ds/{pi['id']}", params={"client_secret": "nope"})).status_code == 404
        page = await http.get(url)
        assert page.status_code == 200 and "29.00 USD" in page.text and "Complete authentication" in page.text
        secret = re.search(r'name="client_secret" value="([^"]+)"', page.text)
        assert secret is not None and secret.group(1) == pi["client_secret"]
        answer = await http.post(f"/_fake/3ds/{pi['id']}", data={"client_secret": secret.group(1), "success": "true"})
        assert answer.status_code == 200 and "stripe-fake:3ds-complete" in answer.text
        done = (await http.get(f"/v1/payment_intents/{pi['id']}", params=_form(
            client_secret=pi["client_secret"]))).json()
        assert done["status"] == "succeeded"
        assert [e["type"] for e in server.fake.events][-1] == "payment_intent.succeeded"
        again = await http.get(url)
        assert again.status_code == 409  # nothing left to confirm


async def test_failing_the_challenge_leaves_the_setup_unsaved(server: FakeStripeServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        customer, seti = await _customer_and_setup(http)
        pm = (await _typed_card(http, "4000002760003184")).json()
        waiting = (await http.post(f"/v1/setup_intents/{seti['id']}/confirm", data=_form(
            client_secret=seti["client_secret"], payment_method=pm["id"]))).json()
        assert waiting["status"] == "requires_action"
        await http.post(f"/_fake/3ds/{seti['id']}", data={"client_secret": seti["client_secret"], "success": "false"})
        after = (await http.get(f"/v1/setup_intents/{seti['id']}", headers=SK)).json()
        assert after["status"] == "requires_payment_method"
        assert after["last_setup_error"]["code"] == "setup_intent_authentication_failure"
        listed = (await http.get("/v1/payment_methods", headers=SK, params={"customer": customer})).json()
        assert listed["data"] == []
