"""The gateway against the local Stripe through the real SDK: payments, 3-D Secure, declines, refunds."""

from __future__ import annotations

import pytest
import stripe

from billing.stripe.errors import AuthenticationRequired, CardDeclined, IdempotencyKeyReused, PaymentProviderRejected
from billing.stripe.gateway import StripeGateway, idem
from tests.stripe_server import FakeStripe, saved_card


def charges(fake: FakeStripe, status: str = "succeeded") -> list[dict[str, object]]:
    return [c for c in fake.of_kind("charge") if c["status"] == status]


async def charge(gateway: StripeGateway, customer: str, pm: str, *, key: str = "order:o1:pi:1",
                 amount: int = 4900) -> stripe.PaymentIntent:
    return await gateway.charge_off_session(amount_minor=amount, currency="USD", customer_id=customer,
                                            payment_method_id=pm, metadata={"order_id": "o1"}, key=key)


async def test_off_session_payment_with_a_saved_card_succeeds(gateway: StripeGateway, fake: FakeStripe) -> None:
    customer, pm = await saved_card(gateway)
    pi = await charge(gateway, customer, pm)
    assert isinstance(pi, stripe.PaymentIntent)
    assert (pi.status, pi.amount, pi.currency, pi.metadata["order_id"]) == ("succeeded", 4900, "usd", "o1")
    assert len(charges(fake)) == 1
    assert [e["type"] for e in fake.events][-1] == "payment_intent.succeeded"
    sent = [r for r in fake.requests if r.path == "/v1/payment_intents"]
    assert sent[0].idempotency_key == "order:o1:pi:1" and sent[0].params["off_session"] == "true"
    assert (await gateway.get_payment_intent(pi.id)).status == "succeeded"


async def test_off_session_3ds_raises_authentication_required_with_the_client_secret(
        gateway: StripeGateway, fake: FakeStripe) -> None:
    customer, pm = await saved_card(gateway, "pm_card_authenticationRequired")
    with pytest.raises(AuthenticationRequired) as caught:
        await charge(gateway, customer, pm)
    pi_id = caught.value.extensions["payment_intent"]
    assert caught.value.status == 402 and caught.value.extensions["client_secret"].startswith(pi_id + "_secret_")
    assert (await gateway.get_payment_intent(pi_id)).status == "requires_payment_method"
    assert charges(fake) == []
    assert fake.events[-1]["type"] == "payment_intent.payment_failed"


async def test_on_session_3ds_requires_action_then_completes_when_the_customer_authenticates(
        gateway: StripeGateway, fake: FakeStripe) -> None:
    customer, pm = await saved_card(gateway, "pm_card_authenticationRequired")
    with pytest.raises(AuthenticationRequired) as caught:
        await charge(gateway, customer, pm)
    pi_id = caught.value.extensions["payment_intent"]
    # the widget confirms on-session with the client secret (Stripe.js); the bank then asks for 3-D Secure
    pi = await gateway.client.v1.payment_intents.confirm_async(pi_id, {"payment_method": pm})
    assert pi.status == "requires_action" and pi.next_action is not None
    assert fake.events[-1]["type"] == "payment_intent.requires_action"
    await gateway.client.raw_request_async("post", f"/v1/_fake/authenticate/{pi_id}", success="true")
    assert (await gateway.get_payment_intent(pi_id)).status == "succeeded"
    assert fake.events[-1]["type"] == "payment_intent.succeeded" and len(charges(fake)) == 1


async def test_failed_authentication_leaves_the_payment_unpaid(gateway: StripeGateway, fake: FakeStripe) -> None:
    customer, pm = await saved_card(gateway, "pm_card_authenticationRequired")
    with pytest.raises(AuthenticationRequired) as caught:
        await charge(gateway, customer, pm)
    pi_id = caught.value.extensions["payment_intent"]
    await gateway.client.v1.payment_intents.confirm_async(pi_id, {"payment_method": pm})
    await gateway.client.raw_request_async("post", f"/v1/_fake/authenticate/{pi_id}", success="false")
    assert (await gateway.get_payment_intent(pi_id)).status == "requires_payment_method"
    assert charges(fake) == [] and fake.events[-1]["type"] == "payment_intent.payment_failed"


@pytest.mark.parametrize(("card", "decline_code", "message"), [
    ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds", "Your card was declined: insufficient funds."),
    ("pm_card_chargeCustomerFail", "generic_decline", "Your card was declined."),
    ("pm_card_chargeDeclined", "generic_decline", "Your card was declined."),
])
async def test_declines_become_user_safe_messages(gateway: StripeGateway, fake: FakeStripe, card: str,
                                                  decline_code: str, message: str) -> None:
    customer = (await gateway.create_customer(key="user:u9:customer", metadata={})).id
    with pytest.raises(CardDeclined) as caught:
        await charge(gateway, customer, card)  # a test token straight on the PaymentIntent
    assert caught.value.status == 402 and caught.value.detail == message
    assert caught.value.extensions["decline_code"] == decline_code
    assert caught.value.extensions["payment_intent"].startswith("pi_")
    assert charges(fake) == [] and len(charges(fake, "failed")) == 1


async def test_a_card_declined_at_setup_is_never_saved(gateway: StripeGateway, fake: FakeStripe) -> None:
    customer = await gateway.create_customer(key="user:u2:customer", metadata={})
    seti = await gateway.create_setup_intent(customer_id=customer.id, key="user:u2:setup:1", metadata={})
    with pytest.raises(stripe.CardError) as caught:
        await gateway.client.v1.setup_intents.confirm_async(seti.id, {"payment_method": "pm_card_chargeDeclined"})
    assert caught.value.code == "card_declined"
    assert await gateway.list_cards(customer.id) == []


async def test_same_key_with_other_parameters_is_an_idempotency_error(gateway: StripeGateway) -> None:
    customer, pm = await saved_card(gateway)
    await charge(gateway, customer, pm, amount=4900)
    with pytest.raises(IdempotencyKeyReused):
        await charge(gateway, customer, pm, amount=5900)
    with pytest.raises(stripe.IdempotencyError):  # what the SDK itself raises
        await gateway.client.v1.payment_intents.create_async(
            {"amount": 1, "currency": "usd"}, {"idempotency_key": "order:o1:pi:1"})


async def test_same_key_and_parameters_replay_the_first_answer(gateway: StripeGateway, fake: FakeStripe) -> None:
    customer, pm = await saved_card(gateway)
    first = await charge(gateway, customer, pm)
    again = await charge(gateway, customer, pm)
    assert again.id == first.id and len(charges(fake)) == 1
    assert [r.replayed for r in fake.requests if r.path == "/v1/payment_intents"] == [False, True]


async def test_a_replayed_decline_is_the_same_decline(gateway: StripeGateway, fake: FakeStripe) -> None:
    customer = (await gateway.create_customer(key="user:u3:customer", metadata={})).id
    for _ in range(2):
        with pytest.raises(CardDeclined):
            await charge(gateway, customer, "pm_card_chargeDeclinedInsufficientFunds")
    assert len(fake.of_kind("payment_intent")) == 1


async def test_partial_then_full_refunds_add_up_on_the_charge(gateway: StripeGateway, fake: FakeStripe) -> None:
    customer, pm = await saved_card(gateway)
    pi = await charge(gateway, customer, pm, amount=5000)
    first = await gateway.refund(payment_intent_id=pi.id, amount_minor=2000, key=idem("refund", "r1"))
    rest = await gateway.refund(payment_intent_id=pi.id, key=idem("refund", "r2"), reason="requested_by_customer")
    assert (first.amount, rest.amount, rest.status) == (2000, 3000, "succeeded")
    refunded = [e["data"]["object"] for e in fake.events_of("charge.refunded")]
    assert [(c["amount_refunded"], c["refunded"]) for c in refunded] == [(2000, False), (5000, True)]
    with pytest.raises(PaymentProviderRejected):
        await gateway.refund(payment_intent_id=pi.id, amount_minor=1, key=idem("refund", "r3"))


async def test_disputes_open_and_close_with_events(gateway: StripeGateway, fake: FakeStripe) -> None:
    customer, pm = await saved_card(gateway)
    pi = await charge(gateway, customer, pm)
    raw = await gateway.client.raw_request_async("post", f"/v1/_fake/charges/{pi.latest_charge}/dispute")
    dispute = gateway.client.deserialize(raw, api_mode="V1")
    assert isinstance(dispute, stripe.Dispute) and dispute.status == "needs_response"
    await gateway.client.raw_request_async("post", f"/v1/_fake/disputes/{dispute.id}/close", status="lost")
    assert (await gateway.get_dispute(dispute.id)).status == "lost"
    assert [e["type"] for e in fake.events][-2:] == ["charge.dispute.created", "charge.dispute.closed"]
