"""Catalog as code declares tax: a tax code per module and a tax behaviour per price, versioned like the rest."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from app.clock import FrozenClock
from app.demo import demo_catalog_toml
from tests.api.test_auth import assert_problem
from tests.factories import bearer, make_key

DEMO = demo_catalog_toml()
EUR_BASIC = '{ model = "recurring", interval = "month", per_seat = true, currency = "EUR", amount_minor = 850 }'


async def test_tax_codes_and_behaviours_are_planned_applied_and_exported(
        client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock) -> None:
    key = await make_key(sessionmaker, clock)
    assert (await client.post("/v1/catalog/apply", json={"toml": DEMO}, headers=bearer(key))).status_code == 200
    changed = DEMO.replace('tax_code = "txcd_10103000"', "").replace(
        'tax_code = "txcd_10103001"', 'tax_code = "txcd_10103000"').replace(
        EUR_BASIC, EUR_BASIC.replace(" }", ', tax_behavior = "inclusive" }'))
    assert changed != DEMO
    planned = (await client.post("/v1/catalog/plan", json={"toml": changed}, headers=bearer(key))).json()
    kinds = {(c["kind"], c["key"]) for c in planned["changes"]}
    assert ("module", "reports_basic") in kinds and any(k == "price" for k, _ in kinds), planned["changes"]
    assert (await client.post("/v1/catalog/apply", json={"toml": changed}, headers=bearer(key))).status_code == 200
    document = (await client.get("/v1/catalog/document", headers=bearer(key))).json()
    [basic] = [m for m in document["modules"] if m["key"] == "reports_basic"]
    assert basic["tax_code"] == "txcd_10103000"
    assert [p.get("tax_behavior") for p in basic["prices"] if p["currency"] == "EUR" and p["interval"] == "month"] == [
        "inclusive"]


async def test_a_malformed_tax_code_or_behaviour_is_refused_naming_it(
        client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock) -> None:
    key = await make_key(sessionmaker, clock)
    bad = DEMO.replace('tax_code = "txcd_10103001"', 'tax_code = "saas"')
    r = await client.post("/v1/catalog/plan", json={"toml": bad}, headers=bearer(key))
    body = assert_problem(r, 422)
    assert any("tax_code" in e["field"] for e in body["errors"]), body
    bad = DEMO.replace(EUR_BASIC, EUR_BASIC.replace(" }", ', tax_behavior = "gross" }'))
    body = assert_problem(await client.post("/v1/catalog/plan", json={"toml": bad}, headers=bearer(key)), 422)
    assert any("tax_behavior" in e["field"] for e in body["errors"]), body
