"""Event catalogue gate: every event the service writes to the outbox is catalogued and matches its schema.

A broad flow (catalog apply, purchases on the budget route, approval granted and denied, refund,
provisioning, budget alerts, statements, trials, admin grants and seats) runs through the API; then
every outbox row must name a registered (type, version) and its payload must decode as that schema.
"""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from app.clock import FrozenClock
from app.outbox import OutboxEvent
from app.webhooks import events
from tests.api.test_purchase import budget, order, quote
from tests.factories import apply_demo_catalog, bearer, make_key, make_tenant, make_user, session_token
from tests.support.outbox import emit


async def check_catalogue(sessionmaker: Any) -> tuple[set[str], list[str]]:
    """(event types seen, problems) for every outbox row."""
    registry = {(s.type, s.version): s for s in events.catalogue()}
    seen, problems = set(), []
    async with sessionmaker() as s:
        rows = (await s.scalars(select(OutboxEvent).order_by(OutboxEvent.seq))).all()
    for row in rows:
        seen.add(row.type)
        spec = registry.get((row.type, row.version))
        if spec is None:
            problems.append(f"{row.type} v{row.version}: not in the event catalogue; register its payload with "
                            "@event(...) in the emitting package's events.py")
            continue
        try:
            msgspec.convert(row.payload, spec.payload, strict=False)
        except msgspec.ValidationError as exc:
            problems.append(f"{row.type} v{row.version}: payload does not match {spec.payload.__name__}: {exc}")
    return seen, problems


async def test_every_emitted_event_is_catalogued(client: AsyncTestClient[Any], sessionmaker: Any,
                                                 clock: FrozenClock) -> None:
    await apply_demo_catalog(sessionmaker, clock)
    key = await make_key(sessionmaker, clock)
    t = await make_tenant(client, key, "acme")
    await budget(client, key, 10_000)
    await client.put("/v1/accounts/acme/guardrails", json={"auto_approve_limit_minor": 100, "temporary_access_hours": 4,
                                                           "alert_thresholds_pct": [1, 50]}, headers=bearer(key))
    bought = await order(client, t.user_token, (await quote(client, t.user_token, t.user, "reports_basic"))["id"])
    await client.post(f"/v1/approvals/{bought.json()['approval_id']}/approve", json={}, headers=bearer(t.admin_token))
    await client.post(f"/v1/orders/{bought.json()['id']}/provisioned", json={"status": "done"}, headers=bearer(key))
    await make_user(client, key, "acme", "acme-bob", roles=["analyst"])
    bob = await session_token(client, key, "acme", "acme-bob")
    pending = await order(client, bob, (await quote(client, bob, "acme-bob", "reports_basic"))["id"])
    await client.post(f"/v1/approvals/{pending.json()['approval_id']}/deny", json={"note": "no"},
                      headers=bearer(t.admin_token))
    await client.post(f"/v1/orders/{bought.json()['id']}/refund", json={},
                      headers={**bearer(t.admin_token), "Idempotency-Key": "gate-refund"})
    await client.post("/v1/trials", json={"user": t.admin, "module": "advanced_charts"}, headers=bearer(key))
    pool = await client.post("/v1/accounts/acme/grants", json={"module": "comments", "source_ref": "deal-1",
                                                               "seats": 3}, headers=bearer(key))
    if pool.status_code == 201:
        await client.post(f"/v1/accounts/acme/grants/{pool.json()['id']}/seats", json={"user": t.user},
                          headers=bearer(key))
    clock.set(datetime(2026, 12, 2, tzinfo=UTC))
    await client.post("/v1/billing/statements/close", json={"period": "2026-11"}, headers=bearer(key))
    clock.advance(timedelta(days=40))
    await session_token(client, key, "acme", t.admin)
    from entitlements.service import sweep

    async with sessionmaker() as s, s.begin():
        await sweep(s, clock=clock, trial_ending_days=3)
    seen, problems = await check_catalogue(sessionmaker)
    assert problems == [], "\n".join(problems)
    expected = {"catalog.revision_applied", "order.created", "order.paid", "order.fulfilled", "order.denied",
                "order.refunded", "entitlement.granted", "entitlement.revoked", "provision.requested",
                "provision.acknowledged", "approval.requested", "approval.decided", "statement.finalized",
                "trial.started", "budget.threshold_reached"}
    assert expected <= seen, f"the flow no longer produces {sorted(expected - seen)}"


async def test_the_gate_reports_an_uncatalogued_event(sessionmaker: Any, clock: FrozenClock) -> None:
    async with sessionmaker() as s, s.begin():
        await emit(s, clock=clock, type="widget.exploded", payload={"x": 1})
        await emit(s, clock=clock, type="approval.decided", payload={"approval_id": 5})
    _, problems = await check_catalogue(sessionmaker)
    assert any(p.startswith("widget.exploded v1: not in the event catalogue") for p in problems)
    assert any(p.startswith("approval.decided v1: payload does not match ApprovalDecided") for p in problems)


def test_only_the_event_bus_writes_to_the_outbox() -> None:
    """Every event the product sends is a typed catalogue payload: nothing but app/events.py (``publish``)
    reaches the outbox's ``write``, so an uncatalogued type or an untyped dict cannot be sent at all."""
    root = Path(__file__).resolve().parents[2]
    writers = []
    for top in ("app", "catalog", "entitlements", "billing", "suggest", "web"):
        for path in sorted((root / top).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = ([a.name for a in node.names] if isinstance(node, ast.ImportFrom)
                         and node.module in ("app.outbox", "app") else [])
                if "write" in names or "outbox" in names or "emit" in names:
                    writers.append(str(path.relative_to(root)))
    assert len(list((root / "billing").rglob("*.py"))) > 20, "the gate is not reading the packages"
    assert writers == ["app/events.py"], f"modules writing raw outbox rows: {writers}"
