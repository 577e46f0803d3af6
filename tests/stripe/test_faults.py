"""Timeouts, 5xx, connection errors and lost answers: retries reuse our key, so nothing is charged twice."""

from __future__ import annotations

import pytest

from billing.stripe.errors import PaymentProviderUnavailable
from billing.stripe.gateway import StripeGateway
from tests.stripe.test_payments import charge, charges
from tests.stripe_server import FakeStripe, FaultKind, saved_card


def attempts(fake: FakeStripe) -> list[tuple[str | None, bool, int]]:
    return [(r.idempotency_key, r.replayed, r.status) for r in fake.requests if r.path == "/v1/payment_intents"]


async def test_a_timeout_is_retried_with_the_same_key_and_charges_once(gateway: StripeGateway,
                                                                     fake: FakeStripe) -> None:
    customer, pm = await saved_card(gateway)
    fake.inject(FaultKind.TIMEOUT, method="POST", path="/v1/payment_intents")
    pi = await charge(gateway, customer, pm)
    assert pi.status == "succeeded" and len(charges(fake)) == 1
    assert attempts(fake) == [("order:o1:pi:1", False, 0), ("order:o1:pi:1", False, 200)]


@pytest.mark.parametrize("kind", [FaultKind.SERVER_ERROR, FaultKind.CONNECTION_ERROR])
async def test_transient_failures_are_retried(gateway: StripeGateway, fake: FakeStripe, kind: FaultKind) -> None:
    customer, pm = await saved_card(gateway)
    fake.inject(kind, path="/v1/payment_intents", times=2)
    assert (await charge(gateway, customer, pm)).status == "succeeded"
    assert len(charges(fake)) == 1 and len(attempts(fake)) == 3


@pytest.mark.parametrize("kind", [FaultKind.TIMEOUT, FaultKind.SERVER_ERROR, FaultKind.CONNECTION_ERROR])
async def test_a_lasting_outage_is_a_503_and_charges_nothing(gateway: StripeGateway, fake: FakeStripe,
                                                            kind: FaultKind) -> None:
    customer, pm = await saved_card(gateway)
    fake.inject(kind, path="/v1/payment_intents", times=3)  # the first try and both SDK retries
    with pytest.raises(PaymentProviderUnavailable) as caught:
        await charge(gateway, customer, pm)
    assert caught.value.status == 503 and charges(fake) == []


async def test_charged_but_the_answer_was_lost_then_our_retry_gets_the_same_payment(
        gateway: StripeGateway, fake: FakeStripe) -> None:
    customer, pm = await saved_card(gateway)
    fake.inject(FaultKind.LOST_RESPONSE, path="/v1/payment_intents", times=3)
    with pytest.raises(PaymentProviderUnavailable):
        await charge(gateway, customer, pm)  # Stripe charged; we never heard back (even after SDK retries)
    assert len(charges(fake)) == 1
    pi = await charge(gateway, customer, pm)  # e.g. reconcile or the user's retry, with the order's key
    assert pi.status == "succeeded" and len(charges(fake)) == 1
    assert [replayed for _, replayed, _ in attempts(fake)] == [False, True, True, True]


async def test_a_lost_decline_is_replayed_as_the_same_decline(gateway: StripeGateway, fake: FakeStripe) -> None:
    from billing.stripe.errors import CardDeclined

    customer = (await gateway.create_customer(key="user:u5:customer", metadata={})).id
    fake.inject(FaultKind.LOST_RESPONSE, path="/v1/payment_intents")
    with pytest.raises(CardDeclined):
        await charge(gateway, customer, "pm_card_chargeDeclinedInsufficientFunds")
    assert len(fake.of_kind("payment_intent")) == 1 and len(charges(fake, "failed")) == 1


async def test_faults_match_method_and_path_only(gateway: StripeGateway, fake: FakeStripe) -> None:
    fake.inject(FaultKind.SERVER_ERROR, method="GET", path="/v1/invoices", times=5)
    customer = await gateway.create_customer(key="user:u6:customer", metadata={})
    assert customer.id.startswith("cus_")
    fake.clear_faults()
    assert (await gateway.get_customer(customer.id)).id == customer.id
