"""Keys bound to accounts: they see and change only their accounts, and hand out no more than that."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.clock import FrozenClock
from tests.api.test_auth import assert_problem
from tests.factories import apply_demo_catalog, bearer, make_key, make_tenant


async def _bound(client: AsyncTestClient[Any], admin: str, accounts: list[str], scopes: list[str] | None = None,
                 name: str = "bound") -> dict[str, Any]:
    r = await client.post("/v1/api-keys", json={"name": name, "scopes": scopes or ["all"], "accounts": accounts},
                          headers=bearer(admin))
    assert r.status_code == 201, r.text
    return dict(r.json())


@pytest.fixture
async def two(client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock) -> tuple[str, str]:
    """A global admin key, tenants alpha and beta, and a key bound to beta (returned with the admin key)."""
    admin = await make_key(sessionmaker, clock)
    await make_tenant(client, admin, "alpha")
    await make_tenant(client, admin, "beta")
    return admin, (await _bound(client, admin, ["beta"]))["secret"]


async def test_key_creation_binds_accounts_and_reads_show_the_binding(
    client: AsyncTestClient[Any], two: tuple[str, str],
) -> None:
    admin, _ = two
    created = await _bound(client, admin, ["beta", "alpha", "beta"], scopes=["accounts:read"], name="both")
    assert created["accounts"] == ["alpha", "beta"] and created["secret"].startswith("sk_")
    listing = {k["name"]: k for k in (await client.get("/v1/api-keys", headers=bearer(admin))).json()}
    assert listing["both"]["accounts"] == ["alpha", "beta"] and listing["bound"]["accounts"] == ["beta"]
    assert listing["test"]["accounts"] is None  # the global key
    page = (await client.get("/v1/accounts", headers=bearer(created["secret"]))).json()["data"]
    assert sorted(a["external_id"] for a in page) == ["alpha", "beta"]


async def test_unknown_account_in_a_binding_is_404_and_creates_nothing(
    client: AsyncTestClient[Any], two: tuple[str, str],
) -> None:
    admin, _ = two
    r = await client.post("/v1/api-keys", json={"name": "x", "scopes": ["all"], "accounts": ["beta", "nope"]},
                          headers=bearer(admin))
    assert assert_problem(r, 404)["account"] == "nope"
    assert "x" not in {k["name"] for k in (await client.get("/v1/api-keys", headers=bearer(admin))).json()}
    assert_problem(await client.post("/v1/api-keys", json={"name": "x", "scopes": ["all"], "accounts": []},
                                     headers=bearer(admin)), 400)


async def test_bound_key_lists_and_reads_only_its_accounts(client: AsyncTestClient[Any], two: tuple[str, str]) -> None:
    _, bound = two
    page = (await client.get("/v1/accounts", headers=bearer(bound))).json()
    assert [a["external_id"] for a in page["data"]] == ["beta"] and page["next_cursor"] is None
    assert (await client.get("/v1/accounts/beta", headers=bearer(bound))).status_code == 200
    other = assert_problem(await client.get("/v1/accounts/alpha", headers=bearer(bound)), 404)
    unknown = assert_problem(await client.get("/v1/accounts/zeta", headers=bearer(bound)), 404)
    assert other["detail"].replace("alpha", "?") == unknown["detail"].replace("zeta", "?")  # no existence leak
    assert {k: v for k, v in other.items() if k not in ("detail", "instance")} == {
        k: v for k, v in unknown.items() if k not in ("detail", "instance")}
    for url in ("/v1/accounts/alpha/users", "/v1/accounts/alpha/users/alpha-user", "/v1/accounts/alpha/budgets",
                "/v1/accounts/alpha/audit-log", "/v1/entitlements/snapshot?user=alpha-user"):
        assert_problem(await client.get(url, headers=bearer(bound)), 404)


async def test_bound_key_cannot_change_or_act_for_another_account(
    client: AsyncTestClient[Any], two: tuple[str, str],
) -> None:
    admin, bound = two
    calls = [
        ("POST", "/v1/accounts/alpha/users", {"external_id": "mole", "roles": ["admin"]}),
        ("POST", "/v1/session-tokens", {"account": "alpha", "user": "alpha-admin"}),
        ("POST", "/v1/accounts/alpha/budgets", {"name": "b", "currency": "USD", "amount_minor": 1}),
        ("POST", "/v1/usage", {"events": [{"event_id": "e1", "user": "alpha-user", "feature": "reports"}]}),
        ("POST", "/v1/entitlements/check", {"user": "alpha-user", "checks": [{"feature": "reports"}]}),
    ]
    for method, url, body in calls:
        assert_problem(await client.request(method, url, json=body, headers=bearer(bound)), 404)
    users = (await client.get("/v1/accounts/alpha/users", headers=bearer(admin))).json()["data"]
    assert "mole" not in {u["external_id"] for u in users}
    r = await client.post("/v1/session-tokens", json={"account": "beta", "user": "beta-admin"}, headers=bearer(bound))
    assert r.status_code == 201 and r.json()["account"] == "beta"


async def test_bound_key_reaches_orders_and_quotes_of_its_accounts_only(
    client: AsyncTestClient[Any], two: tuple[str, str], sessionmaker: Any, clock: FrozenClock,
) -> None:
    admin, bound = two
    await apply_demo_catalog(sessionmaker, clock)
    mine = await client.post("/v1/quotes", json={"user": "beta-user", "items": [{"module": "comments"}]},
                             headers=bearer(bound))
    assert mine.status_code == 201, mine.text
    theirs = (await client.post("/v1/quotes", json={"user": "alpha-user", "items": [{"module": "comments"}]},
                                headers=bearer(admin))).json()
    assert_problem(await client.get(f"/v1/quotes/{theirs['id']}", headers=bearer(bound)), 404)
    assert_problem(await client.post("/v1/orders", json={"quote_id": theirs["id"]},
                                     headers={**bearer(bound), "Idempotency-Key": "b-1"}), 404)
    order = await client.post("/v1/orders", json={"quote_id": theirs["id"]},
                              headers={**bearer(admin), "Idempotency-Key": "a-1"})
    assert order.status_code == 201, order.text
    assert_problem(await client.get(f"/v1/orders/{order.json()['id']}", headers=bearer(bound)), 404)
    assert (await client.get(f"/v1/quotes/{mine.json()['id']}", headers=bearer(bound))).status_code == 200


@pytest.mark.parametrize(("method", "url", "body"), [
    ("GET", "/v1/audit-log", None),
    ("GET", "/v1/webhook-endpoints", None),
    ("POST", "/v1/webhook-endpoints", {"url": "https://example.test/hook"}),
    ("POST", "/v1/catalog/apply", {"toml": ""}),
    ("POST", "/v1/billing/statements/close", {"period": "2026-10"}),
    ("GET", "/v1/billing/sales-credit", None),
    ("GET", "/v1/suggestions/stats", None),
    ("POST", "/v1/accounts", {"external_id": "beta", "name": "Renamed"}),
])
async def test_bound_key_gets_403_on_deployment_level_routes(
    client: AsyncTestClient[Any], two: tuple[str, str], method: str, url: str, body: Any,
) -> None:
    _, bound = two
    problem = assert_problem(await client.request(method, url, json=body, headers=bearer(bound)), 403, "forbidden")
    assert problem["bound_key"] is True and "global key" in problem["detail"]


async def test_bound_key_reads_the_catalog(client: AsyncTestClient[Any], two: tuple[str, str], sessionmaker: Any,
                                           clock: FrozenClock) -> None:
    _, bound = two
    await apply_demo_catalog(sessionmaker, clock)
    r = await client.get("/v1/catalog/modules", headers=bearer(bound))
    assert r.status_code == 200 and r.json()["data"]


async def test_bound_key_mints_keys_only_within_its_accounts(
    client: AsyncTestClient[Any], two: tuple[str, str], sessionmaker: Any, clock: FrozenClock,
) -> None:
    admin, _ = two
    both = (await _bound(client, admin, ["alpha", "beta"], name="both"))["secret"]
    assert_problem(await client.post("/v1/api-keys", json={"name": "g", "scopes": ["accounts:read"]},
                                     headers=bearer(both)), 403, "key_privilege_exceeded")
    beta_only = (await _bound(client, admin, ["beta"], name="beta-only"))["secret"]
    r = await client.post("/v1/api-keys", json={"name": "n", "scopes": ["all"], "accounts": ["alpha"]},
                          headers=bearer(beta_only))
    assert_problem(r, 404)
    r = await client.post("/v1/api-keys", json={"name": "n", "scopes": ["accounts:read"], "accounts": ["beta"]},
                          headers=bearer(both))
    assert r.status_code == 201 and r.json()["accounts"] == ["beta"]
    names = {k["name"] for k in (await client.get("/v1/api-keys", headers=bearer(admin))).json()}
    assert "g" not in names and names >= {"n"}


async def test_bound_key_sees_and_revokes_only_keys_within_its_accounts(
    client: AsyncTestClient[Any], two: tuple[str, str],
) -> None:
    admin, bound = two
    alpha_key = await _bound(client, admin, ["alpha"], name="alpha-key")
    both_key = await _bound(client, admin, ["alpha", "beta"], name="both-key")
    beta_reader = await _bound(client, admin, ["beta"], scopes=["accounts:read"], name="beta-reader")
    visible = {k["name"] for k in (await client.get("/v1/api-keys", headers=bearer(bound))).json()}
    assert visible == {"bound", "beta-reader"}
    admin_id = admin[3:].split(".", 1)[0]
    for key_id in (admin_id, alpha_key["id"], both_key["id"]):
        assert_problem(await client.post(f"/v1/api-keys/{key_id}/revoke", headers=bearer(bound)), 404)
    assert (await client.get("/v1/accounts/alpha", headers=bearer(alpha_key["secret"]))).status_code == 200
    r = await client.post(f"/v1/api-keys/{beta_reader['id']}/revoke", headers=bearer(bound))
    assert r.status_code == 200 and r.json()["accounts"] == ["beta"]
    assert_problem(await client.get("/v1/accounts", headers=bearer(beta_reader["secret"])), 401)


async def test_cached_bound_key_stays_bound_and_its_revocation_reaches_the_cache_through_notify(
    client: AsyncTestClient[Any], two: tuple[str, str], sessionmaker: Any, clock: FrozenClock,
) -> None:
    from app import keys
    from app.notify import notify
    from tests.support.database import wait_for

    _, bound = two
    for _ in range(3):  # the first request loads the key, the next ones are served by the cache
        assert (await client.get("/v1/accounts/beta", headers=bearer(bound))).status_code == 200
        assert_problem(await client.get("/v1/accounts/alpha", headers=bearer(bound)), 404)
    key_id = bound[3:].split(".")[0]
    async with sessionmaker() as session, session.begin():  # as `commerce keys revoke` does from another process
        await keys.revoke_key(session, key_id, clock=clock)
        await notify(session, "key", key_id)

    async def rejected() -> bool:
        return (await client.get("/v1/accounts/beta", headers=bearer(bound))).status_code == 401

    assert await wait_for(rejected, timeout=2)
