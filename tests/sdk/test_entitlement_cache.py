"""The SDK's local entitlement cache against the real service (two workers): grants and revocations reach it
within a second through the change stream; bounded memory; the failure policy when the service is gone."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from commerce_sdk import CachePolicy, Commerce, RetryPolicy
from commerce_sdk.entitlements import entry_size

from app.demo import demo_catalog_toml
from tests.sdk.conftest import SECRET, Service
from tests.sdk.test_client import tenant
from tests.support.live_server import live_server


def wait_until(predicate: Callable[[], bool], *, within: float) -> float:
    """Seconds until ``predicate`` held (polling local state); fails after ``within``."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < within, f"not within {within} s"
        time.sleep(0.002)
    return time.monotonic() - start


def test_grant_and_revoke_reach_the_local_cache_within_a_second(sdk: Commerce, service: Service) -> None:
    account = tenant(sdk, "ana")
    user = f"{account}-ana"
    assert sdk.entitlements.check(user, "pdf_export").allowed is False  # loads the snapshot, starts the stream
    hits = sdk.entitlements.cache.hits
    assert sdk.entitlements.check(user, "pdf_export").allowed is False
    assert sdk.entitlements.cache.hits == hits + 1  # answered locally
    # the change goes through another connection (either worker); only the stream can tell the SDK
    with service.http() as http:
        r = http.post(f"/v1/accounts/{account}/grants", json={"module": "reports_pro", "user": user,
                                                              "source_ref": "deal-1"})
        assert r.status_code == 201, r.text
        granted_after = wait_until(lambda: sdk.entitlements.check(user, "pdf_export").allowed, within=1.0)
        r = http.post(f"/v1/accounts/{account}/grants/{r.json()['id']}/revoke", json={"reason": "refund"})
        assert r.status_code == 200, r.text
        revoked_after = wait_until(lambda: not sdk.entitlements.check(user, "pdf_export").allowed, within=1.0)
    assert granted_after < 1.0 and revoked_after < 1.0


def test_limits_count_usage_recorded_through_the_sdk_and_by_others(sdk: Commerce, service: Service) -> None:
    account = tenant(sdk, "ana")
    user = f"{account}-ana"
    sdk.entitlements.grant(account, module="reports_basic", user=user, source_ref="basic")
    first = sdk.entitlements.check(user, "reports")
    assert first.allowed and first.limit is not None and first.remaining == first.limit
    sdk.usage.record(user=user, feature="reports", quantity=3)
    assert sdk.entitlements.check(user, "reports").remaining == first.limit - 3  # counted locally at once
    assert not sdk.entitlements.check(user, "reports", quantity=first.limit - 2).allowed
    with service.http() as http:  # usage recorded elsewhere arrives through the stream
        http.post("/v1/usage", json={"events": [{"event_id": f"{account}-other", "user": user, "feature": "reports",
                                                 "quantity": 2}]}).raise_for_status()
    wait_until(lambda: sdk.entitlements.check(user, "reports").remaining == first.limit - 5, within=2.0)


def test_cached_users_are_bounded_and_small(sdk: Commerce, service: Service) -> None:
    account = tenant(sdk, "a", "b", "c")
    for user in ("a", "b"):
        sdk.entitlements.grant(account, module="reports_pro", user=f"{account}-{user}", source_ref=f"g-{user}")
    with Commerce(api_key=service.key, base_url=service.base_url, cache=CachePolicy(max_users=2)) as small:
        assert small.entitlements.warm_up(account=account) == 3
        cache = small.entitlements.cache
        assert len(cache) == 2  # least recently used evicted
        entries = [cache._entries[u] for u in list(cache._entries)]
        assert all(entry_size(e) <= 1024 for e in entries), [entry_size(e) for e in entries]


def test_when_the_service_is_gone_stale_answers_then_the_failure_mode(
        service_db: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    url, key = service_db
    policy = CachePolicy(stale_seconds=0.3, feature_failure_modes={"comments": "open"})
    with live_server(url, tmp_path_factory.mktemp("gone"), SECRET) as base:
        client = Commerce(api_key=key, base_url=base, cache=policy, retry=RetryPolicy(max_retries=0))
        http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"})
        http.post("/v1/catalog/apply", json={"toml": demo_catalog_toml()}, timeout=30).raise_for_status()
        http.post("/v1/accounts", json={"external_id": "gone", "name": "Gone"}).raise_for_status()
        http.post("/v1/accounts/gone/users", json={"external_id": "gone-ana"}).raise_for_status()
        http.post("/v1/accounts/gone/grants", json={"module": "reports_pro", "user": "gone-ana",
                                                    "source_ref": "g"}).raise_for_status()
        assert client.entitlements.check("gone-ana", "pdf_export").allowed
    # the server is stopped: the stream is lost, answers go on from the snapshot for stale_seconds
    wait_until(lambda: not client.entitlements.cache.stream_up, within=5.0)
    during = client.entitlements.check("gone-ana", "pdf_export")
    assert during.allowed
    wait_until(lambda: client.entitlements.check("gone-ana", "pdf_export").stale, within=5.0)
    wait_until(lambda: client.entitlements.check("gone-ana", "pdf_export").reason == "unavailable_fail_closed",
               within=5.0)
    started = time.monotonic()
    assert client.entitlements.check("gone-ana", "comments").reason == "unavailable_fail_open"
    # answered from the failure mode at once: a check never waits for a change stream that cannot come up (each
    # one used to wait two seconds for it while the service was gone)
    assert time.monotonic() - started < 1.0
    assert client.entitlements.check("gone-ana", "comments").allowed
    client.close()
    http.close()
