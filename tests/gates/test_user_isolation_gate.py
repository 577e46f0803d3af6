"""User isolation over every route inside one account; the gate is also shown to fail on routes that forget it."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar, get
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from app.accounts import resolve_user
from app.asgi import create_app
from app.auth import UserPrincipal
from app.clock import FrozenClock
from app.deps import CurrentPrincipal, DbSession
from app.errors import NotFound
from app.params import AccountRef, UserRef
from app.settings import Settings
from billing.models import Approval, Order
from billing.routes._params import ApprovalId, OrderId
from billing.schemas import ApprovalRead
from billing.service import approval_read
from tests.factories import bearer, make_user, session_token
from tests.gates.test_isolation_gate import _required_query, build_world
from tests.gates.user_isolation import PeerWorld, check_user_isolation

Y_REASON = "Y's private reason: the board deck"


async def build_peer_world(client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock) -> PeerWorld:
    """The isolation world, plus Y's own approval with a reason and Y's own grant, and end user X beside Y."""
    world = await build_world(client, sessionmaker, clock)
    key, account, y = world.all_scopes_key, world.a_account, world.a_user
    await make_user(client, key, account, y, roles=["analyst"], email="y-private@alpha.test")
    quote = (await client.post("/v1/quotes", json={"user": y, "items": [{"module": "chat_alerts"}]},
                               headers=bearer(key))).json()
    order = (await client.post("/v1/orders", json={"quote_id": quote["id"], "reason": Y_REASON},
                               headers={**bearer(key), "Idempotency-Key": "gate-y"})).json()
    assert order["state"] == "pending_approval", order
    grant = (await client.post(f"/v1/accounts/{account}/grants", headers=bearer(key), json={
        "module": "comments", "source_ref": "gate-y", "user": y})).json()
    ys = ("quote_id", "order_id", "approval_id", "subscription_id", "payment_method_id", "suggestion_id")
    secrets = [world.extra[k] for k in ys if k in world.extra]  # Y's first order and approval stay secrets too
    world.extra.update(order_id=order["id"], approval_id=order["approval_id"], grant_id=grant["id"])
    await make_user(client, key, account, "alpha-peer", roles=["analyst"])
    y_row = (await client.get(f"/v1/accounts/{account}/users/{y}", headers=bearer(key))).json()
    secrets += [y, y_row["id"], "y-private@alpha.test", Y_REASON, quote["id"], order["id"], order["approval_id"],
                grant["id"]]
    return PeerWorld(world=world, x_user="alpha-peer", x_token=await session_token(client, key, account, "alpha-peer"),
                     y_secrets=secrets)


async def test_every_route_keeps_users_of_one_account_apart(client: AsyncTestClient[Any], app: Litestar,
                                                            sessionmaker: Any, clock: FrozenClock) -> None:
    peers = await build_peer_world(client, sessionmaker, clock)
    problems = await check_user_isolation(client, app, peers, _required_query(app))
    assert problems == [], "\n".join(problems)


# --- the gate fails on routes that forget the per-user check -------------------------------------------------

@get("/v1/broken/approvals/{approval_id:str}", opt={"scope": "commerce:read", "user_access": "self",
                                                     "owner": "account"}, summary="any user of the account reads it")
async def peek_approval(db_session: DbSession, principal: CurrentPrincipal, approval_id: ApprovalId) -> ApprovalRead:
    assert isinstance(principal, UserPrincipal)
    approval = await db_session.scalar(select(Approval).where(  # the account is checked, the user is not
        Approval.approval_id == approval_id, Approval.account_id == principal.account_id))
    assert approval is not None
    return await approval_read(db_session, approval)


@get("/v1/broken/orders-of/{account:str}", opt={"scope": "commerce:read", "user_access": "self", "owner": "account"},
     summary="an admin listing opened to end users")
async def every_order(db_session: DbSession, principal: CurrentPrincipal, account: AccountRef) -> list[str]:
    assert isinstance(principal, UserPrincipal)
    return list((await db_session.scalars(select(Order.order_id).where(
        Order.account_id == principal.account_id))).all())


@get("/v1/broken/orders/{order_id:str}/status", opt={"scope": "commerce:read", "user_access": "self",
                                                     "owner": "user"}, summary="checks the user, not the order's")
async def order_status(db_session: DbSession, principal: CurrentPrincipal, order_id: OrderId,
                       user: UserRef) -> dict[str, str]:
    who = await resolve_user(db_session, principal, user)  # the named user must be the caller: checked
    order = await db_session.scalar(select(Order).where(  # ... but not that the order is that user's
        Order.account_id == who.account_id, Order.order_id == order_id))
    if order is None:
        raise NotFound("no such order")
    return {"state": order.state, "owner": order.user_id}


@pytest.fixture
async def broken(settings: Settings, clock: FrozenClock) -> Any:
    app = create_app(settings, clock=clock, extra_route_handlers=[peek_approval, every_order, order_status])
    async with AsyncTestClient(app=app) as c:
        yield app, c


async def test_user_isolation_gate_catches_routes_that_forget_the_user(broken: Any, sessionmaker: Any,
                                                                      clock: FrozenClock) -> None:
    app, client = broken
    peers = await build_peer_world(client, sessionmaker, clock)
    problems = await check_user_isolation(client, app, peers, _required_query(app))
    text = "\n".join(problems)
    assert "GET /v1/broken/approvals/{approval_id}: A's other end user got 200" in text
    assert "GET /v1/broken/approvals/{approval_id}: A's other end user received user Y's data" in text
    assert Y_REASON in text
    assert "GET /v1/broken/orders-of/{account}: A's other end user got 200" in text
    assert "GET /v1/broken/orders-of/{account}: A's other end user received user Y's data" in text
    status = "GET /v1/broken/orders/{order_id}/status"
    assert f"{status}: A's other end user got 404" not in text  # naming Y, the user check holds
    assert f"{status}: A's other end user naming itself got 200" in text
    assert f"{status}: A's other end user naming itself received user Y's data" in text
    assert all(p.startswith("GET /v1/broken/") for p in problems), text
