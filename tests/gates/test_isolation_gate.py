"""Tenant isolation and auth coverage over every route; each gate is also shown to fail on a broken route."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar, get, post
from litestar.params import FromPath
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from app.accounts import service as accounts
from app.accounts.models import Account
from app.accounts.schemas import AccountRead
from app.asgi import create_app
from app.auth import UserPrincipal
from app.clock import FrozenClock
from app.deps import CurrentPrincipal, DbSession
from app.errors import NotFound
from app.params import AccountRef
from app.scopes import SCOPES
from app.settings import Settings
from tests.factories import apply_demo_catalog, bearer, make_key, make_tenant
from tests.gates.isolation import (
    World,
    check_auth_coverage,
    check_isolation,
    check_key_minting,
    required_query_params,
)
from tests.stripe_server import widget_saves_card


async def build_world(client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock) -> World:
    await apply_demo_catalog(sessionmaker, clock)
    key = await make_key(sessionmaker, clock)
    a = await make_tenant(client, key, "alpha")
    b = await make_tenant(client, key, "beta")
    without: dict[str, str] = {}
    for scope in SCOPES:
        without[scope] = await make_key(sessionmaker, clock, scopes=",".join(sorted(set(SCOPES) - {scope})))
    acc = (await client.get("/v1/accounts/alpha", headers=bearer(key))).json()
    users = (await client.get("/v1/accounts/alpha/users", headers=bearer(key))).json()["data"]
    victim = await _bound_key(client, key, "alpha-victim-key", a.account, scopes=["accounts:read"])
    budget = (await client.post("/v1/accounts/alpha/budgets", json={"name": "Alpha secret budget",
              "currency": "USD", "amount_minor": 777_777}, headers=bearer(key))).json()
    card = await widget_saves_card(client, bearer(key), a.user)
    purchase = await _pending_purchase(client, key, a, sessionmaker)
    shown = (await client.post("/v1/suggestions", json={"user": a.user, "trigger": {
        "kind": "feature_denied", "feature": "pdf_export"}}, headers=bearer(key))).json()["data"]
    if shown:  # (empty when A's user falls in the holdout: the gate then uses a well-formed unknown id)
        purchase["suggestion_id"] = shown[0]["id"]
    # a real grant (a seat pool) of A, so the grant routes are tried against an object that exists
    pool = (await client.post(f"/v1/accounts/{a.account}/grants", headers=bearer(key), json={
        "module": "nl_query", "source_ref": "gate-pool", "seats": 5})).json()
    console = await _console_session(client, key, b.account, b.admin)
    secrets = [acc["id"], acc["name"], *[u["id"] for u in users], budget["id"], budget["name"], "777777",
               victim["name"]]
    return World(
        a_account=a.account, a_user=a.user, a_admin=a.admin, b_admin_token=b.admin_token,
        b_user_token=b.user_token, all_scopes_key=key, key_without=without.__getitem__, a_secrets=secrets,
        b_account=b.account, b_bound_key=(await _bound_key(client, key, "beta-bound", b.account))["secret"],
        read_only_key=await make_key(sessionmaker, clock, scopes=",".join(s for s in SCOPES if s.endswith(":read"))),
        keys_write_key=await make_key(sessionmaker, clock, scopes="keys:write"),
        revoke_target=await make_key(sessionmaker, clock, name="revoke-target"),
        b_admin_console=console,
        extra={"key_id": victim["id"], "budget_id": budget["id"], "payment_method_id": card, "grant_id": pool["id"],
               **purchase})


async def _console_session(client: AsyncTestClient[Any], key: str, account: str, admin: str) -> tuple[str, str]:
    """The admin signed in to the admin console by a one-time link: its cookie and CSRF token (the client keeps
    no cookie: every other call of the gate carries only what it means to)."""
    import re

    path = (await client.post("/v1/console-links", json={"console": "admin", "account": account, "user": admin},
                              headers=bearer(key))).json()["path"]
    r = await client.post("/admin/sign-in", data={"token": path.split("token=")[1]}, follow_redirects=False)
    cookie = r.cookies["commerce_console"]
    page = await client.get("/admin/budgets", headers={"Cookie": f"commerce_console={cookie}"})
    client.cookies.clear()
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert csrf is not None, page.text
    return cookie, csrf.group(1)


async def _bound_key(client: AsyncTestClient[Any], key: str, name: str, account: str,
                     scopes: list[str] | None = None) -> dict[str, Any]:
    """A vendor key bound to one account (every scope unless told), made through the API."""
    r = await client.post("/v1/api-keys", json={"name": name, "scopes": scopes or ["all"], "accounts": [account]},
                          headers=bearer(key))
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _pending_purchase(client: AsyncTestClient[Any], key: str, a: Any, sessionmaker: Any) -> dict[str, str]:
    """A quote, an order waiting for approval and its approval request, all in account A."""
    await client.put("/v1/accounts/alpha/guardrails", json={"auto_approve_limit_minor": 0}, headers=bearer(key))
    q = (await client.post("/v1/quotes", json={"user": a.user, "items": [{"module": "reports_basic"}]},
                           headers=bearer(key))).json()
    q2 = (await client.post("/v1/quotes", json={"user": a.user, "items": [{"module": "comments"}]},
                            headers=bearer(key))).json()
    o = (await client.post("/v1/orders", json={"quote_id": q["id"]},
                           headers={**bearer(key), "Idempotency-Key": "gate-world"})).json()
    return {"quote_id": q2["id"], "order_id": o["id"], "approval_id": o["approval_id"],
            "subscription_id": await _subscription(sessionmaker, o["id"])}


async def _subscription(sessionmaker: Any, order_id: str) -> str:
    """A subscription of A's (rows as a fulfilled recurring order would leave them)."""
    from datetime import UTC, datetime

    from billing.models import Order, Subscription

    at = datetime(2026, 12, 1, tzinfo=UTC)
    async with sessionmaker() as session, session.begin():
        order = await session.scalar(select(Order).where(Order.order_id == order_id))
        sub = Subscription(account_id=order.account_id, subscription_id="sub_" + "1" * 26, order_id=order_id,
                           user_id=order.user_id, module="reports_basic", route="budget", price_id="price_x",
                           interval="month", per_seat=True, quantity=1, unit_amount_minor=900, currency="USD",
                           line=order.lines[0], status="active", current_period_start=at, current_period_end=at,
                           grace_until=None, dunning_attempts=0, next_attempt_at=None, last_order_id=order_id,
                           created_at=at, updated_at=at, ended_at=None)
        session.add(sub)
    return sub.subscription_id


def _required_query(app: Litestar) -> dict[tuple[str, str], list[str]]:
    return required_query_params(app.openapi_schema.to_schema())


async def test_every_route_keeps_accounts_apart(client: AsyncTestClient[Any], app: Litestar, sessionmaker: Any,
                                                clock: FrozenClock) -> None:
    world = await build_world(client, sessionmaker, clock)
    problems = await check_isolation(client, app, world, _required_query(app))
    assert problems == [], "\n".join(problems)


async def test_no_key_mints_beyond_its_scopes_or_accounts(client: AsyncTestClient[Any], sessionmaker: Any,
                                                          clock: FrozenClock) -> None:
    world = await build_world(client, sessionmaker, clock)
    problems = await check_key_minting(client, world)
    assert problems == [], "\n".join(problems)


async def test_every_route_requires_authentication(client: AsyncTestClient[Any], app: Litestar) -> None:
    problems = await check_auth_coverage(client, app)
    assert problems == [], "\n".join(problems)


# --- the gates fail on deliberately broken routes -------------------------------------------------------------

@get("/v1/broken/leaky/{account:str}", opt={"scope": "accounts:read", "user_access": "admin", "owner": "account"},
     summary="leaks another account")
async def leaky(db_session: DbSession, account: AccountRef) -> AccountRead:
    found = await accounts.get_account(db_session, account)  # no tenancy check: the bug the gate must catch
    assert found is not None
    return accounts.account_read(found)


@get("/v1/broken/undeclared", opt={"scope": "accounts:read"}, summary="no owner declared")
async def undeclared() -> dict[str, str]:
    return {}


@get("/v1/broken/open", opt={"public": True, "owner": "public"}, summary="public by mistake")
async def wide_open() -> dict[str, str]:
    return {"secret": "everyone can read this"}


@get("/v1/broken/unknown/{widget_id:str}", opt={"scope": "accounts:read", "owner": "account"}, summary="unknown param")
async def unknown_param(widget_id: FromPath[str]) -> dict[str, str]:
    return {}


@get("/v1/broken/forgetful/{account:str}",
     opt={"scope": "accounts:read", "user_access": "admin", "owner": "account"}, summary="forgets bound keys")
async def forgetful(db_session: DbSession, principal: CurrentPrincipal, account: AccountRef) -> AccountRead:
    found = await accounts.get_account(db_session, account)
    # the bug the bound-key walk must catch: the old check, which compares session-token accounts only
    if found is None or (isinstance(principal, UserPrincipal) and found.account_id != principal.account_id):
        raise NotFound(f"Account {account!r} does not exist.")
    return accounts.account_read(found)


@get("/v1/broken/every-account", opt={"scope": "accounts:read", "owner": "vendor", "bound_keys": True},
     summary="claims to narrow to a bound key's accounts but does not")
async def every_account(db_session: DbSession) -> list[AccountRead]:
    return [accounts.account_read(a) for a in await db_session.scalars(select(Account))]


@post("/v1/broken/read-scoped-write", opt={"scope": "accounts:read", "owner": "vendor"}, status_code=200,
      summary="a change guarded by a read scope")
async def read_scoped_write() -> dict[str, str]:
    return {"changed": "yes"}


@pytest.fixture
async def broken(settings: Settings, clock: FrozenClock) -> Any:
    routes = [leaky, undeclared, wide_open, unknown_param, forgetful, every_account, read_scoped_write]
    app = create_app(settings, clock=clock, extra_route_handlers=routes)
    async with AsyncTestClient(app=app) as c:
        yield app, c


async def test_isolation_gate_catches_leaks_and_missing_declarations(broken: Any, sessionmaker: Any,
                                                                    clock: FrozenClock) -> None:
    app, client = broken
    world = await build_world(client, sessionmaker, clock)
    problems = await check_isolation(client, app, world, _required_query(app))
    text = "\n".join(problems)
    assert "GET /v1/broken/leaky/{account}: B's admin got 200" in text
    assert "received account A's data" in text
    assert "GET /v1/broken/undeclared: declare opt['owner']" in text
    assert "parameter 'widget_id' has no entry in PARAM_VALUES" in text
    assert all("/v1/broken/" in p for p in problems), text  # the real routes stay clean


async def test_isolation_gate_catches_routes_that_forget_bound_keys_or_guard_writes_with_read_scopes(
        broken: Any, sessionmaker: Any, clock: FrozenClock) -> None:
    app, client = broken
    world = await build_world(client, sessionmaker, clock)
    problems = await check_isolation(client, app, world, _required_query(app))
    text = "\n".join(problems)
    forgetful_route = "GET /v1/broken/forgetful/{account}"
    assert f"{forgetful_route}: B's bound key got 200, expected one of [404]" in text
    assert f"{forgetful_route}: B's bound key received account A's data" in text
    assert not any(p.startswith(forgetful_route) and "B's bound key" not in p for p in problems), text
    assert "GET /v1/broken/every-account: B's bound key received account A's data" in text
    assert "POST /v1/broken/read-scoped-write: a mutation guarded by the read scope 'accounts:read'" in text
    assert "POST /v1/broken/read-scoped-write: a read-only key got 200, expected 403" in text


async def test_auth_gate_catches_a_route_without_auth(broken: Any) -> None:
    app, client = broken
    problems = await check_auth_coverage(client, app)
    assert problems == ["GET /v1/broken/open: is public but not in PUBLIC_ALLOWLIST; require a scope instead"]


async def test_minting_gate_catches_keys_that_hand_out_more_than_they_hold(
        client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch) -> None:
    from app import keys

    world = await build_world(client, sessionmaker, clock)
    # the rules switched off, as a regression would: every key may grant and revoke anything it can see
    monkeypatch.setattr(keys, "check_grantable", lambda *args, **kwargs: None)
    monkeypatch.setattr(keys, "check_revocable", lambda *args, **kwargs: None)
    text = "\n".join(await check_key_minting(client, world))
    assert """POST /v1/api-keys {"name": "up", "scopes": ["all"]} as a keys:write-only key: got 201""" in text
    assert """POST /v1/api-keys {"name": "g", "scopes": ["accounts:read"]} as B's bound key: got 201""" in text
    assert "/revoke null as a keys:write-only key: got 200, expected 403" in text
    assert "refused minting still created keys ['g', 'up']" in text
