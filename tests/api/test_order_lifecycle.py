"""Order lifecycle rules: provisioning acknowledgements as a state machine, audited; reads never write."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from app.audit import AuditEntry
from app.outbox import OutboxEvent
from tests.api.test_auth import assert_problem
from tests.api.test_purchase import acme, budget, key, order, quote
from tests.factories import Tenant, bearer

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
