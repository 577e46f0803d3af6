"""Catalog over HTTP: plan/apply, the read API, offers for users of different roles, bad input."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.clock import FrozenClock
from app.demo import DEMO_ACCOUNTS, DEMO_USERS, demo_catalog_toml
from tests.api.test_auth import assert_problem
from tests.factories import bearer, make_key, session_token

DEMO = demo_catalog_toml()


@pytest.fixture
async def key(sessionmaker: Any, clock: FrozenClock) -> str:
    return await make_key(sessionmaker, clock)


async def seed_demo(client: AsyncTestClient[Any], key: str) -> dict[str, Any]:
    """The demo accounts, users and catalog, through the API."""
    for account in DEMO_ACCOUNTS:
        body = {f: getattr(account, f) for f in account.__struct_fields__}
        assert (await client.post("/v1/accounts", json=body, headers=bearer(key))).status_code in (200, 201)
        for user in DEMO_USERS[account.external_id]:
            ubody = {f: getattr(user, f) for f in user.__struct_fields__}
            r = await client.post(f"/v1/accounts/{account.external_id}/users", json=ubody, headers=bearer(key))
            assert r.status_code in (200, 201), r.text
    r = await client.post("/v1/catalog/apply", json={"toml": DEMO}, headers=bearer(key))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def offers(client: AsyncTestClient[Any], token: str, user: str) -> dict[str, Any]:
    r = await client.get("/v1/offers", params={"user": user}, headers=bearer(token))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_plan_then_apply_then_plan_is_empty(client: AsyncTestClient[Any], key: str) -> None:
    r = await client.post("/v1/catalog/plan", json={"toml": DEMO}, headers=bearer(key))
    planned = r.json()
    assert r.status_code == 200 and planned["base_revision"] == 0 and not planned["empty"]
    assert planned["summary"]["module.added"] == 25
    assert (await client.get("/v1/catalog/modules", headers=bearer(key))).json()["data"] == []  # plan wrote nothing
    r = await client.post("/v1/catalog/apply", json={"toml": DEMO, "expected_revision": 0}, headers=bearer(key))
    assert r.json()["applied"] and r.json()["revision"] == 1
    again = (await client.post("/v1/catalog/plan", json={"toml": DEMO}, headers=bearer(key))).json()
    assert again["empty"] and again["changes"] == [] and again["base_revision"] == 1
    r = await client.post("/v1/catalog/apply", json={"toml": DEMO}, headers=bearer(key))
    assert r.json() == {"applied": False, "revision": 1, "base_revision": 1, "summary": {}, "changes": []}
    # the same catalog as a JSON document is also already live
    document = (await client.get("/v1/catalog/document", headers=bearer(key))).json()
    assert (await client.post("/v1/catalog/plan", json={"document": document}, headers=bearer(key))).json()["empty"]
    r = await client.post("/v1/catalog/apply", json={"toml": DEMO, "expected_revision": 0}, headers=bearer(key))
    assert_problem(r, 409, "catalog_revision_conflict")


async def test_read_api(client: AsyncTestClient[Any], key: str) -> None:
    await seed_demo(client, key)
    h = bearer(key)
    cats = (await client.get("/v1/catalog/categories", headers=h)).json()["data"]
    assert len(cats) == 6
    feats = (await client.get("/v1/catalog/features", headers=h)).json()["data"]
    assert {"reports", "pdf_export"} <= {f["key"] for f in feats}
    reports = (await client.get("/v1/catalog/features/reports", headers=h)).json()
    assert (reports["kind"], reports["unit"], reports["period"]) == ("limit", "report", "month")
    ai = (await client.get("/v1/catalog/modules", params={"category": "ai"}, headers=h)).json()["data"]
    assert [m["key"] for m in ai] == ["ai_insights", "anomaly_detection", "forecasting", "nl_query"]
    pro = (await client.get("/v1/catalog/modules/reports_pro", headers=h)).json()
    assert pro["requires"] == ["reports_basic"] and pro["trial_days"] == 14
    assert {u["feature"]: u.get("limit") for u in pro["features"]}["reports"] == 500
    assert {p["currency"] for p in pro["current_prices"]} == {"USD", "EUR"}
    metered = (await client.get("/v1/catalog/modules/api_access/prices", params={"currency": "USD"},
                                headers=h)).json()["data"]
    assert metered[0]["model"] == "metered" and metered[0]["tier_mode"] == "volume"
    assert metered[0]["tiers"][-1] == {"unit_amount_minor": 15, "flat_amount_minor": 20000}
    price = (await client.get(f"/v1/catalog/prices/{metered[0]['id']}", headers=h)).json()
    assert price == metered[0]
    pol = (await client.get("/v1/catalog/policies/data-by-role", headers=h)).json()
    assert pol["default"] == "hidden" and pol["rules"][1] == {"effect": "approval_required", "roles": ["analyst"]}
    assert len((await client.get("/v1/catalog/policies", headers=h)).json()["data"]) == 10
    revs = (await client.get("/v1/catalog/revisions", headers=h)).json()
    assert [r["revision"] for r in revs["data"]] == [1] and revs["next_cursor"] is None
    rev = (await client.get("/v1/catalog/revisions/1", headers=h)).json()
    assert len(rev["document"]["modules"]) == 25
    for path in ("/v1/catalog/modules/nope", "/v1/catalog/features/nope", "/v1/catalog/policies/nope",
                 "/v1/catalog/revisions/7", "/v1/catalog/prices/price_" + "0" * 26, "/v1/catalog/modules/nope/prices"):
        assert_problem(await client.get(path, headers=h), 404)


async def test_offers_differ_by_role_and_never_show_hidden_modules(
    client: AsyncTestClient[Any], key: str,
) -> None:
    await seed_demo(client, key)
    ana = await offers(client, key, "acme-ana")      # analyst, enterprise, us, USD
    vic = await offers(client, key, "acme-vic")      # viewer
    alice = await offers(client, key, "acme-alice")  # admin + manager
    by = {o["module"]: o for o in ana["data"]}
    assert ana["currency"] == "USD" and ana["roles"] == ["analyst"]
    assert by["connector_pack"]["effect"] == "approval_required"
    assert "rule 2 of policy 'data-by-role'" in by["connector_pack"]["reason"]
    assert by["forecasting"]["effect"] == "purchasable" and by["forecasting"]["requires_unmet"] == ["ai_insights"]
    assert by["reports_basic"]["trial_available"] and by["reports_basic"]["trial_days"] == 14
    assert {p["currency"] for o in ana["data"] for p in o["prices"]} == {"USD"}
    assert "sso_saml" not in by and "white_label" not in by and "legacy_charts" not in by
    vic_by = {o["module"]: o for o in vic["data"]}
    assert not any(k in vic_by for k in ("connector_pack", "forecasting", "sso_saml"))
    assert vic_by["advanced_charts"]["effect"] == "visible" and not vic_by["advanced_charts"]["trial_available"]
    assert vic_by["comments"]["effect"] == "purchasable"
    alice_by = {o["module"]: o for o in alice["data"]}
    assert alice_by["sso_saml"]["effect"] == "purchasable" and alice_by["connector_pack"]["effect"] == "purchasable"
    assert len(vic["data"]) < len(ana["data"]) < len(alice["data"])
    # every offer explains itself and shows what it unlocks
    for o in ana["data"]:
        assert o["effect"] != "hidden" and o["reason"].startswith(o["effect"]) and o["unlocks"] and not o["owned"]
    # EUR account, EU region: prices in EUR and geo maps need approval
    greta = {o["module"]: o for o in (await offers(client, key, "globex-greta"))["data"]}
    assert greta["geo_maps"]["effect"] == "approval_required"
    assert {p["currency"] for o in greta.values() for p in o["prices"]} == {"EUR"}
    # smb: embedding hidden, AI visible only
    peter = {o["module"]: o for o in (await offers(client, key, "initech-peter"))["data"]}
    assert "embedded_analytics" not in peter and peter["ai_insights"]["effect"] == "visible"


async def test_offers_respect_tenancy(client: AsyncTestClient[Any], key: str) -> None:
    await seed_demo(client, key)
    ana = await session_token(client, key, "acme", "acme-ana")
    alice = await session_token(client, key, "acme", "acme-alice")
    gert = await session_token(client, key, "globex", "globex-gert")
    assert (await offers(client, ana, "acme-ana"))["user"] == "acme-ana"
    assert_problem(await client.get("/v1/offers", params={"user": "acme-vic"}, headers=bearer(ana)), 404)
    assert (await offers(client, alice, "acme-vic"))["user"] == "acme-vic"  # an admin, for its own account
    r = await client.get("/v1/offers", params={"user": "acme-ana"}, headers=bearer(gert))
    assert_problem(r, 404)
    assert "acme" not in r.text.replace("acme-ana", "")
    assert_problem(await client.get("/v1/offers", headers=bearer(key)), 400)
    # catalog administration is for vendor keys only
    assert_problem(await client.post("/v1/catalog/plan", json={"toml": DEMO}, headers=bearer(alice)), 403)
    assert_problem(await client.get("/v1/catalog/modules", headers=bearer(alice)), 403)
    reader = await make_key_scoped(client, key)
    assert_problem(await client.post("/v1/catalog/apply", json={"toml": DEMO}, headers=bearer(reader)), 403)


async def make_key_scoped(client: AsyncTestClient[Any], key: str) -> str:
    r = await client.post("/v1/api-keys", json={"name": "reader", "scopes": ["catalog:read"]}, headers=bearer(key))
    assert r.status_code == 201, r.text
    return str(r.json()["secret"])


@pytest.mark.parametrize(("change", "field", "needle"), [
    (("features = { reports = 500, pdf_export = true", "features = { reports = 500, pdf_exports = true"),
     "modules.reports_pro.features.pdf_exports", "unknown feature 'pdf_exports'"),
    (('requires = ["reports_basic"]\n', 'requires = ["report_automation"]\n'), "modules.report_automation.requires",
     "requires cycle: report_automation -> reports_pro -> report_automation"),
    (("amount_minor = 2400", "amount_minor = -2400"), "modules[1].prices[0].amount_minor",
     ">= 0 in module 'reports_pro'"),
    (('currency = "EUR", amount_minor = 2200', 'currency = "EUX", amount_minor = 2200'),
     "modules.reports_pro.prices.recurring:month:EUX.currency", "unknown currency 'EUX'"),
    (('currency = "EUR", amount_minor = 2200', 'currency = "USD", amount_minor = 2200'),
     "modules.reports_pro.prices", "two current versions"),
    (('module = "geo_maps"', 'module = "geo_mapz"'), "policies.geo-maps-eu-approval.module",
     "unknown module 'geo_mapz'"),
])
async def test_bad_catalogs_are_rejected_naming_the_culprit_and_nothing_is_applied(
    client: AsyncTestClient[Any], key: str, change: tuple[str, str], field: str, needle: str,
) -> None:
    await seed_demo(client, key)
    bad = DEMO.replace(*change, 1).replace("Reports Basic", "Reports Starter")
    assert bad != DEMO
    for route in ("plan", "apply"):
        r = await client.post(f"/v1/catalog/{route}", json={"toml": bad}, headers=bearer(key))
        body = assert_problem(r, 422, "catalog_invalid")
        assert any(e["field"] == field and needle in e["message"] for e in body["errors"]), body
        assert field in body["detail"]
    module = (await client.get("/v1/catalog/modules/reports_basic", headers=bearer(key))).json()
    assert module["name"] == "Reports Basic"
    assert len((await client.get("/v1/catalog/revisions", headers=bearer(key))).json()["data"]) == 1


async def test_malformed_bodies_are_4xx_problems(client: AsyncTestClient[Any], key: str) -> None:
    h = bearer(key)
    body = assert_problem(await client.post("/v1/catalog/plan", json={}, headers=h), 422, "catalog_invalid")
    assert body["errors"][0]["field"] == "toml"
    assert_problem(await client.post("/v1/catalog/plan", json={"toml": "x", "document": {}}, headers=h), 422)
    body = assert_problem(await client.post("/v1/catalog/plan", json={"toml": "[[modules]\n"}, headers=h), 422)
    assert body["errors"][0]["field"] == "toml"
    r = await client.post("/v1/catalog/plan", json={"document": {"modules": [{"key": "a\u0000"}]}}, headers=h)
    assert_problem(r, 400, "validation_failed")
    r = await client.post("/v1/catalog/plan", json={"toml": "a = 1", "extra": 1}, headers=h)
    assert_problem(r, 400, "validation_failed")
    for params in ({"currency": "usd"}, {"history": "maybe"}):
        r = await client.get("/v1/catalog/modules/x/prices", params=params, headers=h)
        assert_problem(r, 400)
    assert_problem(await client.get("/v1/catalog/revisions/0", headers=h), 400)
    assert_problem(await client.get("/v1/catalog/modules/Bad!", headers=h), 400)
