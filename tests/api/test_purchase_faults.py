"""Proofs of the purchase invariants: 200 racing buyers on one budget, retries, and a crash mid-fulfilment."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

import billing.service
import entitlements
from app.accounts import service as accounts
from app.accounts.schemas import UserUpsert
from app.clock import FrozenClock
from billing.models import BudgetPeriod, LedgerEntry, Order
from tests.api.test_auth import assert_problem
from tests.api.test_purchase import budget, quote
from tests.factories import apply_demo_catalog, bearer, make_account, make_key

PRICE = 225  # reports_basic, prorated on 2026-11-23 12:00 UTC


@pytest.fixture
async def key(sessionmaker: Any, clock: FrozenClock) -> str:
    await apply_demo_catalog(sessionmaker, clock)
    return await make_key(sessionmaker, clock)


@pytest.mark.slow
async def test_200_concurrent_purchases_take_exactly_what_the_budget_affords(
    client: AsyncTestClient[Any], key: str, sessionmaker: Any, clock: FrozenClock,
) -> None:
    await make_account(client, key, "acme")
    b = await budget(client, key, PRICE * 37)
    await client.put("/v1/accounts/acme/guardrails", json={"routes": ["budget"]}, headers=bearer(key))
    async with sessionmaker() as s, s.begin():
        acc = await accounts.get_account(s, "acme")
        assert acc is not None
        for i in range(200):
            await accounts.upsert_user(s, acc, UserUpsert(external_id=f"buyer-{i}", roles=["analyst"]),
                                       actor="t", clock=clock)
    quotes = []
    for start in range(0, 200, 25):
        quotes += await asyncio.gather(*(quote(client, key, f"buyer-{i}", "reports_basic")
                                         for i in range(start, start + 25)))

    async def buy(i: int) -> Any:
        return await client.post("/v1/orders", json={"quote_id": quotes[i]["id"]},
                                 headers={**bearer(key), "Idempotency-Key": f"race-{i}"})

    responses = await asyncio.gather(*(buy(i) for i in range(200)))
    ok = [r for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code != 201]
    assert len(ok) == 37, [r.text for r in refused[:3]]
    assert len(refused) == 163
    for r in refused:  # the race is lost either at the guardrail check or at the guarded UPDATE
        body = r.json()
        assert (r.status_code, body["code"]) in {(409, "budget_exhausted"), (422, "purchase_blocked")}, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    assert all(r.json()["state"] == "fulfilled" for r in ok)
    async with sessionmaker() as s:
        period = await s.scalar(select(BudgetPeriod))
        assert period is not None
        assert (period.captured_minor, period.reserved_minor) == (PRICE * 37, 0)
        captured = await s.scalar(select(func.sum(LedgerEntry.amount_minor)).where(LedgerEntry.kind == "capture"))
        assert captured == PRICE * 37
        assert await s.scalar(select(func.count()).select_from(Order)) == 37
    state = (await client.get(f"/v1/accounts/acme/budgets/{b['id']}", headers=bearer(key))).json()
    assert state["remaining_minor"] == 0


@pytest.mark.parametrize("path", ["ordinary", "fast"])
async def test_a_crash_between_capture_and_grant_leaves_nothing_and_the_retry_completes(
    client: AsyncTestClient[Any], key: str, sessionmaker: Any, monkeypatch: pytest.MonkeyPatch, path: str,
) -> None:
    await make_account(client, key, "acme")
    await client.post("/v1/accounts/acme/users", json={"external_id": "ana", "roles": ["analyst"]},
                      headers=bearer(key))
    await budget(client, key, 100_000)
    q = await quote(client, key, "ana", "reports_basic")
    step = "grant" if path == "ordinary" else "grant_in"  # the fast path builds its grant before its statement
    real_grant = getattr(entitlements, step)

    async def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("process died after the capture, before the grant")

    def crash_building(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("process died while building the order's statement")

    if path == "ordinary":
        async def ordinary(*args: Any, **kwargs: Any) -> None:
            return None

        monkeypatch.setattr(billing.service, "fast_order", ordinary)
    monkeypatch.setattr(entitlements, step, crash if path == "ordinary" else crash_building)
    headers = {**bearer(key), "Idempotency-Key": "crash-1"}
    r = await client.post("/v1/orders", json={"quote_id": q["id"]}, headers=headers)
    assert_problem(r, 500)
    async with sessionmaker() as s:  # no captured money without an order that will be fulfilled
        assert await s.scalar(select(func.count()).select_from(LedgerEntry)) == 0
        assert await s.scalar(select(func.count()).select_from(Order)) == 0
        period = await s.scalar(select(BudgetPeriod))
        assert period is None or (period.captured_minor, period.reserved_minor) == (0, 0)
    monkeypatch.setattr(entitlements, step, real_grant)
    retried = await client.post("/v1/orders", json={"quote_id": q["id"]}, headers=headers)
    assert retried.status_code == 201 and retried.json()["state"] == "fulfilled"
    check = (await client.get("/v1/entitlements/check", params={"user": "ana", "feature": "reports"},
                              headers=bearer(key))).json()
    assert check["allowed"] is True
    async with sessionmaker() as s:
        assert await s.scalar(select(func.sum(LedgerEntry.amount_minor)).where(LedgerEntry.kind == "capture")) == PRICE


async def test_approvals_racing_expiry_release_each_hold_exactly_once(
    client: AsyncTestClient[Any], key: str, sessionmaker: Any, clock: FrozenClock, engine: Any,
) -> None:
    from datetime import timedelta

    from app.auth import VendorPrincipal
    from billing.service import _orders as orders
    from tests.support.race import race

    await make_account(client, key, "acme")
    await budget(client, key, 100_000)
    await client.put("/v1/accounts/acme/guardrails", json={"auto_approve_limit_minor": 0, "approval_expiry_hours": 1},
                     headers=bearer(key))
    approvals = []
    for i in range(6):
        await client.post("/v1/accounts/acme/users", json={"external_id": f"u{i}", "roles": ["analyst"]},
                          headers=bearer(key))
        q = await quote(client, key, f"u{i}", "reports_basic")
        o = (await client.post("/v1/orders", json={"quote_id": q["id"]},
                               headers={**bearer(key), "Idempotency-Key": f"exp-{i}"})).json()
        approvals.append(o["approval_id"])
    clock.advance(timedelta(hours=1))  # exactly due
    vendor = VendorPrincipal(key_id="key_test", scopes=frozenset({"commerce:write"}))

    async def racer(session: Any, i: int) -> str:
        approval_id = approvals[i // 3]
        if i % 3 == 2:
            return f"swept {await orders.expire_due_approvals(session, clock=clock)}"
        # as the approve/deny routes do: the lazy expiry first (it commits on its own), then the decision
        if await orders.expire_due_approvals(session, clock=clock, approval_id=approval_id):
            return "expired"
        await orders.decide_approval(session, vendor, approval_id, approve=i % 3 == 0, note=None, clock=clock)
        return "decided"

    results = await race(engine, 18, racer)
    assert "decided" not in results  # nobody may approve or deny a request whose time ran out
    async with sessionmaker() as s:
        kinds = (await s.execute(select(LedgerEntry.kind, func.count()).group_by(LedgerEntry.kind))).all()
        period = await s.scalar(select(BudgetPeriod))
    assert dict(kinds) == {"reserve": 6, "release": 6}
    assert period is not None and (period.reserved_minor, period.captured_minor) == (0, 0)
