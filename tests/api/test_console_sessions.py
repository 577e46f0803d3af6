"""Console sign-in: one-time links, the cookie session (CSRF, idle and absolute expiry, revocation), and what a
console session may reach: exactly what the same principal may reach through the API."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.clock import FrozenClock
from tests.api.test_auth import assert_problem
from tests.factories import bearer, make_key, make_tenant, make_user


@pytest.fixture
async def key(sessionmaker: Any, clock: FrozenClock) -> str:
    return await make_key(sessionmaker, clock)


async def link(client: AsyncTestClient[Any], key: str, **body: str) -> str:
    r = await client.post("/v1/console-links", json=body, headers=bearer(key))
    assert r.status_code == 201, r.text
    assert r.json()["url"].endswith(r.json()["path"])
    return str(r.json()["path"])


async def sign_in(client: AsyncTestClient[Any], path: str) -> str:
    """Open the link, press Sign in; returns the page's CSRF token."""
    page = await client.get(path)
    assert page.status_code == 200 and "Sign in" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"  # the token in the URL never leaks onward
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert token is not None
    r = await client.post(path.split("?")[0], data={"token": token.group(1)}, follow_redirects=False)
    assert r.status_code == 303, r.text
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Path=/" in cookie
    home = await client.get(r.headers["location"])
    assert home.status_code == 200, home.text
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', home.text)
    assert csrf is not None
    assert "script-src 'self'" in home.headers["content-security-policy"]
    return csrf.group(1)


async def test_admin_link_signs_in_once_and_the_cookie_acts_as_that_admin(client: AsyncTestClient[Any],
                                                                            key: str) -> None:
    t = await make_tenant(client, key, "alpha")
    path = await link(client, key, console="admin", account="alpha", user=t.admin)
    csrf = await sign_in(client, path)
    assert (await client.get("/v1/accounts/alpha/budgets")).status_code == 200
    r = await client.post("/v1/accounts/alpha/budgets", json={"name": "Team", "currency": "USD", "amount_minor": 1000},
                          headers={"X-CSRF-Token": csrf, "Idempotency-Key": "b1"})
    assert r.status_code == 201, r.text
    audit = (await client.get("/v1/accounts/alpha/audit-log", headers=bearer(key))).json()["data"]
    assert {"console.link_created", "console.signed_in", "budget.created"} <= {e["action"] for e in audit}
    # the same link a second time: refused
    client.cookies.clear()
    token = path.split("token=")[1]
    again = await client.post("/admin/sign-in", data={"token": token}, follow_redirects=False)
    assert again.status_code == 401 and "already used" in again.text


async def test_a_change_without_the_csrf_token_is_refused(client: AsyncTestClient[Any], key: str) -> None:
    t = await make_tenant(client, key, "alpha")
    await sign_in(client, await link(client, key, console="admin", account="alpha", user=t.admin))
    body = {"name": "Team", "currency": "USD", "amount_minor": 1000}
    for headers in ({"Idempotency-Key": "b1"}, {"Idempotency-Key": "b2", "X-CSRF-Token": "forged"}):
        problem = assert_problem(await client.post("/v1/accounts/alpha/budgets", json=body, headers=headers), 403)
        assert "CSRF" in problem["detail"]
    assert (await client.get("/v1/accounts/alpha/budgets")).json()["data"] == []


async def test_admin_session_reaches_neither_another_account_nor_vendor_pages(client: AsyncTestClient[Any],
                                                                             key: str) -> None:
    t = await make_tenant(client, key, "alpha")
    await make_tenant(client, key, "beta")
    csrf = await sign_in(client, await link(client, key, console="admin", account="alpha", user=t.admin))
    assert_problem(await client.get("/v1/accounts/beta/budgets"), 404)
    assert_problem(await client.get("/v1/accounts/beta/approvals"), 404)
    assert_problem(await client.post("/v1/catalog/plan", json={"toml": "format = 1"},
                                     headers={"X-CSRF-Token": csrf}), 403)
    assert_problem(await client.get("/v1/suggestions/stats"), 403)
    assert (await client.get("/admin/budgets?account=beta")).status_code == 403
    for page in ("/console/catalog", "/console/availability", "/console/webhooks"):
        r = await client.get(page)
        assert r.status_code == 403 and "vendor" in r.text


async def test_vendor_session_reaches_every_account_and_acts_as_staff(client: AsyncTestClient[Any], key: str) -> None:
    await make_tenant(client, key, "alpha")
    await make_tenant(client, key, "beta")
    await sign_in(client, await link(client, key, console="vendor", email="sam@vendor.test"))
    assert (await client.get("/console/availability")).status_code == 200
    for account in ("alpha", "beta"):
        assert (await client.get(f"/v1/accounts/{account}/budgets")).status_code == 200
        page = await client.get(f"/admin/budgets?account={account}")
        assert page.status_code == 200 and f'content="{account}"' in page.text
    assert (await client.get("/v1/suggestions/stats")).status_code == 200
    audit = (await client.get("/v1/audit-log", headers=bearer(key))).json()["data"]
    assert any(e["action"] == "console.signed_in" and e["actor"] == "staff:sam@vendor.test" for e in audit)


async def test_only_admins_get_admin_links_and_vendor_links_need_an_email(client: AsyncTestClient[Any],
                                                                        key: str) -> None:
    t = await make_tenant(client, key, "alpha")
    assert_problem(await client.post("/v1/console-links", json={"console": "admin", "account": "alpha", "user": t.user},
                                      headers=bearer(key)), 422, "not_an_admin")
    assert_problem(await client.post("/v1/console-links", json={"console": "vendor"}, headers=bearer(key)), 400)
    bound = (await client.post("/v1/api-keys", json={"name": "b", "scopes": ["all"], "accounts": ["alpha"]},
                               headers=bearer(key))).json()["secret"]
    assert_problem(await client.post("/v1/console-links", json={"console": "vendor", "email": "x@vendor.test"},
                                     headers=bearer(bound)), 403)
    assert_problem(await client.post("/v1/console-links", json={"console": "admin", "account": "alpha",
                                                                 "user": t.admin}, headers=bearer(t.admin_token)), 403)


async def test_links_and_sessions_expire_by_the_clock(client: AsyncTestClient[Any], key: str,
                                                      clock: FrozenClock) -> None:
    t = await make_tenant(client, key, "alpha")
    late = await link(client, key, console="admin", account="alpha", user=t.admin)
    clock.advance(timedelta(minutes=16))  # links live 15 minutes by default
    r = await client.post("/admin/sign-in", data={"token": late.split("token=")[1]}, follow_redirects=False)
    assert r.status_code == 401
    await sign_in(client, await link(client, key, console="admin", account="alpha", user=t.admin))
    clock.advance(timedelta(minutes=29))
    assert (await client.get("/v1/accounts/alpha/budgets")).status_code == 200  # used: the idle timer restarts
    clock.advance(timedelta(minutes=29))
    assert (await client.get("/v1/accounts/alpha/budgets")).status_code == 200
    clock.advance(timedelta(minutes=31))  # idle longer than 30 minutes
    body = assert_problem(await client.get("/v1/accounts/alpha/budgets"), 401, "console_session_invalid")
    assert "ended" in body["detail"]
    page = await client.get("/admin/budgets")
    assert page.status_code == 401 and "console link" in page.text


async def test_revoking_the_admins_tokens_or_demoting_them_ends_the_console_session(
        client: AsyncTestClient[Any], key: str) -> None:
    t = await make_tenant(client, key, "alpha")
    await sign_in(client, await link(client, key, console="admin", account="alpha", user=t.admin))
    r = await client.post(f"/v1/accounts/alpha/users/{t.admin}/revoke-tokens", headers=bearer(key))
    assert r.status_code == 200
    assert_problem(await client.get("/v1/accounts/alpha/budgets"), 401, "console_session_invalid")
    await sign_in(client, await link(client, key, console="admin", account="alpha", user=t.admin))
    assert (await client.get("/v1/accounts/alpha/budgets")).status_code == 200
    await make_user(client, key, "alpha", t.admin, roles=["analyst"])
    assert_problem(await client.get("/v1/accounts/alpha/budgets"), 401, "console_session_invalid")


async def test_sign_out_ends_the_session(client: AsyncTestClient[Any], key: str) -> None:
    t = await make_tenant(client, key, "alpha")
    csrf = await sign_in(client, await link(client, key, console="admin", account="alpha", user=t.admin))
    cookie = client.cookies.get("commerce_console")
    r = await client.post("/console-sign-out", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console-signed-out"
    client.cookies.set("commerce_console", cookie or "")  # a copy of the old cookie does not work either
    assert_problem(await client.get("/v1/accounts/alpha/budgets"), 401, "console_session_invalid")
