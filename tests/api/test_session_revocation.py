"""Session token revocation: a role change or revoke-tokens ends a user's earlier tokens in every process at once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import event

from app import tokens
from app.asgi import create_app
from app.clock import FrozenClock, SystemClock
from app.settings import Settings
from tests.api.test_auth import assert_problem
from tests.api.test_catalog import seed_demo
from tests.factories import bearer, make_key, make_tenant, make_user, session_token
from tests.support.live_server import live_server

REVOKE = "/v1/accounts/{account}/users/{user}/revoke-tokens"


@pytest.fixture
async def key(sessionmaker: Any, clock: FrozenClock) -> str:
    return await make_key(sessionmaker, clock)


async def test_demoted_admin_token_is_refused_at_once(client: AsyncTestClient[Any], key: str) -> None:
    t = await make_tenant(client, key, "alpha")
    assert (await client.get("/v1/accounts/alpha/users", headers=bearer(t.admin_token))).status_code == 200  # warm
    await make_user(client, key, "alpha", "alpha-admin", roles=["analyst"])  # the vendor demotes the admin
    for path in ("/v1/accounts/alpha/users", "/v1/me"):
        body = assert_problem(await client.get(path, headers=bearer(t.admin_token)), 401, "unauthorized")
        assert "revoked" in body["detail"] and "new one" in body["detail"]
    assert (await client.get("/v1/me", headers=bearer(t.user_token))).status_code == 200  # others keep theirs
    fresh = await session_token(client, key, "alpha", "alpha-admin")
    me = (await client.get("/v1/me", headers=bearer(fresh))).json()
    assert me["roles"] == ["analyst"] and me["is_admin"] is False
    assert_problem(await client.get("/v1/accounts/alpha/users", headers=bearer(fresh)), 403)


async def test_upsert_without_a_role_change_keeps_the_tokens(client: AsyncTestClient[Any], key: str) -> None:
    t = await make_tenant(client, key, "alpha")
    await make_user(client, key, "alpha", "alpha-admin", roles=["admin"], email="new@alpha.test")
    assert (await client.get("/v1/accounts/alpha/users", headers=bearer(t.admin_token))).status_code == 200
    audit = (await client.get("/v1/accounts/alpha/audit-log", headers=bearer(key))).json()["data"]
    assert "user.tokens_revoked" not in {e["action"] for e in audit}


async def test_revoke_tokens_refuses_earlier_tokens_and_a_new_token_works(
    client: AsyncTestClient[Any], key: str, sessionmaker: Any, clock: FrozenClock,
) -> None:
    t = await make_tenant(client, key, "alpha")
    other = await session_token(client, key, "alpha", "alpha-user")  # two tokens of one user: both end
    sessions_key = await make_key(sessionmaker, clock, scopes="sessions:write")
    assert (await client.get("/v1/me", headers=bearer(t.user_token))).status_code == 200
    r = await client.post(REVOKE.format(account="alpha", user="alpha-user"), headers=bearer(sessions_key))
    assert r.status_code == 200, r.text
    assert r.json() == {"account": "alpha", "user": "alpha-user", "revoked_at": "2026-11-23T12:00:00Z"}
    for token in (t.user_token, other):
        assert "revoked" in assert_problem(await client.get("/v1/me", headers=bearer(token)), 401)["detail"]
    fresh = await session_token(client, key, "alpha", "alpha-user")
    assert (await client.get("/v1/me", headers=bearer(fresh))).json()["user"] == "alpha-user"
    assert (await client.get("/v1/me", headers=bearer(t.admin_token))).status_code == 200
    audit = (await client.get("/v1/accounts/alpha/audit-log", headers=bearer(key))).json()["data"]
    entry = next(e for e in audit if e["action"] == "user.tokens_revoked")
    assert entry["target_id"] == "alpha-user" and entry["actor"].startswith("key:")


async def test_revoke_tokens_needs_the_sessions_scope(client: AsyncTestClient[Any], key: str, sessionmaker: Any,
                                                      clock: FrozenClock) -> None:
    t = await make_tenant(client, key, "alpha")
    accounts_key = await make_key(sessionmaker, clock, scopes="accounts:read,accounts:write")
    r = await client.post(REVOKE.format(account="alpha", user="alpha-user"), headers=bearer(accounts_key))
    assert assert_problem(r, 403)["required_scope"] == "sessions:write"
    assert (await client.get("/v1/me", headers=bearer(t.user_token))).status_code == 200


async def test_customer_admin_revokes_its_users_and_an_end_user_only_itself(
    client: AsyncTestClient[Any], key: str,
) -> None:
    t = await make_tenant(client, key, "alpha")
    await make_user(client, key, "alpha", "alpha-peer", roles=["analyst"])
    peer = await session_token(client, key, "alpha", "alpha-peer")
    r = await client.post(REVOKE.format(account="alpha", user="alpha-user"), headers=bearer(peer))
    assert_problem(r, 404)
    assert (await client.get("/v1/me", headers=bearer(t.user_token))).status_code == 200
    r = await client.post(REVOKE.format(account="alpha", user="alpha-user"), headers=bearer(t.admin_token))
    assert r.status_code == 200
    assert_problem(await client.get("/v1/me", headers=bearer(t.user_token)), 401)
    r = await client.post(REVOKE.format(account="alpha", user="alpha-peer"), headers=bearer(peer))  # sign out
    assert r.status_code == 200
    assert_problem(await client.get("/v1/me", headers=bearer(peer)), 401)
    assert (await client.get("/v1/me", headers=bearer(t.admin_token))).status_code == 200


async def test_another_account_cannot_revoke_tokens(client: AsyncTestClient[Any], key: str) -> None:
    a = await make_tenant(client, key, "alpha")
    b = await make_tenant(client, key, "beta")
    for path in (REVOKE.format(account="alpha", user="alpha-user"), REVOKE.format(account="beta", user="alpha-user")):
        for token in (b.admin_token, b.user_token):
            assert_problem(await client.post(path, headers=bearer(token)), 404)
    # the vendor naming a user under the wrong account is a 404 too
    assert_problem(await client.post(REVOKE.format(account="beta", user="alpha-user"), headers=bearer(key)), 404)
    for token in (a.user_token, a.admin_token):
        assert (await client.get("/v1/me", headers=bearer(token))).status_code == 200


async def test_a_token_without_a_generation_counts_as_the_first_one(
    client: AsyncTestClient[Any], key: str, settings: Settings, clock: FrozenClock,
) -> None:
    await make_tenant(client, key, "alpha")
    user = (await client.get("/v1/accounts/alpha/users/alpha-user", headers=bearer(key))).json()
    account = (await client.get("/v1/accounts/alpha", headers=bearer(key))).json()
    now = int(clock.now().timestamp())
    legacy = jwt.encode({"iss": tokens.ISSUER, "aud": settings.token_audience, "sub": user["id"],
                         "acct": account["id"], "roles": ["analyst"], "iat": now, "exp": now + 600},
                        settings.token_secret, algorithm=tokens.ALGORITHM)  # minted before revocation existed
    assert (await client.get("/v1/me", headers=bearer(legacy))).status_code == 200
    await client.post(REVOKE.format(account="alpha", user="alpha-user"), headers=bearer(key))
    assert_problem(await client.get("/v1/me", headers=bearer(legacy)), 401)


async def test_a_warm_session_token_costs_no_sql(client: AsyncTestClient[Any], app: Litestar, key: str) -> None:
    await seed_demo(client, key)
    token = await session_token(client, key, "acme", "acme-ana")
    params = {"user": "acme-ana", "feature": "reports"}
    assert (await client.get("/v1/entitlements/check", params=params, headers=bearer(token))).status_code == 200
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "rate_limit_" not in statement:  # the limiter's lease refills and heartbeats are not the check's work
            statements.append(statement)

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(3):
            r = await client.get("/v1/entitlements/check", params=params, headers=bearer(token))
            assert r.status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert statements == []


async def test_revoke_tokens_reaches_another_process_through_notify(
    settings: Settings, sessionmaker: Any, tmp_path: Path,
) -> None:
    key = await make_key(sessionmaker, SystemClock())
    assert settings.database_url is not None
    # the other process caches generations for 5 minutes: only NOTIFY can tell it in time
    with live_server(settings.database_url, tmp_path / "other", settings.token_secret,
                     extra_env={"COMMERCE_SESSION_CACHE_SECONDS": "300"}) as other:
        async with AsyncTestClient(app=create_app(settings, clock=SystemClock())) as client, \
                httpx.AsyncClient(base_url=other, timeout=5) as b:  # both on real time
            t = await make_tenant(client, key, "alpha")
            assert (await b.get("/v1/me", headers=bearer(t.user_token))).status_code == 200  # warm over there
            r = await client.post(REVOKE.format(account="alpha", user="alpha-user"), headers=bearer(key))
            assert r.status_code == 200
            revoked_at = time.monotonic()
            while (await b.get("/v1/me", headers=bearer(t.user_token))).status_code != 401:
                assert time.monotonic() - revoked_at < 2.0, "the other process still accepts the revoked token"
                await asyncio.sleep(0.005)
            elapsed = time.monotonic() - revoked_at
            fresh = await session_token(client, key, "alpha", "alpha-user")
            assert (await b.get("/v1/me", headers=bearer(fresh))).status_code == 200
            assert (await b.get("/v1/me", headers=bearer(t.admin_token))).status_code == 200
    assert elapsed < 0.5, f"the other process refused the token only after {elapsed * 1000:.0f} ms"
