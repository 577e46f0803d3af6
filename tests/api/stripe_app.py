"""An app whose Stripe is a fake the test controls (events are delivered when the test says so)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.clock import FrozenClock
from app.settings import Settings
from tests.factories import Tenant, apply_demo_catalog, bearer, make_key, make_tenant
from tests.stripe_server import WEBHOOK_SECRET, FakeStripe
from tests.support.apps import commerce_app


@dataclass
class CardWorld:
    client: AsyncTestClient[Any]
    fake: FakeStripe
    key: str
    a: Tenant
    b: Tenant

    async def deliver(self) -> list[Any]:
        """POST every pending event to our webhook endpoint, signed; returns the responses."""
        responses: list[Any] = []

        async def post(payload: bytes, header: str) -> None:
            responses.append(await self.client.post("/v1/stripe/webhook", content=payload,
                                                    headers={"Stripe-Signature": header}))

        self.fake._targets[:] = [post]
        await self.fake.deliver_events()
        return responses


@pytest.fixture
async def world(settings: Settings, clock: FrozenClock, sessionmaker: Any) -> AsyncIterator[CardWorld]:
    import msgspec

    fake = FakeStripe(webhook_secret=WEBHOOK_SECRET)
    with commerce_app(msgspec.structs.replace(settings, stripe_webhook_secret=WEBHOOK_SECRET), clock=clock,
                      stripe_fake=fake) as app:
        async with AsyncTestClient(app=app) as client:
            key = await make_key(sessionmaker, clock)
            yield CardWorld(client=client, fake=fake, key=key, a=await make_tenant(client, key, "acme"),
                            b=await make_tenant(client, key, "globex"))


# --- the card purchase as the widget drives it ------------------------------------------------------------

_idem = itertools.count()


def idem_header() -> dict[str, str]:
    return {"Idempotency-Key": f"card-test-{next(_idem)}"}


async def card_order(world: CardWorld, *modules: str, user_token: str | None = None, user: str | None = None,
                     items: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Quote and order ``modules`` for A's user on the card route (no budget): the order waits for payment."""
    token, who = user_token or world.a.user_token, user or world.a.user
    body = {"user": who, "items": items or [{"module": m} for m in modules]}
    q = await world.client.post("/v1/quotes", json=body, headers=bearer(token))
    assert q.status_code == 201, q.text
    assert q.json()["decision"]["route"] == "card", q.json()["decision"]
    o = await world.client.post("/v1/orders", json={"quote_id": q.json()["id"]},
                                headers={**bearer(token), **idem_header()})
    assert o.status_code == 201, o.text
    assert o.json()["state"] == "payment_pending"
    return dict(o.json())


async def pay(world: CardWorld, order_id: str, *, card: str | None = None, token: str | None = None,
              headers: dict[str, str] | None = None) -> Any:
    body = {"payment_method_id": card} if card else {}
    return await world.client.post(f"/v1/orders/{order_id}/pay", json=body,
                                   headers={**bearer(token or world.a.user_token), **(headers or idem_header())})


async def allowed(world: CardWorld, feature: str = "reports") -> bool:
    r = await world.client.get("/v1/entitlements/check", params={"user": world.a.user, "feature": feature},
                               headers=bearer(world.key))  # the vendor's key: session tokens expire as clocks move
    assert r.status_code == 200, r.text
    return bool(r.json()["allowed"])


def succeeded_charges(fake: FakeStripe) -> list[dict[str, Any]]:
    return [c for c in fake.of_kind("charge") if c["status"] == "succeeded"]


@pytest.fixture
async def shop(world: CardWorld, sessionmaker: Any, clock: FrozenClock) -> CardWorld:
    """The card world with the demo catalog applied."""
    await apply_demo_catalog(sessionmaker, clock)
    return world


async def save_card(world: CardWorld, card: str = "pm_card_visa", *, token: str | None = None,
                    user: str | None = None) -> str:
    """The widget saves ``card`` for A's user (passing 3-D Secure at setup when the card asks for it)."""
    r = await world.client.post(f"/v1/payment-methods/setup?user={user or world.a.user}",
                                headers=bearer(token or world.a.user_token))
    assert r.status_code == 201, r.text
    gateway = world.client.app.state.stripe
    seti = await gateway.client.v1.setup_intents.confirm_async(r.json()["setup_intent"], {"payment_method": card})
    if seti.status == "requires_action":
        await gateway.client.raw_request_async("post", f"/v1/_fake/authenticate/{seti.id}", success="true")
        seti = await gateway.get_setup_intent(seti.id)
    assert seti.status == "succeeded" and isinstance(seti.payment_method, str)
    return seti.payment_method
