"""Tenant isolation and auth coverage over every route; each gate is also shown to fail on a broken route."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar, get
from litestar.params import FromPath
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from app.accounts import service as accounts
from app.accounts.schemas import AccountRead
from app.asgi import create_app
from app.clock import FrozenClock
from app.deps import DbSession
from app.params import AccountRef
from app.scopes import SCOPES
from app.settings import Settings
from tests.factories import apply_demo_catalog, bearer, make_key, make_tenant
from tests.gates.isolation import World, check_auth_coverage, check_isolation, required_query_params
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
    created = (await client.post("/v1/api-keys", json={"name": "victim", "scopes": ["accounts:read"]},
                                 headers=bearer(key))).json()
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
    secrets = [acc["id"], acc["name"], *[u["id"] for u in users], budget["id"], budget["name"], "777777"]
    return World(a_account=a.account, a_user=a.user, a_admin=a.admin, b_admin_token=b.admin_token,
                 b_user_token=b.user_token, all_scopes_key=key, key_without=without.__getitem__,
                 a_secrets=secrets, extra={"key_id": created["id"], "budget_id": budget["id"],
                                           "payment_method_id": card, "grant_id": pool["id"], **purchase})


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


@pytest.fixture
async def broken(settings: Settings, clock: FrozenClock) -> Any:
    app = create_app(settings, clock=clock, extra_route_handlers=[leaky, undeclared, wide_open, unknown_param])
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
    assert not any("/v1/accounts" in p for p in problems), text


async def test_auth_gate_catches_a_route_without_auth(broken: Any) -> None:
    app, client = broken
    problems = await check_auth_coverage(client, app)
    assert problems == ["GET /v1/broken/open: is public but not in PUBLIC_ALLOWLIST; require a scope instead"]
