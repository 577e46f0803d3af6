"""Multi-instance proof: two app processes (separate ports) and a worker on one PostgreSQL.

A revocation through A is seen by a check on B within a second; every scheduled job slot runs once across
the three schedulers; three dispatchers deliver each webhook once; purchases racing through both
instances never overspend a budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy import func, select

from app.clock import SystemClock
from app.jobs.models import JobRun
from app.settings import Settings
from app.webhooks.models import WebhookDelivery
from tests.factories import bearer, make_account, make_key, make_user, session_token
from tests.support.database import wait_for
from tests.support.live_server import live_process
from tests.support.receiver import Receiver

pytestmark = pytest.mark.slow
JOBS = {"billing_run", "statement_close", "reconcile", "approval_expiry", "idempotency_purge", "price_migrations",
        "usage_billing", "suggestion_stats", "webhook_dispatch", "job_history_purge", "trial_sweep",
        "usage_partitions", "limit_near_alerts", "unused_alerts"}
FAST = {"COMMERCE_SCHEDULER": "on", "COMMERCE_DISPATCHER": "on", "COMMERCE_JOBS_POLL_SECONDS": "0.2",
        "COMMERCE_WEBHOOK_POLL_SECONDS": "0.1", "COMMERCE_LOG_FORMAT": "json", "COMMERCE_RATE_LIMIT": "off"}


@contextlib.contextmanager
def worker_process(settings: Settings, data_dir: Path, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``commerce worker`` (dispatcher and scheduler) as its own process."""
    assert settings.database_url is not None
    env = {**os.environ, **FAST, "DATABASE_URL": settings.database_url, "COMMERCE_ENV": "test",
           "COMMERCE_DATA_DIR": str(data_dir), "COMMERCE_TOKEN_SECRET": settings.token_secret,
           "COMMERCE_STRIPE": "fake", "PYTHONWARNINGS": "ignore"}
    with log_path.open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env, stdout=subprocess.DEVNULL,
                                stderr=log, start_new_session=True)
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def job_starts(logs: list[Path]) -> Counter[tuple[str, str]]:
    """(job, slot) -> how many processes started it, from the processes' JSON logs."""
    starts: Counter[tuple[str, str]] = Counter()
    for path in logs:
        for line in path.read_text().splitlines():
            if not line.startswith("{"):
                continue
            event = str(msgspec.json.decode(line).get("event", ""))
            if event.startswith("job ") and " started (slot " in event:
                name, slot = event.split()[1], event.split("(slot ")[1].split(",")[0]
                starts[(name, slot)] += 1
    return starts


async def test_two_instances_and_a_worker_share_one_database_correctly(
        settings: Settings, sessionmaker: Any, tmp_path: Path) -> None:
    assert settings.database_url is not None
    key = await make_key(sessionmaker, SystemClock())
    logs = [tmp_path / "a.log", tmp_path / "b.log", tmp_path / "worker.log"]
    async with Receiver() as rx, contextlib.AsyncExitStack() as stack:
        a_url, _ = stack.enter_context(live_process(settings.database_url, tmp_path / "a", settings.token_secret,
                                                    extra_env=FAST, log_path=logs[0]))
        b_url, _ = stack.enter_context(live_process(settings.database_url, tmp_path / "b", settings.token_secret,
                                                    extra_env=FAST, log_path=logs[1]))
        stack.enter_context(worker_process(settings, tmp_path / "w", logs[2]))
        a = await stack.enter_async_context(httpx.AsyncClient(base_url=a_url, timeout=20))
        b = await stack.enter_async_context(httpx.AsyncClient(base_url=b_url, timeout=20))
        await _webhook_endpoint(a, key, rx.url)
        await _revocations_reach_the_other_instance_within_a_second(a, b, key)
        await _racing_purchases_never_overspend(a, b, key)
        await _each_event_is_delivered_once(sessionmaker, rx)
        await _each_job_slot_ran_once(sessionmaker, logs)


async def _webhook_endpoint(a: httpx.AsyncClient, key: str, url: str) -> None:
    r = await a.post("/v1/webhook-endpoints", json={"url": url}, headers=bearer(key))
    assert r.status_code == 201, r.text


async def _revocations_reach_the_other_instance_within_a_second(a: httpx.AsyncClient, b: httpx.AsyncClient,
                                                                key: str) -> None:
    await a.post("/v1/catalog/apply", json={"toml": _catalog()}, headers=bearer(key))
    await make_account(a, key, "acme")
    await make_user(a, key, "acme", "acme-ana", roles=["analyst"])
    grant = await a.post("/v1/accounts/acme/grants", headers=bearer(key),
                         json={"module": "reports_basic", "user": "acme-ana", "source_ref": "mi-1"})
    assert grant.status_code == 201, grant.text
    params = {"user": "acme-ana", "feature": "reports"}

    async def b_says(allowed: bool) -> bool:
        return bool((await b.get("/v1/entitlements/check", params=params, headers=bearer(key))).json()["allowed"]
                    is allowed)

    assert await wait_for(lambda: b_says(True), timeout=5)  # B is warm: its cache holds the grant
    revoked = await a.post(f"/v1/accounts/acme/grants/{grant.json()['id']}/revoke", json={"reason": "test"},
                           headers=bearer(key))
    assert revoked.status_code == 200, revoked.text
    started = time.monotonic()
    assert await wait_for(lambda: b_says(False), timeout=1.0), "B still allowed a second after the revoke"
    entitlement_lag = time.monotonic() - started
    # an API key revoked through A is refused by B just as fast
    minted = (await a.post("/v1/api-keys", json={"name": "short", "scopes": ["catalog:read"]},
                           headers=bearer(key))).json()
    assert (await b.get("/v1/catalog/modules", headers=bearer(minted["secret"]))).status_code == 200
    assert (await a.post(f"/v1/api-keys/{minted['id']}/revoke", headers=bearer(key))).status_code == 200
    started = time.monotonic()

    async def b_refuses() -> bool:
        return (await b.get("/v1/catalog/modules", headers=bearer(minted["secret"]))).status_code == 401

    assert await wait_for(b_refuses, timeout=1.0), "B still accepted a revoked key a second later"
    print(f"revocation seen on B after {entitlement_lag * 1000:.0f} ms (grant), "
          f"{(time.monotonic() - started) * 1000:.0f} ms (key)")


async def _racing_purchases_never_overspend(a: httpx.AsyncClient, b: httpx.AsyncClient, key: str) -> None:
    await make_account(a, key, "race")
    await make_user(a, key, "race", "race-admin", roles=["admin"])
    admin = await session_token(a, key, "race", "race-admin")
    users = [f"race-u{i}" for i in range(8)]
    for user in users:
        await make_user(a, key, "race", user, roles=["analyst"])
    tokens = [await session_token(a, key, "race", u) for u in users]
    r = await a.put("/v1/accounts/race/guardrails", json={"auto_approve_limit_minor": 10_000_000},
                    headers=bearer(admin))
    assert r.status_code in (200, 201), r.text
    quotes = []
    for i, (user, token) in enumerate(zip(users, tokens, strict=True)):
        client = a if i % 2 == 0 else b
        q = await client.post("/v1/quotes", json={"user": user, "items": [{"module": "reports_basic"}]},
                              headers=bearer(token))
        assert q.status_code == 201, q.text
        quotes.append(q.json())
    price = max(q["total_minor"] for q in quotes)
    amount = price * 3 + price // 2  # room for three purchases, not four
    made = await a.post("/v1/accounts/race/budgets", json={"name": "Main", "currency": "USD", "amount_minor": amount},
                        headers=bearer(key))
    assert made.status_code == 201, made.text

    async def buy(i: int) -> httpx.Response:
        client = a if i % 2 == 0 else b
        return await client.post("/v1/orders", json={"quote_id": quotes[i]["id"]},
                                 headers={**bearer(tokens[i]), "Idempotency-Key": f"race-{i}"})

    answers = await asyncio.gather(*(buy(i) for i in range(len(users))))
    assert all(r.status_code < 500 for r in answers), [r.text for r in answers if r.status_code >= 500]
    state = (await a.get(f"/v1/accounts/race/budgets/{made.json()['id']}", headers=bearer(key))).json()
    assert state["captured_minor"] + state["reserved_minor"] <= amount, state
    paid = [r for r in answers if r.status_code == 201 and r.json()["state"] in ("fulfilled", "paid")]
    assert 1 <= len(paid) <= 3 and state["captured_minor"] == sum(r.json()["total_minor"] for r in paid)


async def _each_event_is_delivered_once(sessionmaker: Any, rx: Receiver) -> None:
    async def settled() -> bool:
        async with sessionmaker() as s:
            open_ = await s.scalar(select(func.count()).select_from(WebhookDelivery)
                                   .where(WebhookDelivery.status != "succeeded"))
            done = await s.scalar(select(func.count()).select_from(WebhookDelivery))
        return bool(done) and open_ == 0

    assert await wait_for(settled, timeout=30), "deliveries did not all succeed"
    ids = Counter(r.headers["commerce-event-id"] for r in rx.requests)
    assert ids and max(ids.values()) == 1, [i for i, n in ids.items() if n > 1]
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(WebhookDelivery)) == len(ids)


async def _each_job_slot_ran_once(sessionmaker: Any, logs: list[Path]) -> None:
    async def all_ran() -> bool:
        async with sessionmaker() as s:
            names = set((await s.scalars(select(JobRun.job).where(JobRun.status == "succeeded"))).all())
        return names >= JOBS

    assert await wait_for(all_ran, timeout=60), "not every job ran"
    await asyncio.sleep(1.0)  # let every scheduler tick a few more times (poll 0.2 s) before counting
    starts = job_starts(logs)
    assert {job for job, _ in starts} >= JOBS
    twice = {k: n for k, n in starts.items() if n > 1}
    assert twice == {}, f"job slots started by more than one process: {twice}"
    async with sessionmaker() as s:
        rows = (await s.execute(select(JobRun.job, JobRun.attempts, JobRun.runner))).all()
    assert all(attempts == 1 for _, attempts, _ in rows)
    print(f"job runs by process: {Counter(runner.split(':')[1] for _, _, runner in rows)}")


def _catalog() -> str:
    from app.demo import demo_catalog_toml

    return demo_catalog_toml()


async def test_metrics_of_several_workers_are_summed_by_any_of_them(
        settings: Settings, sessionmaker: Any, tmp_path: Path) -> None:
    from app.cli import _multiprocess_metrics

    assert settings.database_url is not None
    env = {"COMMERCE_DATA_DIR": str(tmp_path / "data")}
    before = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("COMMERCE_DATA_DIR", env["COMMERCE_DATA_DIR"])
            _multiprocess_metrics(["serve"])  # what `commerce serve` does before anything imports prometheus
            folder = os.environ.pop("PROMETHEUS_MULTIPROC_DIR")
    finally:
        if before is not None:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = before
    assert Path(folder) == (tmp_path / "data" / "metrics").resolve() and list(Path(folder).iterdir()) == []
    key = await make_key(sessionmaker, SystemClock(), scopes="ops:read")
    with live_process(settings.database_url, tmp_path / "data", settings.token_secret, workers=2,
                      extra_env={"PROMETHEUS_MULTIPROC_DIR": folder}) as (base, _):
        async with httpx.AsyncClient(base_url=base, headers=bearer(key), timeout=20) as c:
            for _ in range(20):  # new connections: both workers answer some of them
                async with httpx.AsyncClient(base_url=base, headers=bearer(key), timeout=20) as one:
                    assert (await one.get("/v1/ops/jobs")).status_code == 200
            for _ in range(5):  # whichever worker answers the scrape sums all twenty
                text = (await c.get("/metrics")).text
                counted = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                              if line.startswith("commerce_requests_total{") and 'path="/v1/ops/jobs"' in line)
                assert counted == 20
    pids = {p.name.rsplit("_", 1)[1] for p in Path(folder).iterdir() if p.name.startswith("counter_")}
    assert len(pids) >= 2, "only one worker wrote metrics"
