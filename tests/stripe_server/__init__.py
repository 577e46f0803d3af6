"""The local Stripe the SDK talks to in tests: the top-level stripe_fake tool, with test helpers."""

from __future__ import annotations

from typing import Any

import stripe

from billing.stripe.gateway import StripeGateway
from stripe_fake import FakeHTTPClient, FakeStripe, FakeStripeServer, FaultKind, serve

__all__ = [
    "WEBHOOK_SECRET",
    "FakeHTTPClient",
    "FakeStripe",
    "FakeStripeServer",
    "FaultKind",
    "confirm_setup",
    "fake_settings",
    "saved_card",
    "sdk_client",
    "serve",
    "widget_saves_card",
]

WEBHOOK_SECRET = "whsec_test_" + "w" * 24


def sdk_client(fake: FakeStripe, *, retries: int = 2) -> stripe.StripeClient:
    """A real StripeClient answering from ``fake`` in-process."""
    return stripe.StripeClient("sk_test_fake", http_client=FakeHTTPClient(fake), max_network_retries=retries)


async def confirm_setup(gateway: StripeGateway, setup_intent: str, card: str = "pm_card_visa") -> stripe.SetupIntent:
    """What Stripe.js does in the widget: confirm the SetupIntent with a card (a test token here)."""
    return await gateway.client.v1.setup_intents.confirm_async(setup_intent, {"payment_method": card})


async def widget_saves_card(client: Any, headers: dict[str, str], user: str, card: str = "pm_card_visa") -> str:
    """Run card setup through our API and confirm it as the widget would; returns the saved card's id."""
    r = await client.post(f"/v1/payment-methods/setup?user={user}", headers=headers)
    assert r.status_code == 201, r.text
    seti = await confirm_setup(client.app.state.stripe, r.json()["setup_intent"], card)
    assert isinstance(seti.payment_method, str)
    return seti.payment_method


def fake_settings(tmp_path: Any, **overrides: Any) -> Any:
    """Settings for a gateway on the fake (no database needed)."""
    from app.settings import load_settings

    return load_settings({}, env="test", data_dir=tmp_path, token_secret="t" * 40,
                         stripe_webhook_secret=WEBHOOK_SECRET, **overrides)


async def saved_card(gateway: StripeGateway, card: str = "pm_card_visa", *, user: str = "usr_1") -> tuple[str, str]:
    """A customer with ``card`` saved through a confirmed SetupIntent: (customer id, payment method id)."""
    customer = await gateway.create_customer(key=f"user:{user}:customer", metadata={"commerce_user_id": user})
    seti = await gateway.create_setup_intent(customer_id=customer.id, key=f"user:{user}:setup:1", metadata={})
    confirmed = await confirm_setup(gateway, seti.id, card)
    if confirmed.status == "requires_action":  # the card holder passes 3-D Secure while saving the card
        await gateway.client.raw_request_async("post", f"/v1/_fake/authenticate/{seti.id}", success="true")
        confirmed = await gateway.get_setup_intent(seti.id)
    assert confirmed.status == "succeeded" and isinstance(confirmed.payment_method, str)
    return customer.id, confirmed.payment_method
