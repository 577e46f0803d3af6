"""``commerce demo``'s Stripe: the fake runs as its own process on a loopback port, the app side reaches it over
HTTP as if it were Stripe, and its signed events come back to the app's webhook endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import pytest

from app.settings import load_settings
from app.stripe_wiring import create_gateway, demo_stripe_fake
from stripe_fake.server import free_port
from tests.stripe_server import saved_card
from tests.support.receiver import Receiver


async def test_the_demo_serves_the_fake_in_its_own_process_and_its_events_reach_the_app(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STRIPE_SECRET_KEY", "STRIPE_API_BASE", "STRIPE_WEBHOOK_SECRET", "STRIPE_PUBLISHABLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    async with Receiver() as app_endpoint:  # stands in for the app's POST /v1/stripe/webhook
        demo = load_settings({}, env="development", data_dir=tmp_path, token_secret="t" * 40, port=app_endpoint.port)
        port = free_port()
        with contextlib.ExitStack() as stack:
            url = await asyncio.to_thread(stack.enter_context, demo_stripe_fake(demo, port=port))
            assert url == f"http://127.0.0.1:{port}"
            worker = load_settings(dict(os.environ), env="development", data_dir=tmp_path, token_secret="t" * 40)
            assert (worker.stripe_mode, worker.stripe_api_base) == ("stripe", url)
            assert worker.stripe_publishable_key.startswith("pk_test_")  # browsers call the fake as Stripe.js
            gateway = create_gateway(worker)
            assert gateway is not None and gateway.fake is None  # HTTPX over loopback, not in-process
            try:
                _, card = await saved_card(gateway)
                async with asyncio.timeout(20):
                    while not app_endpoint.requests:  # the fake delivers shortly after the call
                        await asyncio.sleep(0.05)
                [delivery] = app_endpoint.requests
                event = gateway.construct_event(delivery.body, delivery.headers["stripe-signature"])
                assert (delivery.path, event.type, event.data.object.payment_method) == (
                    "/v1/stripe/webhook", "setup_intent.succeeded", card)
            finally:
                await gateway.close()
            await asyncio.to_thread(stack.close)
    assert "STRIPE_API_BASE" not in os.environ


def test_the_demo_takes_the_fakes_port_from_a_flag() -> None:
    from app.cli import demo

    assert demo.make_context("demo", []).params["stripe_fake_port"] == 12111
    assert demo.make_context("demo", ["--stripe-fake-port", "12999"]).params["stripe_fake_port"] == 12999
