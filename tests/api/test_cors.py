"""CORS: preflights without credentials, browser-facing routes only, deployment and per-account origins."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.clock import FrozenClock
from app.settings import Settings
from tests.api.test_auth import assert_problem
from tests.factories import Tenant, bearer, make_key, make_tenant
from tests.support.database import wait_for

DEPLOYED = "https://app.vendor.example"
WIDGET_A = "https://portal.acme.example"
ELSEWHERE = "https://evil.example"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return msgspec.structs.replace(settings, cors_origins=(DEPLOYED,))


@pytest.fixture
async def key(sessionmaker: Any, clock: FrozenClock) -> str:
    return await make_key(sessionmaker, clock)


def preflight(origin: str, method: str = "GET", headers: str = "authorization") -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}


async def set_origins(client: AsyncTestClient[Any], key: str, account: str, origins: list[str]) -> Any:
    return await client.post("/v1/accounts", json={"external_id": account, "name": account.title(),
                                                    "allowed_origins": origins}, headers=bearer(key))


async def test_preflight_from_a_deployment_origin_is_answered_without_credentials(
    client: AsyncTestClient[Any],
) -> None:
    r = await client.options("/v1/entitlements/check",
                             headers=preflight(DEPLOYED, headers="Authorization, Content-Type, Idempotency-Key"))
    assert r.status_code == 204, r.text
    assert r.headers["access-control-allow-origin"] == DEPLOYED
    allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key"} <= allowed
    assert set(r.headers["access-control-allow-methods"].split(", ")) == {"GET", "POST"}
    assert r.headers["access-control-max-age"] == "600" and "origin" in r.headers["vary"].lower()
    assert "access-control-allow-credentials" not in r.headers and "www-authenticate" not in r.headers


async def test_preflight_from_another_origin_gets_no_allow_headers(client: AsyncTestClient[Any]) -> None:
    r = await client.options("/v1/entitlements/check", headers=preflight(ELSEWHERE))
    assert r.status_code == 204  # the plain OPTIONS answer: the browser refuses the cross-origin call
    assert not any(h.startswith("access-control-allow") for h in r.headers)


async def test_plain_options_needs_no_credentials(client: AsyncTestClient[Any]) -> None:
    r = await client.options("/v1/me")
    assert r.status_code == 204 and "GET" in r.headers["allow"]


async def test_vendor_key_only_routes_get_no_cors_headers(client: AsyncTestClient[Any], key: str) -> None:
    r = await client.options("/v1/accounts", headers=preflight(DEPLOYED))
    assert not any(h.startswith("access-control-") for h in r.headers)
    # same path, vendor-only method: POST /v1/accounts/{account}/users (its GET takes admin tokens)
    r = await client.options("/v1/accounts/acme/users", headers=preflight(DEPLOYED, method="POST"))
    assert not any(h.startswith("access-control-") for h in r.headers)
    r = await client.get("/v1/accounts", headers={**bearer(key), "Origin": DEPLOYED})
    assert r.status_code == 200 and not any(h.startswith("access-control-") for h in r.headers)


async def test_preflight_asking_for_another_header_gets_no_allow_headers(client: AsyncTestClient[Any]) -> None:
    r = await client.options("/v1/me", headers=preflight(DEPLOYED, headers="authorization, x-debug"))
    assert "access-control-allow-origin" not in r.headers


async def test_user_token_response_carries_allow_origin_for_allowed_origins_only(
    client: AsyncTestClient[Any], key: str,
) -> None:
    t = await make_tenant(client, key, "acme")
    r = await client.get("/v1/me", headers={**bearer(t.user_token), "Origin": DEPLOYED})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == DEPLOYED
    exposed = r.headers["access-control-expose-headers"]
    assert "Retry-After" in exposed and "RateLimit-Remaining" in exposed
    r = await client.get("/v1/me", headers={**bearer(t.user_token), "Origin": ELSEWHERE})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    assert "origin" in r.headers["vary"].lower()
    r = await client.get("/v1/me", headers=bearer(t.user_token))  # no Origin (server to server): nothing added
    assert "access-control-allow-origin" not in r.headers and "vary" not in r.headers


async def test_per_account_origin_is_allowed_for_that_accounts_tokens_only(
    client: AsyncTestClient[Any], key: str,
) -> None:
    a, b = await make_tenant(client, key, "acme"), await make_tenant(client, key, "globex")
    assert (await set_origins(client, key, "acme", [WIDGET_A])).status_code == 200
    r = await client.options("/v1/entitlements/check", headers=preflight(WIDGET_A))
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == WIDGET_A
    check = f"/v1/entitlements/check?user={a.user}&feature=reports"
    r = await client.get(check, headers={**bearer(a.user_token), "Origin": WIDGET_A})
    assert r.headers["access-control-allow-origin"] == WIDGET_A
    r = await client.get("/v1/me", headers={**bearer(b.user_token), "Origin": WIDGET_A})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    r = await client.get(check, headers={**bearer(key), "Origin": WIDGET_A})  # vendor keys: deployment list only
    assert "access-control-allow-origin" not in r.headers


async def test_removing_an_accounts_origin_takes_effect_at_once(client: AsyncTestClient[Any], key: str) -> None:
    a = await make_tenant(client, key, "acme")
    await set_origins(client, key, "acme", [WIDGET_A])
    r = await client.get("/v1/me", headers={**bearer(a.user_token), "Origin": WIDGET_A})
    assert r.headers["access-control-allow-origin"] == WIDGET_A
    await set_origins(client, key, "acme", [])
    r = await client.get("/v1/me", headers={**bearer(a.user_token), "Origin": WIDGET_A})
    assert "access-control-allow-origin" not in r.headers
    r = await client.options("/v1/me", headers=preflight(WIDGET_A))
    assert "access-control-allow-origin" not in r.headers


async def test_expired_token_401_is_readable_from_an_accounts_origin(client: AsyncTestClient[Any], key: str) -> None:
    await make_tenant(client, key, "acme")
    await set_origins(client, key, "acme", [WIDGET_A])
    r = await client.get("/v1/me", headers={**bearer("not-a-token"), "Origin": WIDGET_A})
    assert_problem(r, 401)
    assert r.headers["access-control-allow-origin"] == WIDGET_A


async def test_allowed_origins_are_normalised_and_validated(client: AsyncTestClient[Any], key: str) -> None:
    r = await set_origins(client, key, "acme", ["https://Portal.ACME.example:443", WIDGET_A, "http://localhost:5173"])
    assert r.status_code == 201 and r.json()["allowed_origins"] == [WIDGET_A, "http://localhost:5173"]
    kept = await client.post("/v1/accounts", json={"external_id": "acme", "name": "Acme Corp"}, headers=bearer(key))
    assert kept.json()["allowed_origins"] == [WIDGET_A, "http://localhost:5173"]  # omitted: unchanged
    for bad in (["https://acme.example/widget"], ["*"], ["https://*.acme.example"], ["ftp://acme.example"],
                ["https://acme.example:99999"], ["null"], [WIDGET_A] * 21):
        r = await set_origins(client, key, "acme", bad)
        body = assert_problem(r, 400, "validation_failed")
        assert any("allowed_origins" in e["field"] for e in body["errors"]), body
    got = (await client.get("/v1/accounts/acme", headers=bearer(key))).json()
    assert got["allowed_origins"] == [WIDGET_A, "http://localhost:5173"]  # nothing half-written


async def test_per_account_origins_reach_another_app_instance_through_notify(
    client: AsyncTestClient[Any], key: str, settings: Settings, clock: FrozenClock,
) -> None:
    await make_tenant(client, key, "acme")
    async with AsyncTestClient(app=create_app(settings, clock=clock)) as other:
        async def allowed_there() -> bool:
            r = await other.options("/v1/me", headers=preflight(WIDGET_A))
            return r.headers.get("access-control-allow-origin") == WIDGET_A

        assert not await allowed_there()  # loaded (and cached) without the origin
        await set_origins(client, key, "acme", [WIDGET_A])
        assert await wait_for(allowed_there, timeout=5)


@pytest.fixture
async def open_client(settings: Settings, clock: FrozenClock) -> AsyncIterator[AsyncTestClient[Litestar]]:
    app = create_app(msgspec.structs.replace(settings, cors_origins=("*",)), clock=clock)
    async with AsyncTestClient(app=app) as c:
        yield c


async def test_wildcard_deployment_allows_any_origin_without_credentials(
    open_client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock,
) -> None:
    key = await make_key(sessionmaker, clock)
    t: Tenant = await make_tenant(open_client, key, "acme")
    r = await open_client.options("/v1/me", headers=preflight(ELSEWHERE))
    assert r.headers["access-control-allow-origin"] == "*" and "access-control-allow-credentials" not in r.headers
    r = await open_client.get("/v1/me", headers={**bearer(t.user_token), "Origin": ELSEWHERE})
    assert r.headers["access-control-allow-origin"] == "*"
