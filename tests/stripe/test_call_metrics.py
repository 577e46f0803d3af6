"""Stripe calls are counted by outcome in /metrics: ``ok`` or the SDK's error class."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from billing.stripe.errors import CardDeclined
from billing.stripe.gateway import StripeGateway


def calls(outcome: str) -> float:
    return REGISTRY.get_sample_value("commerce_stripe_calls_total", {"outcome": outcome}) or 0.0


async def test_stripe_calls_are_counted_by_outcome(gateway: StripeGateway) -> None:
    ok, declined = calls("ok"), calls("CardError")
    customer = await gateway.create_customer(key="user:u1:customer", metadata={})
    assert (calls("ok") - ok, calls("CardError") - declined) == (1, 0)
    with pytest.raises(CardDeclined):  # a declining test card straight on the PaymentIntent
        await gateway.charge_off_session(amount_minor=4900, currency="USD", customer_id=customer.id,
                                         payment_method_id="pm_card_chargeDeclined", metadata={"order_id": "o1"},
                                         key="order:o1:pi:1")
    assert (calls("ok") - ok, calls("CardError") - declined) == (1, 1)
