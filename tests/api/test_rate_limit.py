"""Rate limits through HTTP: per key, per user, per route class, shared by app instances on one database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from app.asgi import create_app
from app.clock import FrozenClock
from app.settings import Settings
from tests.api.test_auth import assert_problem
from tests.factories import Tenant, bearer, make_key, make_tenant
from tests.support.database import wait_for

LIMITS = {"rate_limit_default_key": "3/minute", "rate_limit_default_user": "2/minute",
          "rate_limit_money_user": "1/minute", "rate_limit_check_key": "4/minute",
          "rate_limit_sync_seconds": 0.05}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return msgspec.structs.replace(settings, cors_origins=("https://app.vendor.example",), **LIMITS)


@pytest.fixture
async def key(sessionmaker: Any, clock: FrozenClock) -> str:
    return await make_key(sessionmaker, clock)


@pytest.fixture
async def tenant(settings: Settings, clock: FrozenClock, sessionmaker: Any) -> AsyncIterator[Tenant]:
    """An account with two users, set up through an unlimited instance so the set-up spends no budget."""
    app = create_app(msgspec.structs.replace(settings, rate_limit="off"), clock=clock)
    async with AsyncTestClient(app=app) as setup:
        yield await make_tenant(setup, await make_key(sessionmaker, clock, name="setup"), "acme")


def assert_limited(r: Any) -> int:
    body = assert_problem(r, 429, "too_many_requests")
    retry = int(r.headers["retry-after"])
    assert retry >= 1 and body["retry_after_seconds"] == retry
    assert r.headers["ratelimit-remaining"] == "0" and r.headers["ratelimit-limit"] == str(body["limit"])
    return retry


async def test_key_over_its_limit_gets_429_problem_with_retry_after(client: AsyncTestClient[Any], key: str) -> None:
    for _ in range(3):
        assert (await client.get("/v1/accounts", headers=bearer(key))).status_code == 200
    r = await client.get("/v1/accounts", headers=bearer(key))
    retry = assert_limited(r)
    assert retry <= 120 and r.headers["ratelimit-limit"] == "3" and r.headers["ratelimit-policy"] == "3;w=60"
    assert r.headers["ratelimit-reset"] == str(retry)


async def test_requests_fit_again_after_retry_after(
    client: AsyncTestClient[Any], key: str, clock: FrozenClock,
) -> None:
    for _ in range(3):
        assert (await client.get("/v1/accounts", headers=bearer(key))).status_code == 200
    retry = assert_limited(await client.get("/v1/accounts", headers=bearer(key)))
    clock.advance(timedelta(seconds=retry - 1))
    assert_limited(await client.get("/v1/accounts", headers=bearer(key)))
    clock.advance(timedelta(seconds=1))
    assert (await client.get("/v1/accounts", headers=bearer(key))).status_code == 200


async def test_another_key_is_unaffected_by_a_limited_key(
    client: AsyncTestClient[Any], key: str, sessionmaker: Any, clock: FrozenClock,
) -> None:
    other = await make_key(sessionmaker, clock, name="other")
    for _ in range(3):
        await client.get("/v1/accounts", headers=bearer(key))
    assert_limited(await client.get("/v1/accounts", headers=bearer(key)))
    assert (await client.get("/v1/accounts", headers=bearer(other))).status_code == 200


async def test_users_are_limited_one_by_one(client: AsyncTestClient[Any], tenant: Tenant) -> None:
    t = tenant
    for _ in range(2):
        assert (await client.get("/v1/me", headers=bearer(t.user_token))).status_code == 200
    assert_limited(await client.get("/v1/me", headers=bearer(t.user_token)))
    assert (await client.get("/v1/me", headers=bearer(t.admin_token))).status_code == 200  # same account
    r = await client.get("/v1/me", headers={**bearer(t.user_token), "Origin": "https://app.vendor.example"})
    assert r.status_code == 429 and r.headers["access-control-allow-origin"] == "https://app.vendor.example"
    assert "Retry-After" in r.headers["access-control-expose-headers"]  # the widget can read when to retry


async def test_check_path_and_money_routes_have_their_own_limits(
    client: AsyncTestClient[Any], key: str, tenant: Tenant,
) -> None:
    t = tenant
    for _ in range(3):
        assert (await client.get("/v1/accounts", headers=bearer(key))).status_code == 200
    assert_limited(await client.get("/v1/accounts", headers=bearer(key)))
    check = f"/v1/entitlements/check?user={t.user}&feature=reports"
    for _ in range(4):  # the default class is spent, the check class is not (404: no such feature yet)
        assert (await client.get(check, headers=bearer(key))).status_code != 429
    assert_limited(await client.get(check, headers=bearer(key)))
    order = {"quote_id": "quo_" + "0" * 26}
    r = await client.post("/v1/orders", json=order, headers={**bearer(t.user_token), "Idempotency-Key": "a"})
    assert r.status_code != 429  # counted even though the quote does not exist
    assert_limited(await client.post("/v1/orders", json=order,
                                     headers={**bearer(t.user_token), "Idempotency-Key": "b"}))
    assert (await client.get("/v1/me", headers=bearer(t.user_token))).status_code == 200  # default class


async def test_health_readiness_and_stripe_webhook_are_never_limited(client: AsyncTestClient[Any]) -> None:
    for _ in range(6):
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        r = await client.post("/v1/stripe/webhook", content=b"{}", headers={"Stripe-Signature": "t=1,v1=00"})
        assert r.status_code == 400 and "ratelimit-limit" not in r.headers


async def test_a_second_app_instance_on_the_same_database_sees_the_shared_limit(
    client: AsyncTestClient[Any], key: str, settings: Settings, clock: FrozenClock, sessionmaker: Any,
) -> None:
    async with AsyncTestClient(app=create_app(settings, clock=clock)) as other:
        assert (await client.get("/v1/accounts", headers=bearer(key))).status_code == 200
        assert (await other.get("/v1/accounts", headers=bearer(key))).status_code == 200
        assert (await client.get("/v1/accounts", headers=bearer(key))).status_code == 200
        assert_limited(await other.get("/v1/accounts", headers=bearer(key)))
        assert_limited(await client.get("/v1/accounts", headers=bearer(key)))
    async with sessionmaker() as session:
        handed = await session.scalar(text("SELECT sum(hits) FROM rate_limit_counters WHERE bucket LIKE 'default:k:%'"))
    assert handed == 3  # unused leases were given back; nothing admitted beyond the limit


async def test_no_limits_and_no_headers_when_switched_off(
    settings: Settings, clock: FrozenClock, sessionmaker: Any,
) -> None:
    key = await make_key(sessionmaker, clock)
    app = create_app(msgspec.structs.replace(settings, rate_limit="off"), clock=clock)
    async with AsyncTestClient(app=app) as c:
        for _ in range(5):
            r = await c.get("/v1/accounts", headers=bearer(key))
            assert r.status_code == 200 and "ratelimit-limit" not in r.headers


async def test_two_instances_hammering_one_key_admit_exactly_the_limit(
    key: str, settings: Settings, clock: FrozenClock, sessionmaker: Any,
) -> None:
    import asyncio

    roomy = msgspec.structs.replace(settings, rate_limit_default_key="20/minute")
    async with AsyncTestClient(app=create_app(roomy, clock=clock)) as a, \
            AsyncTestClient(app=create_app(roomy, clock=clock)) as b:
        answers = await asyncio.gather(*(c.get("/v1/accounts", headers=bearer(key)) for c in (a, b) * 30))
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(200) == 20 and statuses.count(429) == 40
    async with sessionmaker() as session:
        handed = await session.scalar(text("SELECT sum(hits) FROM rate_limit_counters WHERE bucket LIKE 'default:k:%'"))
    assert handed == 20


async def test_an_idle_callers_unused_lease_goes_back_to_the_shared_counter(
    key: str, settings: Settings, clock: FrozenClock, sessionmaker: Any,
) -> None:
    # leases of up to 100 hits; idle ones go back after ten sync intervals (3 s here: long enough that a loaded
    # machine's first requests do not outlast it before the lease is seen held)
    roomy = msgspec.structs.replace(settings, rate_limit_default_key="1000/minute", rate_limit_sync_seconds=0.3)

    async def handed() -> int:
        async with sessionmaker() as session:
            return int(await session.scalar(
                text("SELECT coalesce(sum(hits), 0) FROM rate_limit_counters WHERE bucket LIKE 'default:k:%'")) or 0)

    async with AsyncTestClient(app=create_app(roomy, clock=clock)) as c:
        for _ in range(3):
            assert (await c.get("/v1/accounts", headers=bearer(key))).status_code == 200
        assert await handed() > 3  # a lease is held beyond what was used ...
        assert await wait_for(lambda: _equals(handed, 3), timeout=15)  # ... and given back once the key is idle


async def _equals(value: Any, expected: int) -> bool:
    return bool(await value() == expected)
