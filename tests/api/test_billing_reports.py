"""Bill-back statements, the sales-credit report and guardrail simulation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.clock import FrozenClock
from tests.api.test_auth import assert_problem
from tests.api.test_purchase import budget, order, quote
from tests.factories import Tenant, apply_demo_catalog, bearer, make_key, make_tenant, session_token


@pytest.fixture
async def key(sessionmaker: Any, clock: FrozenClock) -> str:
    await apply_demo_catalog(sessionmaker, clock)
    return await make_key(sessionmaker, clock)


@pytest.fixture
async def acme(client: AsyncTestClient[Any], key: str) -> Tenant:
    tenant = await make_tenant(client, key, "acme")
    await client.post("/v1/accounts", json={"external_id": "acme", "name": "Acme", "sales_team": "east",
                                            "sales_rep": "dana"}, headers=bearer(key))
    return tenant


async def buy(client: AsyncTestClient[Any], t: Tenant, *modules: str) -> dict[str, Any]:
    q = await quote(client, t.user_token, t.user, *modules)
    r = await order(client, t.user_token, q["id"])
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_closing_a_period_bills_captures_minus_refunds_once(
    client: AsyncTestClient[Any], key: str, acme: Tenant, clock: FrozenClock,
) -> None:
    await budget(client, key, 100_000)
    first = await buy(client, acme, "reports_basic")
    second = await buy(client, acme, "comments")
    await client.post(f"/v1/orders/{second['id']}/refund", json={},
                      headers={**bearer(acme.admin_token), "Idempotency-Key": "refund-second"})
    early = (await client.post("/v1/billing/statements/close", json={"period": "2026-11"},
                               headers=bearer(key))).json()
    assert early["closed"] == [] and early["still_open"] == ["acme"]
    clock.set(datetime(2026, 12, 2, tzinfo=UTC))
    closed = (await client.post("/v1/billing/statements/close", json={"period": "2026-11"},
                                headers=bearer(key))).json()
    [st] = closed["closed"]
    assert st["account"] == "acme" and st["period"] == "2026-11"
    assert st["captured_minor"] == first["total_minor"] + second["total_minor"]
    assert st["refunded_minor"] == second["total_minor"] and st["total_minor"] == first["total_minor"]
    assert {line["order_id"] for line in st["lines"]} == {first["id"], second["id"]}
    again = (await client.post("/v1/billing/statements/close", json={"period": "2026-11"},
                               headers=bearer(key))).json()
    assert again["closed"] == [] and [s["id"] for s in again["already_closed"]] == [st["id"]]
    admin = await session_token(client, key, "acme", acme.admin)
    listed = (await client.get("/v1/accounts/acme/statements", headers=bearer(admin))).json()["data"]
    assert [s["id"] for s in listed] == [st["id"]]
    assert_problem(await client.post("/v1/billing/statements/close", json={"period": "2026-13"},
                                     headers=bearer(key)), 400)


async def test_sales_credit_lands_then_expands_per_category(client: AsyncTestClient[Any], key: str,
                                                           acme: Tenant) -> None:
    await budget(client, key, 100_000)
    await client.put("/v1/accounts/acme/guardrails", json={"auto_approve_limit_minor": 50_000}, headers=bearer(key))
    await buy(client, acme, "reports_basic")
    await buy(client, acme, "report_branding")
    await buy(client, acme, "comments")
    report = (await client.get("/v1/billing/sales-credit", params={"period": "2026-11"},
                               headers=bearer(key))).json()
    by_motion = {r["motion"]: r for r in report["rows"]}
    assert by_motion["land"]["bookings"] == 2 and by_motion["expand"]["bookings"] == 1
    assert all(r["team"] == "east" and r["rep"] == "dana" for r in report["rows"])


async def test_sales_team_and_rep_of_200_characters_are_stored_and_credited(
    client: AsyncTestClient[Any], key: str, acme: Tenant,
) -> None:
    team, rep = "t" * 200, "r" * 199 + "é"  # the schema's maximum (the columns held 120: a 500 before)
    r = await client.post("/v1/accounts", json={"external_id": "acme", "name": "Acme", "sales_team": team,
                                                "sales_rep": rep}, headers=bearer(key))
    assert r.status_code == 200, r.text
    assert (r.json()["sales_team"], r.json()["sales_rep"]) == (team, rep)
    await budget(client, key, 100_000)
    await buy(client, acme, "reports_basic")
    report = (await client.get("/v1/billing/sales-credit", params={"period": "2026-11"},
                               headers=bearer(key))).json()
    assert [(row["team"], row["rep"]) for row in report["rows"]] == [(team, rep)]
    too_long = await client.post("/v1/accounts", json={"external_id": "acme", "name": "Acme",
                                                       "sales_rep": "r" * 201}, headers=bearer(key))
    assert_problem(too_long, 400, "validation_failed")


async def test_simulation_replays_recent_purchases_under_a_draft(client: AsyncTestClient[Any], key: str,
                                                                acme: Tenant) -> None:
    await budget(client, key, 100_000)
    for module in ("reports_basic", "comments", "report_branding"):
        await buy(client, acme, module)
    draft = {"policy": {"auto_approve_limit_minor": 100, "role_rules": [{"role": "analyst",
                                                                          "deny_modules": ["comments"]}]},
             "days": 30}
    r = (await client.post("/v1/accounts/acme/guardrails/simulate", json=draft,
                           headers=bearer(acme.admin_token))).json()
    assert r["requests"] == 3 and r["blocked"] == 1
    assert r["auto_approved"] + r["approval_required"] == 2
    assert {c["would_be"] for c in r["changed"]} <= {"blocked", "approval_required"} and r["changed"]
    in_force = (await client.get("/v1/accounts/acme/guardrails", headers=bearer(acme.admin_token))).json()
    assert in_force["version"] == 0  # simulating never saves the draft
