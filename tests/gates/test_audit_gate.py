"""Audit gate: every mutating route that succeeds writes an audit row, unless it is listed here with why not.

The gate builds the isolation gate's world (account A with a purchase, a grant, a budget, a card, keys), then
calls every POST, PUT, PATCH and DELETE route the app serves with a vendor key holding every scope, on A's
objects, and counts audit rows before and after each call that answered 2xx.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from app.audit import AuditEntry
from app.clock import FrozenClock
from tests.gates.isolation import plan_calls
from tests.gates.test_isolation_gate import _required_query, build_world

# Mutations that change no vendor- or customer-visible state worth an audit row, each with its reason.
NOT_AUDITED: dict[tuple[str, str], str] = {
    ("POST", "/v1/entitlements/check"): "a read sent as POST (batch check); it changes nothing",
    ("POST", "/v1/usage"): "usage is telemetry, idempotent per event id and kept whole in ent_usage_events",
    ("POST", "/v1/quotes"): "a quote is a price offer; it moves nothing until ordered (the order is audited)",
    ("POST", "/v1/suggestions"): "suggestions are computed for display; impressions are their own record",
    ("POST", "/v1/suggestions/{suggestion_id}/events"): "a click or dismissal: engine telemetry",
    ("POST", "/v1/accounts/{account}/guardrails/simulate"): "a what-if over past purchases; writes nothing",
    ("POST", "/v1/session-tokens"): "a short-lived token; the user it is for is recorded in the token's claims",
    ("POST", "/v1/payment-methods/setup"): "starts a Stripe SetupIntent; the saved card is audited by its webhook",
    ("POST", "/v1/catalog/plan"): "a diff; applying it is audited",
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/replay"): "queues a copy of a delivered event; the delivery log "
                                                            "records it",
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/replay-failed"): "as replay",
    ("POST", "/v1/suggestions/{suggestion_id}/feedback"): "a user's reaction to a suggestion: engine telemetry",
}
# Bodies that change something where the shared table's would repeat what an earlier call already set.
CHANGING_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/accounts/{account}/guardrails/import"): {"toml": "auto_approve_limit_minor = 4321"},
}


async def test_every_successful_mutation_writes_an_audit_row(client: AsyncTestClient[Any], app: Litestar,
                                                            sessionmaker: Any, clock: FrozenClock) -> None:
    world = await build_world(client, sessionmaker, clock)
    calls, problems = plan_calls(app, world, _required_query(app))
    checked = 0
    for n, call in enumerate(calls):
        if call.method not in ("POST", "PUT", "PATCH", "DELETE") or call.opt["owner"] == "public":
            continue
        if (call.method, call.path) in NOT_AUDITED:
            continue
        async with sessionmaker() as s:
            before = int(await s.scalar(select(func.count()).select_from(AuditEntry)))
        body = CHANGING_BODIES.get((call.method, call.path), call.body)
        r = await client.request(call.method, call.url, json=body, headers={
            "Authorization": f"Bearer {world.all_scopes_key}", "Idempotency-Key": f"audit-gate-{n}"})
        if r.status_code >= 300:
            continue  # refused: nothing changed (a problem answer), so nothing to audit
        checked += 1
        async with sessionmaker() as s:
            after = int(await s.scalar(select(func.count()).select_from(AuditEntry)))
        if after == before:
            problems.append(f"{call.method} {call.path}: answered {r.status_code} and wrote no audit row; audit it "
                            "(app.audit.record) or list it in NOT_AUDITED with the reason")
    assert checked >= 10, f"only {checked} mutations succeeded: the gate's world is too thin"
    assert problems == [], "\n".join(problems)
