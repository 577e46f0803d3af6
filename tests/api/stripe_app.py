"""An app whose Stripe is a fake the test controls (events are delivered when the test says so)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.clock import FrozenClock
from app.settings import Settings
from tests.factories import Tenant, make_key, make_tenant
from tests.stripe_server import WEBHOOK_SECRET, FakeStripe


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
    app = create_app(msgspec.structs.replace(settings, stripe_webhook_secret=WEBHOOK_SECRET), clock=clock,
                     stripe_fake=fake)
    async with AsyncTestClient(app=app) as client:
        key = await make_key(sessionmaker, clock)
        yield CardWorld(client=client, fake=fake, key=key, a=await make_tenant(client, key, "acme"),
                        b=await make_tenant(client, key, "globex"))
