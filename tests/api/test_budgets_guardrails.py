"""Budgets and guardrails over HTTP: admins of the account and the vendor; versions, TOML, audit."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.clock import FrozenClock
from tests.api.test_auth import assert_problem
from tests.factories import Tenant, bearer, make_key, make_tenant


@pytest.fixture
async def key(sessionmaker: Any, clock: FrozenClock) -> str:
    return await make_key(sessionmaker, clock)


@pytest.fixture
async def acme(client: AsyncTestClient[Any], key: str) -> Tenant:
    return await make_tenant(client, key, "acme")


async def test_admin_creates_and_reads_a_budget(client: AsyncTestClient[Any], acme: Tenant) -> None:
    r = await client.post("/v1/accounts/acme/budgets", json={"name": "Team", "currency": "USD",
                                                             "amount_minor": 100_000}, headers=bearer(acme.admin_token))
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["remaining_minor"] == 100_000 and b["period"] == "2026-11" and b["used_pct"] == 0
    assert b["period_starts_at"] == "2026-11-01T00:00:00Z" and b["period_ends_at"] == "2026-12-01T00:00:00Z"
    again = await client.post("/v1/accounts/acme/budgets", json={"name": "Dup", "currency": "USD", "amount_minor": 1},
                              headers=bearer(acme.admin_token))
    assert_problem(again, 409, "budget_exists")
    listing = (await client.get("/v1/accounts/acme/budgets", headers=bearer(acme.admin_token))).json()["data"]
    assert [x["id"] for x in listing] == [b["id"]]
    r = await client.patch(f"/v1/accounts/acme/budgets/{b['id']}", json={"amount_minor": 50_000},
                           headers=bearer(acme.admin_token))
    assert r.json()["period_amount_minor"] == 50_000
    assert_problem(await client.get("/v1/accounts/acme/budgets", headers=bearer(acme.user_token)), 403)
    ledger = (await client.get(f"/v1/accounts/acme/budgets/{b['id']}/ledger", headers=bearer(acme.admin_token)))
    assert ledger.status_code == 200 and ledger.json()["data"] == []


async def test_budget_input_is_validated(client: AsyncTestClient[Any], acme: Tenant) -> None:
    h = bearer(acme.admin_token)
    assert_problem(await client.post("/v1/accounts/acme/budgets", json={"name": "X", "currency": "ZZZ",
                                                                        "amount_minor": 1}, headers=h), 422)
    assert_problem(await client.post("/v1/accounts/acme/budgets", json={"name": "X", "currency": "USD",
                                                                        "amount_minor": -5}, headers=h), 400)
    assert_problem(await client.get("/v1/accounts/acme/budgets/bud_00000000000000000000000000", headers=h), 404)


async def test_guardrails_are_versioned_audited_and_round_trip_as_toml(client: AsyncTestClient[Any],
                                                                      acme: Tenant) -> None:
    h = bearer(acme.admin_token)
    default = (await client.get("/v1/accounts/acme/guardrails", headers=h)).json()
    assert default["version"] == 0 and default["policy"]["preferred_route"] == "budget"
    policy = {"routes": ["budget"], "auto_approve_limit_minor": 2_500, "per_user_cap_minor": 10_000,
              "role_rules": [{"role": "viewer", "deny_modules": ["advanced-charts"]}],
              "approver_roles": ["admin", "manager"]}
    r = await client.put("/v1/accounts/acme/guardrails", json=policy, headers=h)
    assert r.status_code == 200 and r.json()["version"] == 1
    toml = (await client.get("/v1/accounts/acme/guardrails/export", headers=h))
    assert toml.headers["content-type"].startswith("application/toml")
    assert "auto_approve_limit_minor = 2500" in toml.text and "[[role_rules]]" in toml.text
    same = await client.post("/v1/accounts/acme/guardrails/import", json={"toml": toml.text}, headers=h)
    assert same.json()["version"] == 1  # importing what is in force changes nothing
    changed = await client.post("/v1/accounts/acme/guardrails/import",
                                json={"toml": toml.text.replace("2500", "3000")}, headers=h)
    assert changed.json()["version"] == 2 and changed.json()["policy"]["auto_approve_limit_minor"] == 3000
    bad = await client.post("/v1/accounts/acme/guardrails/import", json={"toml": "routes = ['cash']"}, headers=h)
    body = assert_problem(bad, 422, "guardrail_invalid")
    assert "routes" in body["errors"][0]["field"]
    audit = (await client.get("/v1/accounts/acme/audit-log", headers=h)).json()["data"]
    updates = [e for e in audit if e["action"] == "guardrails.updated"]
    assert len(updates) == 2 and updates[0]["actor"].startswith("user:")
    assert updates[0]["before"]["auto_approve_limit_minor"] == 2500
    assert updates[0]["after"]["auto_approve_limit_minor"] == 3000
    assert_problem(await client.put("/v1/accounts/acme/guardrails", json=policy, headers=bearer(acme.user_token)), 403)
