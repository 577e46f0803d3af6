"""The billing jobs as a separate process runs them: a gateway over real HTTP on loopback (STRIPE_SECRET_KEY +
STRIPE_API_BASE) to the same local Stripe the service used, repairing what the service left unfinished."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from app.clock import FrozenClock
from app.settings import Settings
from app.stripe_wiring import create_gateway
from billing.stripe.flows import reconcile, run_billing
from tests.api.stripe_app import CardWorld, allowed, card_order, pay, save_card, succeeded_charges
from tests.api.test_card_faults import _crash_after_charge
from tests.factories import bearer
from tests.stripe_server import WEBHOOK_SECRET, serve


async def test_reconcile_and_the_billing_run_over_loopback_http(shop: CardWorld, sessionmaker: Any,
                                                                 clock: FrozenClock, settings: Settings) -> None:
    card = await save_card(shop)
    order = await card_order(shop, "reports_basic")
    await _crash_after_charge(shop, sessionmaker, clock, order["id"], card)
    async with serve(shop.fake) as server:
        cli_settings = msgspec.structs.replace(settings, stripe_secret_key="sk_test_loopback",
                                               stripe_webhook_secret=WEBHOOK_SECRET, stripe_api_base=server.base_url)
        gateway = create_gateway(cli_settings)
        assert gateway is not None and gateway.fake is None  # real HTTP, not the in-process transport
        try:
            clock.advance(timedelta(seconds=settings.reconcile_after_seconds + 1))
            counts = await reconcile(sessionmaker, gateway, settings=cli_settings, clock=clock)
            assert counts["payments_replayed"] == 1 and counts["errors"] == 0
            got = (await shop.client.get(f"/v1/orders/{order['id']}", headers=bearer(shop.key))).json()
            assert got["state"] == "fulfilled" and await allowed(shop)
            clock.set(datetime(2026, 12, 1, 1, tzinfo=UTC))
            report = await run_billing(sessionmaker, gateway, settings=cli_settings, clock=clock)
            assert (report.renewed, report.errors) == (1, [])
        finally:
            await gateway.close()
    assert [c["amount"] for c in succeeded_charges(shop.fake)] == [225, 900]
    assert (await pay(shop, order["id"], token=shop.key)).json()["state"] == "fulfilled"
