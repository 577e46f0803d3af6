"""A purchase whose server process was killed mid-flight can be retried at once with the same Idempotency-Key.

Real processes: granian serving the app on loopback, the local Stripe over loopback HTTP (the test's own
event loop), one PostgreSQL. The payment stalls inside the Stripe call; the server's process group is
SIGKILLed; a new server takes the retry over immediately, and exactly one charge and one paid order result.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.clock import SystemClock
from app.db import create_engine, make_sessionmaker
from app.idempotency import IdempotencyRecord
from billing.models import CardPayment, Order
from tests.factories import apply_demo_catalog, bearer, make_key, make_tenant
from tests.stripe_server import WEBHOOK_SECRET, FakeStripe, sdk_client, serve
from tests.support import database
from tests.support.live_server import live_process

SECRET = "crash-secret-" + "c" * 40


async def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def _charges(fake: FakeStripe) -> list[dict[str, Any]]:
    return [c for c in fake.of_kind("charge") if c["status"] == "succeeded"]


@pytest.mark.slow
async def test_a_purchase_retried_after_its_server_was_killed_proceeds_at_once_and_charges_once(
    template_ready: database.TestDatabases, tmp_path: Path,
) -> None:
    url = template_ready.url(await template_ready.create())
    engine = create_engine(url, pool_size=1, max_overflow=0)
    maker = make_sessionmaker(engine)
    await apply_demo_catalog(maker, SystemClock())
    key = await make_key(maker, SystemClock())
    fake = FakeStripe(webhook_secret=WEBHOOK_SECRET)
    hang = 8.0  # longer than reaching the kill below takes on a loaded machine (about 2 s on a quiet one)
    async with serve(fake, hang_seconds=hang) as stripe_server:
        env = {"STRIPE_SECRET_KEY": "sk_test_crash", "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
               "STRIPE_API_BASE": stripe_server.base_url, "STRIPE_MAX_NETWORK_RETRIES": "0",
               "STRIPE_TIMEOUT_SECONDS": "50"}
        with live_process(url, tmp_path / "a", SECRET, extra_env=env) as (base, proc):
            async with httpx.AsyncClient(base_url=base, timeout=60) as a:
                shop = await make_tenant(a, key, "acme")
                user = bearer(shop.user_token)
                setup = await a.post(f"/v1/payment-methods/setup?user={shop.user}", headers=user)
                assert setup.status_code == 201, setup.text
                await sdk_client(fake).v1.setup_intents.confirm_async(setup.json()["setup_intent"],
                                                                      {"payment_method": "pm_card_visa"})
                q = await a.post("/v1/quotes", json={"user": shop.user, "items": [{"module": "reports_basic"}]},
                                 headers=user)
                assert q.status_code == 201 and q.json()["decision"]["route"] == "card", q.text
                o = await a.post("/v1/orders", json={"quote_id": q.json()["id"]},
                                 headers={**user, "Idempotency-Key": "order-1"})
                assert o.status_code == 201, o.text
                order_id = o.json()["id"]
                pay = {**user, "Idempotency-Key": "pay-1"}

                fake.inject("timeout", method="POST", path="/v1/payment_intents")  # the charge stalls
                stalled = asyncio.create_task(a.post(f"/v1/orders/{order_id}/pay", json={}, headers=pay))
                await _wait(lambda: any(r.path == "/v1/payment_intents" for r in fake.requests), 20,
                            "the payment to reach Stripe")
                duplicate = await a.post(f"/v1/orders/{order_id}/pay", json={}, headers=pay)
                assert duplicate.status_code == 409, duplicate.text  # the first is alive: never both
                assert duplicate.json()["code"] == "conflict"

                os.killpg(proc.pid, signal.SIGKILL)  # kill -9 the server and its workers mid-purchase
                proc.wait(timeout=10)
                with pytest.raises(httpx.HTTPError):
                    await stalled

        with live_process(url, tmp_path / "b", SECRET, extra_env=env) as (base, _proc):
            async with httpx.AsyncClient(base_url=base, timeout=60) as b:
                started = time.monotonic()
                retry = await b.post(f"/v1/orders/{order_id}/pay", json={}, headers=pay)
                waited = time.monotonic() - started
                assert retry.status_code == 200, retry.text
                assert retry.json()["state"] == "fulfilled" and waited < 10
                again = await b.post(f"/v1/orders/{order_id}/pay", json={}, headers=pay)
                assert again.headers.get("idempotent-replayed") == "true" and again.content == retry.content

    payment_intents = [r for r in fake.requests if r.method == "POST" and r.path == "/v1/payment_intents"]
    assert len(_charges(fake)) == 1 and len(fake.of_kind("payment_intent")) == 1
    # the retry replayed the same Stripe request under the same key
    assert {r.idempotency_key for r in payment_intents} == {f"order:{order_id}:pi:1"}
    async with maker() as s:
        assert await s.scalar(select(func.count()).select_from(Order)) == 1
        assert await s.scalar(select(func.count()).select_from(CardPayment)) == 1
        states = (await s.scalars(select(IdempotencyRecord.state).where(IdempotencyRecord.key == "pay-1"))).all()
    await engine.dispose()
    assert states == ["completed"]
