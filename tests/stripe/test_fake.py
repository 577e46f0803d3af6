"""The local Stripe itself: wire format, checks against the SDK's types, webhook signing, loopback HTTP."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import stripe

from app.stripe_wiring import create_gateway
from billing.stripe.errors import InvalidWebhookSignature
from billing.stripe.gateway import StripeGateway
from stripe_fake.forms import FormError, parse_form
from stripe_fake.schema import undeclared_fields, unknown_params
from tests.stripe.test_payments import charge, charges
from tests.stripe_server import WEBHOOK_SECRET, FakeStripe, FaultKind, fake_settings, saved_card, serve


def test_bracket_encoded_forms_become_trees() -> None:
    tree = parse_form("amount=5&metadata[order_id]=o1&expand[0]=latest_charge&expand[1]=customer"
                      "&items[0][price]=p1&items[0][quantity]=2&period[start]=1&x[]=a&x[]=b")
    assert tree == {"amount": "5", "metadata": {"order_id": "o1"}, "expand": ["latest_charge", "customer"],
                    "items": [{"price": "p1", "quantity": "2"}], "period": {"start": "1"}, "x": ["a", "b"]}
    with pytest.raises(FormError):
        parse_form("a=1&a[b]=2")


def test_params_and_fields_are_checked_against_the_sdk() -> None:
    assert unknown_params("PaymentIntentCreateParams", {"amount": "1", "currency": "usd", "amuont": "1",
                                                        "metadata": {"any": "key"}}) == ["amuont"]
    assert unknown_params("CustomerUpdateParams", {"invoice_settings": {"default_pm": "x"}}) == [
        "invoice_settings[default_pm]"]
    assert unknown_params("CustomerCreateParams", {"api_key": "sk"}) == ["api_key"]  # an option, not a param
    assert undeclared_fields({"object": "payment_intent", "id": "pi_1", "next_action": {"type": "x", "oops": 1},
                              "paid": True}) == ["payment_intent.next_action.oops", "payment_intent.paid"]


async def test_unknown_parameters_are_rejected_like_stripe_does(gateway: StripeGateway) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await gateway.client.v1.customers.create_async({"emial": "x@y.z"})  # type: ignore[typeddict-unknown-key]
    assert caught.value.code == "parameter_unknown" and caught.value.param == "emial"


async def test_every_answer_fits_the_sdk_resource_classes(gateway: StripeGateway, fake: FakeStripe) -> None:
    customer, pm = await saved_card(gateway)
    await charge(gateway, customer, pm)
    for obj in [*fake.objects.values(), *fake.events]:
        public = {k: v for k, v in obj.items() if k != "days_until_due"}
        assert undeclared_fields(public) == [], obj["object"]


async def test_webhook_events_are_signed_with_the_sdk_helper_and_verify(gateway: StripeGateway,
                                                                      fake: FakeStripe) -> None:
    received: list[stripe.Event] = []

    async def target(payload: bytes, header: str) -> None:
        received.append(gateway.construct_event(payload, header))

    fake.add_webhook_target(target)
    await saved_card(gateway)
    assert await fake.deliver_events() == 1 and await fake.deliver_events() == 0
    event = received[0]
    assert event.type == "setup_intent.succeeded" and isinstance(event.data.object, stripe.SetupIntent)


def test_bad_or_old_signatures_do_not_verify(gateway: StripeGateway, fake: FakeStripe) -> None:
    payload = json.dumps({"id": "evt_1", "object": "event", "type": "x", "data": {"object": {}}})
    assert gateway.construct_event(payload.encode(), fake.sign(payload)).id == "evt_1"
    for header in (None, "", "t=1,v1=00", fake.sign(payload, timestamp=int(time.time()) - 3600),
                   fake.sign(payload + " ")):
        with pytest.raises(InvalidWebhookSignature):
            gateway.construct_event(payload.encode(), header)


async def _scenario(gateway: StripeGateway) -> list[Any]:
    """A flow whose observable answers must not depend on the transport."""
    out: list[Any] = []
    customer, pm = await saved_card(gateway)
    pi = await charge(gateway, customer, pm)
    out.append((type(pi).__name__, pi.status, pi.amount, (await gateway.list_cards(customer))[0].card.last4))
    for card in ("pm_card_chargeDeclinedInsufficientFunds", "pm_card_authenticationRequired"):
        try:
            await charge(gateway, customer, card, key=f"k:{card}")
        except Exception as exc:
            out.append((type(exc).__name__, exc.status, exc.detail))  # type: ignore[attr-defined]
    try:
        await charge(gateway, customer, pm, amount=1)
    except Exception as exc:
        out.append(type(exc).__name__)
    return out


async def test_the_fake_over_loopback_answers_the_sdk_like_in_process(tmp_path: Path) -> None:
    in_process = create_gateway(fake_settings(tmp_path), fake=FakeStripe(webhook_secret=WEBHOOK_SECRET))
    assert in_process is not None
    expected = await _scenario(in_process)
    async with serve(FakeStripe(webhook_secret=WEBHOOK_SECRET)) as server:
        over_http = create_gateway(fake_settings(tmp_path, stripe_secret_key="sk_test_loopback",
                                                 stripe_api_base=server.base_url))
        assert over_http is not None and over_http.fake is None  # the real HTTPX client, real sockets
        try:
            assert await _scenario(over_http) == expected
            assert all(r.path.startswith("/v1/") for r in server.fake.requests)
        finally:
            await over_http.close()
    assert expected[1] == ("CardDeclined", 402, "Your card was declined: insufficient funds.")
    assert expected[2][0] == "AuthenticationRequired" and expected[3] == "IdempotencyKeyReused"


async def test_a_loopback_timeout_is_retried_and_charges_once(tmp_path: Path) -> None:
    fake = FakeStripe(webhook_secret=WEBHOOK_SECRET)
    async with serve(fake, hang_seconds=1.0) as server:
        gateway = create_gateway(fake_settings(tmp_path, stripe_secret_key="sk_test_loopback",
                                               stripe_api_base=server.base_url, stripe_timeout_seconds=0.3))
        assert gateway is not None
        try:
            customer, pm = await saved_card(gateway)
            fake.inject(FaultKind.LOST_RESPONSE, path="/v1/payment_intents")
            fake.inject(FaultKind.TIMEOUT, path="/v1/payment_intents")
            assert (await charge(gateway, customer, pm)).status == "succeeded"
        finally:
            await gateway.close()
    assert len(charges(fake)) == 1
    keys = {r.idempotency_key for r in fake.requests if r.path == "/v1/payment_intents"}
    assert keys == {"order:o1:pi:1"}


async def test_faults_and_deliveries_are_driven_over_the_control_endpoints(tmp_path: Path) -> None:
    import httpx

    from billing.stripe.errors import PaymentProviderUnavailable
    from tests.support.receiver import Receiver

    fake = FakeStripe(webhook_secret=WEBHOOK_SECRET)
    async with serve(fake) as server, Receiver() as receiver, httpx.AsyncClient(base_url=server.base_url) as control:
        fake.add_webhook_target(receiver.url)
        gateway = create_gateway(fake_settings(tmp_path, stripe_secret_key="sk_test_loopback",
                                               stripe_api_base=server.base_url))
        assert gateway is not None
        try:
            fault = {"kind": "connection_error", "method": "POST", "path": "/v1/customers", "times": 3}
            assert (await control.post("/_control/faults", json=fault)).status_code == 204
            with pytest.raises(PaymentProviderUnavailable):  # the first try and both retries meet a broken connection
                await gateway.create_customer(key="user:u1:customer", metadata={})
            assert fake.of_kind("customer") == []
            lasting = {"kind": "server_error", "times": 9}
            assert (await control.post("/_control/faults", json=lasting)).status_code == 204
            assert (await control.delete("/_control/faults")).status_code == 204
            _, card = await saved_card(gateway, user="u1")
            assert (await control.post("/_control/deliver")).json() == {"delivered": 1}
            [delivery] = receiver.requests
            event = gateway.construct_event(delivery.body, delivery.headers["stripe-signature"])
            assert event.type == "setup_intent.succeeded" and event.data.object.payment_method == card
            assert (await control.post("/_control/faults", json={"kind": "meteor"})).status_code == 400
            assert (await control.get("/_control/nothing")).status_code == 404
        finally:
            await gateway.close()


async def test_the_fakes_objects_survive_a_restart_through_its_state_file(tmp_path: Path) -> None:
    before = FakeStripe(webhook_secret=WEBHOOK_SECRET)
    first = create_gateway(fake_settings(tmp_path), fake=before)
    assert first is not None
    customer, pm = await saved_card(first, "pm_card_chargeDeclinedInsufficientFunds")
    paid = await first.create_customer(key="user:u9:customer", metadata={})
    before.save(tmp_path / "stripe-fake.json")
    after = FakeStripe(webhook_secret=WEBHOOK_SECRET)
    after.restore(tmp_path / "stripe-fake.json")
    again = create_gateway(fake_settings(tmp_path), fake=after)
    assert again is not None
    assert [c.id for c in await again.list_cards(customer)] == [pm]
    assert (await again.create_customer(key="user:u9:customer", metadata={})).id == paid.id  # replayed by key
    with pytest.raises(Exception, match="insufficient funds"):  # the saved test card still behaves as itself
        await charge(again, customer, pm)
