"""The usage reporter against the real service: never blocks, batches in the background, and delivers at least
once (counted exactly once) across a restart of the service."""

from __future__ import annotations

import time

import httpx
import pytest
from commerce_sdk import Commerce, RetryPolicy, UsagePolicy

from app.demo import demo_catalog_toml
from tests.sdk.conftest import SECRET
from tests.sdk.test_entitlement_cache import wait_until
from tests.support.live_server import free_port, live_server


def test_usage_survives_a_service_restart_and_counts_once(service_db: tuple[str, str],
                                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    url, key = service_db
    port, data_dir = free_port(), tmp_path_factory.mktemp("restart")
    client = Commerce(api_key=key, base_url=f"http://127.0.0.1:{port}", retry=RetryPolicy(max_retries=0),
                      usage=UsagePolicy(batch_size=10, flush_interval=0.05, max_backoff=0.2))
    reporter = client.usage.reporter
    auth = {"Authorization": f"Bearer {key}"}
    with live_server(url, data_dir, SECRET, port=port) as base, httpx.Client(base_url=base, headers=auth) as http:
        http.post("/v1/catalog/apply", json={"toml": demo_catalog_toml()}, timeout=30).raise_for_status()
        http.post("/v1/accounts", json={"external_id": "meter", "name": "Meter"}).raise_for_status()
        http.post("/v1/accounts/meter/users", json={"external_id": "meter-ana"}).raise_for_status()
        http.post("/v1/accounts/meter/grants", json={"module": "reports_pro", "user": "meter-ana",
                                                     "source_ref": "g"}).raise_for_status()
        for _ in range(5):
            client.usage.record(user="meter-ana", feature="reports")
        wait_until(lambda: reporter.sent == 5 and len(reporter) == 0, within=5.0)
    # the service is down: recording goes on without waiting, events stay queued
    slowest = 0.0
    for _ in range(7):
        began = time.perf_counter()
        client.usage.record(user="meter-ana", feature="reports")
        slowest = max(slowest, time.perf_counter() - began)
    wait_until(lambda: reporter.failures > 0, within=5.0)
    assert len(reporter) == 7 and slowest < 0.01
    with live_server(url, data_dir, SECRET, port=port) as base, httpx.Client(base_url=base, headers=auth) as http:
        wait_until(lambda: len(reporter) == 0, within=10.0)
        used = http.get("/v1/entitlements/check", params={"user": "meter-ana", "feature": "reports"}).json()["used"]
        # a replayed event id is counted once
        again = http.post("/v1/usage", json={"events": [{"event_id": "dup-1", "user": "meter-ana",
                                                         "feature": "reports"}] * 1}).json()
        replay = http.post("/v1/usage", json={"events": [{"event_id": "dup-1", "user": "meter-ana",
                                                          "feature": "reports"}]}).json()
    client.close()
    assert used == 12 and reporter.dropped == 0
    assert again["accepted"] == 1 and replay["duplicates"] == 1


def test_close_flushes_what_is_buffered(sdk: Commerce) -> None:
    sdk.accounts.upsert("flush", name="Flush")
    sdk.users.upsert("flush", "flush-ana")
    sdk.entitlements.grant("flush", module="reports_pro", user="flush-ana", source_ref="g")
    sdk.usage.reporter.policy.flush_interval = 60.0  # only close() can send it now
    for _ in range(3):
        sdk.usage.record(user="flush-ana", feature="reports")
    sdk.close()
    assert len(sdk.usage.reporter) == 0 and sdk.usage.reporter.sent >= 3
