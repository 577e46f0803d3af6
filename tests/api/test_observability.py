"""Metrics, request ids, readiness of the background loops, and logs that never carry secrets."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from app.asgi import create_app
from app.clock import FrozenClock
from app.logs import configure_logging
from app.outbox import OutboxEvent
from app.settings import Settings
from tests.api.test_purchase import budget, order, quote
from tests.factories import apply_demo_catalog, bearer, make_key, make_tenant

ALL_JOBS = ("billing_run", "statement_close", "reconcile", "approval_expiry", "idempotency_purge", "price_migrations",
            "usage_billing", "suggestion_stats", "webhook_dispatch", "job_history_purge", "trial_sweep",
            "usage_partitions", "limit_near_alerts", "unused_alerts")


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def scrape(client: AsyncTestClient[Any], key: str) -> str:
    r = await client.get("/metrics", headers=bearer(key))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return r.text


async def test_metrics_count_route_latency_cache_lookups_and_budget_captures(
        client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock) -> None:
    await apply_demo_catalog(sessionmaker, clock)
    key = await make_key(sessionmaker, clock)
    acme = await make_tenant(client, key, "acme")
    before = await scrape(client, key)
    await budget(client, key, 100_000)
    q = await quote(client, acme.user_token, acme.user, "reports_basic")
    assert (await order(client, acme.user_token, q["id"])).status_code == 201
    after = ""
    # every label named: the registry is the process's, and other tests' answers (a 403, a 404) have their own
    check_labels = {"path": "/v1/entitlements/check", "method": "GET", "status_code": "200"}

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    # the purchase's change notice reaches the app's listener asynchronously and empties the buyer's cache entry
    # whenever it arrives: a check right after the purchase may fill the entry before the notice and the next one
    # miss; so check until a lookup hits (on a quiet machine: the second)
    checks = 0
    while checks < 2 or delta("commerce_entitlement_cache_lookups_total", result="hit") < 1:
        assert checks < 50, "no check was answered from the cache"
        r = await client.get("/v1/entitlements/check", params={"user": acme.user, "feature": "reports"},
                             headers=bearer(key))
        assert r.status_code == 200
        checks += 1
        after = await scrape(client, key)
    for _ in range(100):  # a request is counted as its middleware finishes, just after the client has the answer
        after = await scrape(client, key)
        if delta("commerce_request_duration_seconds_count", **check_labels) >= checks:
            break

    assert delta("commerce_request_duration_seconds_count", path="/v1/orders", method="POST", status_code="201") == 1
    assert delta("commerce_request_duration_seconds_count", **check_labels) == checks
    assert delta("commerce_entitlement_cache_lookups_total", result="hit") >= 1
    assert delta("commerce_budget_captures_total", currency="USD") == 1
    assert delta("commerce_budget_captured_minor_total", currency="USD") > 0
    assert sample(after, "commerce_db_pool_checked_out", pool="main") >= 0
    assert "commerce_job_runs_total" in after or "commerce_job_runs" in after
    assert "/metrics" not in {s.labels.get("path") for f in text_string_to_metric_families(after) for s in f.samples}


async def test_metrics_need_an_ops_key_unless_public_and_can_be_switched_off(
        client: AsyncTestClient[Any], settings: Settings, sessionmaker: Any, clock: FrozenClock) -> None:
    assert (await client.get("/metrics")).status_code == 401
    other = await make_key(sessionmaker, clock, scopes="catalog:read")
    assert (await client.get("/metrics", headers=bearer(other))).status_code == 403
    public = msgspec.structs.replace(settings, metrics="public")
    async with AsyncTestClient(app=create_app(public, clock=clock)) as c:
        assert (await c.get("/metrics")).status_code == 200
    off = msgspec.structs.replace(settings, metrics="off")
    async with AsyncTestClient(app=create_app(off, clock=clock)) as c:
        assert (await c.get("/metrics")).status_code == 404


async def test_every_answer_carries_a_request_id_that_audit_rows_and_events_record(
        client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock) -> None:
    await apply_demo_catalog(sessionmaker, clock)
    key = await make_key(sessionmaker, clock)
    fresh = await client.get("/healthz")
    assert fresh.headers["x-request-id"].startswith("req_")
    for bad in ("has spaces", "x" * 101, "tab\there"):
        assert (await client.get("/healthz", headers={"X-Request-Id": bad})).headers["x-request-id"] != bad
    r = await client.post("/v1/accounts", json={"external_id": "acme", "name": "Acme"},
                          headers={**bearer(key), "X-Request-Id": "trace-42.a"})
    assert r.status_code == 201 and r.headers["x-request-id"] == "trace-42.a"
    audit = (await client.get("/v1/audit-log", headers=bearer(key))).json()["data"]
    assert [e["request_id"] for e in audit if e["action"] == "account.created"] == ["trace-42.a"]
    t = await make_tenant(client, key, "globex")
    await budget(client, key, 50_000, account="globex")
    q = await quote(client, t.user_token, t.user, "reports_basic")
    placed = await order(client, t.user_token, q["id"], **{"Idempotency-Key": "k1", "X-Request-Id": "buy-1"})
    assert placed.status_code == 201
    async with sessionmaker() as s:
        ids = set((await s.scalars(select(OutboxEvent.request_id).where(OutboxEvent.type.like("order.%")))).all())
    assert ids == {"buy-1"}


async def test_readyz_reports_the_dispatcher_and_the_scheduler(settings: Settings, clock: FrozenClock) -> None:
    on = msgspec.structs.replace(settings, scheduler="on", jobs_poll_seconds=3600,
                                 jobs_disabled=tuple(j for j in ALL_JOBS if j != "price_migrations"))
    async with AsyncTestClient(app=create_app(on, clock=clock)) as c:
        body = (await c.get("/readyz")).json()
        assert (body["status"], body["scheduler"], body["dispatcher"]) == ("ok", "ok", "off")
        jobs = c.app.state.jobs
        jobs._task.cancel()  # the loop dies: this instance is no longer ready
        while not jobs._task.done():
            await c.get("/healthz")  # yield to the app's loop until the cancellation lands
        r = await c.get("/readyz")
        assert r.status_code == 503 and r.json()["scheduler"] == "stalled"


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    buffer = io.StringIO()
    configure_logging(fmt="json", level="DEBUG", stream=buffer)
    yield buffer
    root.handlers, _ = saved
    root.setLevel(saved[1])


async def test_logs_of_a_whole_journey_carry_request_ids_and_no_secret(
        captured_logs: io.StringIO, settings: Settings, sessionmaker: Any, clock: FrozenClock) -> None:
    chatty = msgspec.structs.replace(settings, access_log="on")
    await apply_demo_catalog(sessionmaker, clock)
    key = await make_key(sessionmaker, clock)
    secrets = {key, settings.token_secret}
    async with AsyncTestClient(app=create_app(chatty, clock=clock)) as c:
        acme = await make_tenant(c, key, "acme")
        secrets |= {acme.admin_token, acme.user_token}
        hook = await c.post("/v1/webhook-endpoints", json={"url": "https://hooks.example.com/in?token=abc123secret"},
                            headers=bearer(key))
        assert hook.status_code == 201, hook.text
        secrets |= {hook.json()["secret"], "abc123secret"}
        minted = await c.post("/v1/api-keys", json={"name": "more", "scopes": ["catalog:read"]}, headers=bearer(key))
        secrets.add(minted.json()["secret"])
        await budget(c, key, 100_000)
        q = await quote(c, acme.user_token, acme.user, "reports_basic")
        assert (await order(c, acme.user_token, q["id"])).status_code == 201
        await c.get("/v1/entitlements/check", params={"user": acme.user, "feature": "reports"}, headers=bearer(key))
        await c.get("/v1/accounts", headers={"Authorization": "Bearer sk_live_wrongwrongwrong"})
        secrets.add("sk_live_wrongwrongwrong")
    text = captured_logs.getvalue()
    lines = [msgspec.json.decode(line) for line in text.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("logger") == "commerce.access"]
    assert len(requests) >= 10 and all(line.get("request_id", "").startswith("req_") for line in requests)
    assert any(line.get("status") == 401 for line in requests)
    leaked = sorted(s for s in secrets if s and s in text)
    assert leaked == [], f"secrets in the logs: {[s[:8] + '...' for s in leaked]}"
    assert "Bearer" not in text and "Authorization" not in text.replace("authorization_", "")


async def test_logs_of_a_card_journey_carry_no_stripe_secret(
        captured_logs: io.StringIO, settings: Settings, sessionmaker: Any, clock: FrozenClock) -> None:
    """Card setup, a 3-D Secure purchase, signed Stripe webhooks and a forged one: none of their secrets is logged."""
    from tests.api.stripe_app import CardWorld
    from tests.stripe_server import WEBHOOK_SECRET, FakeStripe

    await apply_demo_catalog(sessionmaker, clock)
    fake = FakeStripe(webhook_secret=WEBHOOK_SECRET)
    chatty = msgspec.structs.replace(settings, stripe_webhook_secret=WEBHOOK_SECRET, access_log="on")
    async with AsyncTestClient(app=create_app(chatty, clock=clock, stripe_fake=fake)) as client:
        key = await make_key(sessionmaker, clock)
        shop = CardWorld(client=client, fake=fake, key=key, a=await make_tenant(client, key, "acme"),
                         b=await make_tenant(client, key, "globex"))
        await _card_journey(shop, captured_logs)


async def _card_journey(shop: Any, captured_logs: io.StringIO) -> None:
    """Save a 3-D Secure card, buy with it, let Stripe's signed events complete the order; then read the logs."""
    from tests.api.stripe_app import card_order, pay, save_card
    from tests.stripe_server import WEBHOOK_SECRET

    secrets = {WEBHOOK_SECRET, "sk_test_fake", shop.key, shop.a.user_token}
    setup = await shop.client.post(f"/v1/payment-methods/setup?user={shop.a.user}", headers=bearer(shop.a.user_token))
    assert setup.status_code == 201, setup.text
    secrets.add(setup.json()["client_secret"])
    card = await save_card(shop, "pm_card_authenticationRequired")
    order = await card_order(shop, "reports_basic")
    paying = (await pay(shop, order["id"])).json()
    assert paying["state"] == "requires_action"
    secrets.add(paying["payment"]["client_secret"])
    gateway = shop.client.app.state.stripe
    pi = paying["payment"]["payment_intent"]
    await gateway.client.v1.payment_intents.confirm_async(pi, {"payment_method": card})
    await gateway.client.raw_request_async("post", f"/v1/_fake/authenticate/{pi}", success="true")
    signatures: list[str] = []

    async def post(payload: bytes, header: str) -> None:
        signatures.append(header)
        r = await shop.client.post("/v1/stripe/webhook", content=payload, headers={"Stripe-Signature": header})
        assert r.status_code == 200, r.text

    shop.fake._targets[:] = [post]
    await shop.fake.deliver_events()
    forged = "t=1700000000,v1=" + "ab" * 32
    r = await shop.client.post("/v1/stripe/webhook", content=b'{"id": "evt_forged"}',
                               headers={"Stripe-Signature": forged})
    assert r.status_code == 400
    got = (await shop.client.get(f"/v1/orders/{order['id']}", headers=bearer(shop.a.user_token))).json()
    assert got["state"] == "fulfilled" and signatures
    secrets |= {s.split("v1=")[1].split(",")[0] for s in [*signatures, forged]}
    text = captured_logs.getvalue()
    assert text.count('"logger": "commerce.access"') >= 10, "no request was logged: the test would prove nothing"
    leaked = sorted(s for s in secrets if s and s in text)
    assert leaked == [], f"secrets in the logs: {[s[:8] + '...' for s in leaked]}"
    assert "_secret_" not in text and "whsec_" not in text


async def test_notify_lag_is_measured_by_a_probe_through_postgresql(client: AsyncTestClient[Any], sessionmaker: Any,
                                                                    clock: FrozenClock) -> None:
    key = await make_key(sessionmaker, clock, scopes="ops:read")
    for _ in range(200):  # the app's probe goes out at start; wait (bounded) for its arrival
        if sample(await scrape(client, key), "commerce_notify_lag_seconds_count") > 0:
            break
    text = await scrape(client, key)
    count = sample(text, "commerce_notify_lag_seconds_count")
    assert count > 0
    # the histogram is the process's: it holds the probes of every app this test worker built before, so it is
    # their mean that says how long a notice takes, not the sum (which grows with the number of tests run)
    assert 0 <= sample(text, "commerce_notify_lag_seconds_sum") / count < 5


async def test_the_example_dashboard_only_queries_metrics_the_service_exports(
        client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock) -> None:
    from pathlib import Path

    key = await make_key(sessionmaker, clock, scopes="ops:read")
    await client.get("/v1/accounts", headers=bearer(key))  # the per-route series exist after a request
    text = await scrape(client, key)
    exported = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            exported.add(line.split()[2])
    dashboard = (Path(__file__).resolve().parents[2] / "docs" / "dashboard.json").read_text()
    import re

    queried = {re.sub(r"_bucket$", "", m) for m in re.findall(r"commerce_[a-z_]+", dashboard)} - {"commerce_ops"}
    assert queried and queried <= exported, sorted(queried - exported)


def test_the_default_log_handler_follows_sys_stderr_when_it_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    first, second = io.StringIO(), io.StringIO()
    try:
        monkeypatch.setattr("sys.stderr", first)
        configure_logging(fmt="json", level="INFO")
        monkeypatch.setattr("sys.stderr", second)
        first.close()  # what a test harness does with its capture after the test that configured logging
        logging.getLogger("commerce.test").info("after the swap")
        assert "after the swap" in second.getvalue()
    finally:
        root.handlers, _ = saved
        root.setLevel(saved[1])
