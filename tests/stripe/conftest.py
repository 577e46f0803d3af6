"""A Stripe gateway answering from a fresh local fake per test (no database)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.stripe_wiring import create_gateway
from billing.stripe.gateway import StripeGateway
from tests.stripe_server import WEBHOOK_SECRET, FakeStripe, fake_settings


@pytest.fixture
def fake() -> FakeStripe:
    return FakeStripe(webhook_secret=WEBHOOK_SECRET)


@pytest.fixture
async def gateway(fake: FakeStripe, tmp_path: Path) -> AsyncIterator[StripeGateway]:
    gw = create_gateway(fake_settings(tmp_path), fake=fake)
    assert gw is not None
    yield gw
    await gw.close()
