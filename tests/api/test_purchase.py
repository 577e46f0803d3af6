"""The in-workflow purchase on the budget route, end to end over HTTP: quote -> order -> fulfilled."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from app.clock import FrozenClock
from app.outbox import OutboxEvent
from billing.models import LedgerEntry, Order
from tests.api.test_auth import assert_problem
from tests.factories import Tenant, apply_demo_catalog, bearer, make_key, make_tenant, make_user, session_token

_keys = itertools.count()


def idem() -> dict[str, str]:
    return {"Idempotency-Key": f"test-{next(_keys)}"}


@pytest.fixture
async def key(sessionmaker: Any, clock: FrozenClock) -> str:
    await apply_demo_catalog(sessionmaker, clock)
    return await make_key(sessionmaker, clock)


@pytest.fixture
async def acme(client: AsyncTestClient[Any], key: str) -> Tenant:
    return await make_tenant(client, key, "acme")


async def budget(client: AsyncTestClient[Any], key: str, amount: int, account: str = "acme") -> dict[str, Any]:
    r = await client.post(f"/v1/accounts/{account}/budgets", json={"name": "Main", "currency": "USD",
                                                                   "amount_minor": amount}, headers=bearer(key))
    assert r.status_code == 201, r.text
    return dict(r.json())


async def quote(client: AsyncTestClient[Any], token: str, user: str, *modules: str, **extra: Any) -> dict[str, Any]:
    body = {"user": user, "items": [{"module": m} for m in modules], **extra}
    r = await client.post("/v1/quotes", json=body, headers=bearer(token))
    assert r.status_code == 201, r.text
    return dict(r.json())


async def order(client: AsyncTestClient[Any], token: str, quote_id: str, **headers: str) -> Any:
    return await client.post("/v1/orders", json={"quote_id": quote_id, "reason": "I need it for the Q4 report"},
                             headers={**bearer(token), **(headers or idem())})


async def test_quote_prorates_to_the_period_end_and_explains_the_route(client: AsyncTestClient[Any], key: str,
                                                                      acme: Tenant) -> None:
    q = await quote(client, acme.user_token, acme.user, "reports_basic")
    line = q["lines"][0]
    # 2026-11-23 12:00 UTC: 7.5 of November's 30 days remain -> 900 * 7.5 / 30 = 225
    assert (line["full_period_minor"], line["prorated_minor"], line["total_minor"]) == (900, 225, 225)
    assert line["period_end"].startswith("2026-12-01") and line["proration"] == "1/4"
    assert q["decision"]["route"] == "card" and any("no budget" in r for r in q["decision"]["reasons"])
    await budget(client, key, 100_000)
    q = await quote(client, acme.user_token, acme.user, "reports_basic")
    assert q["decision"] == {"route": "budget", "outcome": "auto_approved",
                             "reasons": ["Paid from your account's budget (1000.00 USD left)."]}


async def test_budget_purchase_is_captured_entitled_and_provisioned_once(
    client: AsyncTestClient[Any], key: str, acme: Tenant, sessionmaker: Any,
) -> None:
    b = await budget(client, key, 100_000)
    q = await quote(client, acme.user_token, acme.user, "reports_basic")
    denied = (await client.get("/v1/entitlements/check", params={"user": acme.user, "feature": "reports"},
                               headers=bearer(acme.user_token))).json()
    assert denied["allowed"] is False
    headers = idem()
    r1 = await order(client, acme.user_token, q["id"], **headers)
    r2 = await order(client, acme.user_token, q["id"], **headers)
    assert r1.status_code == r2.status_code == 201 and r1.json() == r2.json()
    o = r1.json()
    assert o["state"] == "fulfilled" and o["route"] == "budget" and o["provision_status"] == "requested"
    allowed = (await client.get("/v1/entitlements/check", params={"user": acme.user, "feature": "reports"},
                                headers=bearer(acme.user_token))).json()
    assert allowed["allowed"] is True and allowed["limit"] == 50
    state = (await client.get(f"/v1/accounts/acme/budgets/{b['id']}", headers=bearer(key))).json()
    assert state["captured_minor"] == 225 and state["reserved_minor"] == 0
    again = await order(client, acme.user_token, q["id"])
    assert_problem(again, 409, "quote_unusable")
    async with sessionmaker() as s:
        kinds = (await s.scalars(select(LedgerEntry.kind).order_by(LedgerEntry.entry_id))).all()
        types = (await s.scalars(select(OutboxEvent.type).where(OutboxEvent.type.like("order.%") |
                                                                OutboxEvent.type.like("provision.%") |
                                                                OutboxEvent.type.like("entitlement.%"))
                                 .order_by(OutboxEvent.seq))).all()
    assert list(kinds) == ["reserve", "capture"]
    assert list(types) == ["order.created", "order.paid", "entitlement.granted", "provision.requested",
                           "order.fulfilled"]
    ack = await client.post(f"/v1/orders/{o['id']}/provisioned", json={"status": "done"}, headers=bearer(key))
    assert ack.json()["provision_status"] == "done"
    credit = await client.get(f"/v1/orders/{o['id']}", headers=bearer(acme.user_token))
    assert credit.json()["state"] == "fulfilled"


async def test_approval_holds_then_captures_and_cannot_be_self_approved(
    client: AsyncTestClient[Any], key: str, acme: Tenant,
) -> None:
    b = await budget(client, key, 100_000)
    await client.put("/v1/accounts/acme/guardrails", json={"auto_approve_limit_minor": 100},
                     headers=bearer(acme.admin_token))
    q = await quote(client, acme.user_token, acme.user, "reports_basic")
    assert q["decision"]["outcome"] == "approval_required"
    o = (await order(client, acme.user_token, q["id"])).json()
    assert o["state"] == "pending_approval" and o["approval_id"]
    state = (await client.get(f"/v1/accounts/acme/budgets/{b['id']}", headers=bearer(key))).json()
    assert (state["reserved_minor"], state["captured_minor"]) == (225, 0)
    queue = (await client.get("/v1/accounts/acme/approvals", params={"state": "pending"},
                              headers=bearer(acme.admin_token))).json()["data"]
    assert [a["id"] for a in queue] == [o["approval_id"]]
    assert queue[0]["reason"] == "I need it for the Q4 report" and "auto-approve limit" in queue[0]["why"][-1]
    assert_problem(await client.post(f"/v1/approvals/{o['approval_id']}/approve", json={},
                                     headers=bearer(acme.user_token)), 403)
    r = await client.post(f"/v1/approvals/{o['approval_id']}/approve", json={"note": "ok"},
                          headers=bearer(acme.admin_token))
    assert r.status_code == 200 and r.json()["state"] == "approved"
    assert_problem(await client.post(f"/v1/approvals/{o['approval_id']}/approve", json={},
                                     headers={**bearer(acme.admin_token), "Idempotency-Key": "r2"}), 409)
    done = (await client.get(f"/v1/orders/{o['id']}", headers=bearer(acme.user_token))).json()
    assert done["state"] == "fulfilled"
    state = (await client.get(f"/v1/accounts/acme/budgets/{b['id']}", headers=bearer(key))).json()
    assert (state["reserved_minor"], state["captured_minor"]) == (0, 225)


async def test_an_admin_cannot_approve_its_own_request(client: AsyncTestClient[Any], key: str, acme: Tenant) -> None:
    await budget(client, key, 100_000)
    await client.put("/v1/accounts/acme/guardrails", json={"auto_approve_limit_minor": 0},
                     headers=bearer(acme.admin_token))
    q = await quote(client, acme.admin_token, acme.admin, "reports_basic")
    o = (await order(client, acme.admin_token, q["id"])).json()
    body = assert_problem(await client.post(f"/v1/approvals/{o['approval_id']}/approve", json={},
                                            headers=bearer(acme.admin_token)), 403)
    assert "own request" in body["detail"]


async def test_deny_and_expiry_release_the_hold_and_grant_nothing(
    client: AsyncTestClient[Any], key: str, acme: Tenant, clock: FrozenClock,
) -> None:
    b = await budget(client, key, 100_000)
    await client.put("/v1/accounts/acme/guardrails", json={"auto_approve_limit_minor": 0, "approval_expiry_hours": 24},
                     headers=bearer(acme.admin_token))
    await make_user(client, key, "acme", "acme-bob", roles=["analyst"])
    bob = await session_token(client, key, "acme", "acme-bob")
    q1 = await quote(client, acme.user_token, acme.user, "reports_basic")
    o1 = await order(client, acme.user_token, q1["id"])
    o2 = await order(client, bob, (await quote(client, bob, "acme-bob", "reports_basic"))["id"])
    denied = await client.post(f"/v1/approvals/{o1.json()['approval_id']}/deny", json={"note": "use the team seat"},
                               headers=bearer(acme.admin_token))
    assert denied.json()["state"] == "denied" and denied.json()["decision_note"] == "use the team seat"
    clock.advance(timedelta(hours=25))
    admin = await session_token(client, key, "acme", acme.admin)  # the old one expired too
    late = await client.post(f"/v1/approvals/{o2.json()['approval_id']}/approve", json={}, headers=bearer(admin))
    assert_problem(late, 409, "approval_conflict")
    for o, state in ((o1, "denied"), (o2, "expired")):
        assert (await client.get(f"/v1/orders/{o.json()['id']}", headers=bearer(key))).json()["state"] == state
    state = (await client.get(f"/v1/accounts/acme/budgets/{b['id']}", headers=bearer(key))).json()
    assert (state["reserved_minor"], state["captured_minor"]) == (0, 0)
    check = (await client.get("/v1/entitlements/check", params={"user": acme.user, "feature": "reports"},
                              headers=bearer(key))).json()
    assert check["allowed"] is False


async def test_temporary_access_while_pending_ends_on_deny(client: AsyncTestClient[Any], key: str,
                                                          acme: Tenant) -> None:
    await budget(client, key, 100_000)
    await client.put("/v1/accounts/acme/guardrails", json={"auto_approve_limit_minor": 0, "temporary_access_hours": 48},
                     headers=bearer(acme.admin_token))
    o = (await order(client, acme.user_token, (await quote(client, acme.user_token, acme.user, "reports_basic"))["id"]))
    params = {"user": acme.user, "feature": "reports"}
    assert (await client.get("/v1/entitlements/check", params=params, headers=bearer(key))).json()["allowed"] is True
    await client.post(f"/v1/approvals/{o.json()['approval_id']}/deny", json={}, headers=bearer(acme.admin_token))
    assert (await client.get("/v1/entitlements/check", params=params, headers=bearer(key))).json()["allowed"] is False


async def test_bad_purchases_are_clear_problems_and_move_no_money(
    client: AsyncTestClient[Any], key: str, acme: Tenant, clock: FrozenClock, sessionmaker: Any,
) -> None:
    await budget(client, key, 100_000)
    await make_user(client, key, "acme", "acme-vic", roles=["viewer"])
    vic = await session_token(client, key, "acme", "acme-vic")
    # hidden for viewers: not found; visible but not buyable: 422
    assert_problem(await client.post("/v1/quotes", json={"user": "acme-vic", "items": [{"module": "connector_pack"}]},
                                     headers=bearer(vic)), 404)
    assert_problem(await client.post("/v1/quotes", json={"user": "acme-vic", "items": [{"module": "reports_basic"}]},
                                     headers=bearer(vic)), 422, "module_not_available")
    assert_problem(await client.post("/v1/quotes", json={"user": "acme-vic", "items": [{"module": "nope"}]},
                                     headers=bearer(vic)), 404)
    # an end user cannot quote for someone else; another account's quote is invisible
    assert_problem(await client.post("/v1/quotes", json={"user": acme.admin, "items": [{"module": "reports_basic"}]},
                                     headers=bearer(acme.user_token)), 404)
    beta = await make_tenant(client, key, "beta")
    q = await quote(client, acme.user_token, acme.user, "reports_basic")
    assert_problem(await order(client, beta.user_token, q["id"]), 404)
    assert_problem(await client.get(f"/v1/quotes/{q['id']}", headers=bearer(beta.admin_token)), 404)
    # an order needs an Idempotency-Key; an expired quote cannot be ordered
    r = await client.post("/v1/orders", json={"quote_id": q["id"]}, headers=bearer(acme.user_token))
    assert_problem(r, 400)
    clock.advance(timedelta(minutes=31))
    fresh = await session_token(client, key, "acme", acme.user)
    assert_problem(await order(client, fresh, q["id"]), 409, "quote_unusable")
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Order)) == 0
        assert await s.scalar(select(func.count()).select_from(LedgerEntry)) == 0


async def test_requires_are_reported_or_bundled(client: AsyncTestClient[Any], key: str, acme: Tenant) -> None:
    q = await quote(client, acme.user_token, acme.user, "reports_pro")
    assert q["unmet_requires"] == ["reports_basic"] and [x["module"] for x in q["lines"]] == ["reports_pro"]
    q = await quote(client, acme.user_token, acme.user, "reports_pro", include_requirements=True)
    assert q["unmet_requires"] == [] and [x["module"] for x in q["lines"]] == ["reports_pro", "reports_basic"]


async def test_refund_returns_money_to_the_budget_and_revokes_access(
    client: AsyncTestClient[Any], key: str, acme: Tenant,
) -> None:
    b = await budget(client, key, 100_000)
    o = (await order(client, acme.user_token, (await quote(client, acme.user_token, acme.user, "reports_basic"))["id"]))
    assert_problem(await client.post(f"/v1/orders/{o.json()['id']}/refund", json={},
                                   headers={**bearer(acme.user_token), "Idempotency-Key": "r0"}), 403)
    r = await client.post(f"/v1/orders/{o.json()['id']}/refund", json={"note": "wrong module"},
                          headers={**bearer(acme.admin_token), "Idempotency-Key": "r1"})
    assert r.json()["state"] == "refunded" and r.json()["refunded_minor"] == 225
    state = (await client.get(f"/v1/accounts/acme/budgets/{b['id']}", headers=bearer(key))).json()
    assert state["captured_minor"] == 0
    check = (await client.get("/v1/entitlements/check", params={"user": acme.user, "feature": "reports"},
                              headers=bearer(key))).json()
    assert check["allowed"] is False
    assert_problem(await client.post(f"/v1/orders/{o.json()['id']}/refund", json={},
                                     headers={**bearer(acme.admin_token), "Idempotency-Key": "r2"}), 409)
