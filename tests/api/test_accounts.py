"""Accounts and users: upsert by external id, pagination, tenancy of session tokens, audit."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.clock import FrozenClock
from tests.api.test_auth import assert_problem
from tests.factories import bearer, make_account, make_key, make_tenant, make_user


@pytest.fixture
async def key(sessionmaker: Any, clock: FrozenClock) -> str:
    return await make_key(sessionmaker, clock)


async def test_account_upsert_creates_then_updates_by_external_id(client: AsyncTestClient[Any], key: str) -> None:
    body = {"external_id": "acme", "name": "Acme", "segment": "enterprise", "currency": "EUR"}
    r1 = await client.post("/v1/accounts", json=body, headers=bearer(key))
    assert r1.status_code == 201
    created = r1.json()
    assert created["id"].startswith("acct_") and created["currency"] == "EUR"
    r2 = await client.post("/v1/accounts", json={**body, "name": "Acme Corp"}, headers=bearer(key))
    assert r2.status_code == 200
    assert r2.json()["id"] == created["id"] and r2.json()["name"] == "Acme Corp"
    got = (await client.get("/v1/accounts/acme", headers=bearer(key))).json()
    assert got["name"] == "Acme Corp" and got["created_at"].endswith("Z")


async def test_unsupported_currency_and_bad_fields_are_rejected(client: AsyncTestClient[Any], key: str) -> None:
    r = await client.post("/v1/accounts", json={"external_id": "x", "name": "X", "currency": "XXX"},
                          headers=bearer(key))
    assert_problem(r, 422)
    r = await client.post("/v1/accounts", json={"external_id": "x", "name": "X", "currency": "usd"},
                          headers=bearer(key))
    body = assert_problem(r, 400, "validation_failed")
    assert body["errors"][0]["field"].endswith("currency")
    r = await client.post("/v1/accounts", json={"external_id": "x", "name": "X", "colour": "red"},
                          headers=bearer(key))
    assert_problem(r, 400, "validation_failed")
    listing = (await client.get("/v1/accounts", headers=bearer(key))).json()
    assert listing["data"] == []  # nothing half-written


async def test_accounts_page_with_cursor(client: AsyncTestClient[Any], key: str) -> None:
    for i in range(5):
        await make_account(client, key, f"acc-{i}")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/accounts", params=params, headers=bearer(key))).json()
        seen += [a["external_id"] for a in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == [f"acc-{i}" for i in range(5)] and len(seen) == 5
    assert_problem(await client.get("/v1/accounts", params={"cursor": "!!!"}, headers=bearer(key)), 400)
    assert_problem(await client.get("/v1/accounts", params={"limit": 0}, headers=bearer(key)), 400)


async def test_user_upsert_and_one_account_per_user(client: AsyncTestClient[Any], key: str) -> None:
    await make_account(client, key, "acme")
    await make_account(client, key, "globex")
    u = await make_user(client, key, "acme", "u-1", roles=["analyst", "analyst", "manager"], email="u1@acme.test")
    assert u["roles"] == ["analyst", "manager"] and u["account"] == "acme"
    r = await client.post("/v1/accounts/globex/users", json={"external_id": "u-1"}, headers=bearer(key))
    assert_problem(r, 409)
    r = await client.post("/v1/accounts/nope/users", json={"external_id": "u-2"}, headers=bearer(key))
    assert_problem(r, 404)
    page = (await client.get("/v1/accounts/acme/users", headers=bearer(key))).json()
    assert [x["external_id"] for x in page["data"]] == ["u-1"]


async def test_session_token_acts_only_for_its_user_and_account(client: AsyncTestClient[Any], key: str) -> None:
    a = await make_tenant(client, key, "alpha")
    b = await make_tenant(client, key, "beta")
    me = (await client.get("/v1/me", headers=bearer(a.user_token))).json()
    assert me == {"account": "alpha", "user": "alpha-user", "roles": ["analyst"], "is_admin": False}
    # an end user sees itself, not its colleagues, not the account, not the user list
    assert (await client.get(f"/v1/accounts/alpha/users/{a.user}", headers=bearer(a.user_token))).status_code == 200
    assert_problem(await client.get(f"/v1/accounts/alpha/users/{a.admin}", headers=bearer(a.user_token)), 404)
    assert_problem(await client.get("/v1/accounts/alpha/users", headers=bearer(a.user_token)), 403)
    # an admin sees its own account's users, never another account's (404, existence not leaked)
    assert (await client.get("/v1/accounts/alpha/users", headers=bearer(a.admin_token))).status_code == 200
    beta = (await client.get("/v1/accounts/beta", headers=bearer(key))).json()
    for path in ("/v1/accounts/beta", "/v1/accounts/beta/users", f"/v1/accounts/beta/users/{b.user}"):
        r = await client.get(path, headers=bearer(a.admin_token))
        assert_problem(r, 404)
        assert beta["id"] not in r.text and beta["name"] not in r.text
    # the same 404 as for an account that does not exist
    missing = (await client.get("/v1/accounts/nope", headers=bearer(a.admin_token))).json()
    other = (await client.get("/v1/accounts/beta", headers=bearer(a.admin_token))).json()
    assert missing["title"] == other["title"] and missing["status"] == other["status"]
    # session tokens cannot call vendor-only routes
    assert_problem(await client.post("/v1/accounts", json={"external_id": "z", "name": "Z"},
                                     headers=bearer(a.admin_token)), 403)
    assert_problem(await client.get("/v1/api-keys", headers=bearer(a.admin_token)), 403)
    assert_problem(await client.get("/v1/me", headers=bearer(key)), 403)


async def test_session_tokens_expire_and_detect_tampering(
    client: AsyncTestClient[Any], key: str, clock: FrozenClock,
) -> None:
    from datetime import timedelta

    t = await make_tenant(client, key, "alpha")
    header, payload, sig = t.user_token.split(".")
    forged = ".".join([header, payload, sig[:-3] + ("AAA" if not sig.endswith("AAA") else "BBB")])
    assert_problem(await client.get("/v1/me", headers=bearer(forged)), 401)
    clock.advance(timedelta(seconds=901))
    body = assert_problem(await client.get("/v1/me", headers=bearer(t.user_token)), 401)
    assert "expired" in body["detail"]


async def test_token_for_another_audience_is_rejected(
    client: AsyncTestClient[Any], key: str, clock: FrozenClock, settings: Any,
) -> None:
    from datetime import timedelta

    from app import tokens

    await make_tenant(client, key, "alpha")
    me = (await client.get("/v1/accounts/alpha/users/alpha-user", headers=bearer(key))).json()
    acct = (await client.get("/v1/accounts/alpha", headers=bearer(key))).json()
    token, _ = tokens.mint(secret=settings.token_secret, audience="someone-else", account_id=acct["id"],
                           user_id=me["id"], roles=("admin",), now=clock.now(), ttl=timedelta(minutes=5),
                           generation=0)
    body = assert_problem(await client.get("/v1/me", headers=bearer(token)), 401)
    assert "audience" in body["detail"]


async def test_session_token_for_unknown_user_or_wrong_account_is_404(client: AsyncTestClient[Any], key: str) -> None:
    await make_tenant(client, key, "alpha")
    await make_tenant(client, key, "beta")
    r = await client.post("/v1/session-tokens", json={"account": "beta", "user": "alpha-user"}, headers=bearer(key))
    assert_problem(r, 404)
    r = await client.post("/v1/session-tokens", json={"account": "alpha", "user": "ghost"}, headers=bearer(key))
    assert_problem(r, 404)


async def test_mutations_are_audited_with_actor_and_before_after(client: AsyncTestClient[Any], key: str) -> None:
    t = await make_tenant(client, key, "alpha")
    await make_account(client, key, "alpha", name="Alpha Renamed")
    log = (await client.get("/v1/accounts/alpha/audit-log", headers=bearer(t.admin_token))).json()["data"]
    actions = [e["action"] for e in log]
    assert actions[0] == "account.updated" and "account.created" in actions and "user.created" in actions
    renamed = log[0]
    assert renamed["before"]["name"] == "Alpha" and renamed["after"]["name"] == "Alpha Renamed"
    assert renamed["actor"].startswith("key:key_")
    # an end user may not read it; another account's admin sees 404
    assert_problem(await client.get("/v1/accounts/alpha/audit-log", headers=bearer(t.user_token)), 403)
    b = await make_tenant(client, key, "beta")
    assert_problem(await client.get("/v1/accounts/alpha/audit-log", headers=bearer(b.admin_token)), 404)


async def test_forged_cursors_are_rejected_not_crashing(client: AsyncTestClient[Any], key: str) -> None:
    import base64

    for raw in (b"a\x00b", b"\xff\xfe", b"x" * 500):
        cursor = base64.urlsafe_b64encode(raw).decode()
        assert_problem(await client.get("/v1/accounts", params={"cursor": cursor}, headers=bearer(key)), 400)
