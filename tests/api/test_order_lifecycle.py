"""Order lifecycle rules: provisioning acknowledgements as a state machine, audited; reads never write."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from app.audit import AuditEntry
from app.clock import FrozenClock
from app.outbox import OutboxEvent
from tests.api.test_auth import assert_problem
from tests.api.test_purchase import acme, budget, key, order, quote
from tests.factories import Tenant, bearer, session_token

__all__ = ["acme", "key"]


async def _count(sessionmaker: Any, model: Any, column: Any, value: str) -> int:
    async with sessionmaker() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(column == value)))


async def test_provisioning_acknowledgements_are_a_state_machine_with_idempotent_repeats(
        client: AsyncTestClient[Any], key: str, acme: Tenant, sessionmaker: Any) -> None:
    await budget(client, key, 100_000)
    o = (await order(client, acme.user_token, (await quote(client, acme.user_token, acme.user, "reports_basic"))["id"]))
    path = f"/v1/orders/{o.json()['id']}/provisioned"
    failed = await client.post(path, json={"status": "failed", "note": "tenant not found"}, headers=bearer(key))
    assert failed.json()["provision_status"] == "failed"
    assert (await client.post(path, json={"status": "failed"}, headers=bearer(key))).status_code == 200
    done = await client.post(path, json={"status": "done"}, headers=bearer(key))
    assert done.json()["provision_status"] == "done"
    assert (await client.post(path, json={"status": "done"}, headers=bearer(key))).json()["provision_status"] == "done"
    late = await client.post(path, json={"status": "failed"}, headers=bearer(key))
    assert assert_problem(late, 409, "illegal_transition")["provision_status"] == "done"
    assert await _count(sessionmaker, OutboxEvent, OutboxEvent.type, "provision.failed") == 1
    assert await _count(sessionmaker, OutboxEvent, OutboxEvent.type, "provision.acknowledged") == 1
    assert await _count(sessionmaker, AuditEntry, AuditEntry.action, "order.provision_failed") == 1
    assert await _count(sessionmaker, AuditEntry, AuditEntry.action, "order.provision_done") == 1


async def test_reading_an_order_or_the_approval_queue_never_expires_anything(
        client: AsyncTestClient[Any], key: str, acme: Tenant, clock: FrozenClock, sessionmaker: Any) -> None:
    b = await budget(client, key, 100_000)
    await client.put("/v1/accounts/acme/guardrails", json={"auto_approve_limit_minor": 0, "approval_expiry_hours": 1},
                     headers=bearer(key))
    o = (await order(client, acme.user_token, (await quote(client, acme.user_token, acme.user, "reports_basic"))["id"]))
    clock.advance(timedelta(hours=2))  # the request is due, nobody expired it yet
    async with sessionmaker() as s:
        before = int(await s.scalar(select(func.count()).select_from(OutboxEvent)))
    got = await client.get(f"/v1/orders/{o.json()['id']}", headers=bearer(key))
    queue = await client.get("/v1/accounts/acme/approvals", headers=bearer(key))
    assert got.json()["state"] == "pending_approval" and queue.json()["data"][0]["state"] == "pending"
    held = (await client.get(f"/v1/accounts/acme/budgets/{b['id']}", headers=bearer(key))).json()
    assert held["reserved_minor"] == 225
    async with sessionmaker() as s:
        assert int(await s.scalar(select(func.count()).select_from(OutboxEvent))) == before
    late = await client.post(f"/v1/approvals/{o.json()['approval_id']}/approve", json={}, headers=bearer(key))
    assert_problem(late, 409, "approval_conflict")  # deciding is when the expiry happens
    assert (await client.get(f"/v1/orders/{o.json()['id']}", headers=bearer(key))).json()["state"] == "expired"
    released = (await client.get(f"/v1/accounts/acme/budgets/{b['id']}", headers=bearer(key))).json()
    assert released["reserved_minor"] == 0


async def _credit(client: AsyncTestClient[Any], key: str, period: str) -> list[tuple[str, str, int, int]]:
    r = await client.get("/v1/billing/sales-credit", params={"period": period}, headers=bearer(key))
    assert r.status_code == 200, r.text
    return [(row["motion"], row["kind"], row["bookings"], row["amount_minor"]) for row in r.json()["rows"]]


async def test_a_refund_in_a_later_period_reverses_the_sales_credit_there(
        client: AsyncTestClient[Any], key: str, acme: Tenant, clock: FrozenClock) -> None:
    await budget(client, key, 100_000)
    o = await order(client, acme.user_token, (await quote(client, acme.user_token, acme.user, "reports_basic"))["id"])
    assert o.json()["state"] == "fulfilled"
    assert await _credit(client, key, "2026-11") == [("land", "booking", 1, 225)]
    clock.advance(timedelta(days=10))  # December
    admin = await session_token(client, key, "acme", acme.admin)
    r = await client.post(f"/v1/orders/{o.json()['id']}/refund", json={},
                          headers={**bearer(admin), "Idempotency-Key": "late-refund"})
    assert r.status_code == 200 and r.json()["state"] == "refunded", r.text
    assert await _credit(client, key, "2026-11") == [("land", "booking", 1, 225)]  # history is not edited
    assert await _credit(client, key, "2026-12") == [("land", "reversal", 1, -225)]
