"""Vendor console journeys in Chromium on the demo's data: a catalog change planned (with the price migration
existing owners get) and applied; the availability matrix agreeing with /v1/offers; the accounts, suggestions,
sales credit and webhooks pages; a customer admin kept out of every vendor page and other accounts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from importlib import resources

from playwright.async_api import expect

from tests.browser.conftest import Stack
from tests.browser.consoles import admin, ready, vendor, visit

GEO_USD = ('  { model = "recurring", interval = "month", per_seat = true, currency = "USD", amount_minor = 900 },\n'
           '  { model = "recurring", interval = "month", per_seat = true, currency = "EUR", amount_minor = 850 },\n'
           ']\n\n[[modules]]\nkey = "dashboards_plus"')


def changed_catalog(tmp: str) -> str:
    """The demo catalog with geo_maps dearer in USD, existing owners moving in 60 days."""
    text = (resources.files("catalog") / "examples" / "demo.toml").read_text(encoding="utf-8")
    assert GEO_USD in text
    at = (datetime.now(UTC) + timedelta(days=60)).strftime("%Y-%m-%dT00:00:00Z")
    new = f'currency = "USD", amount_minor = 1100, migrate_existing_at = {at} }}'
    return text.replace(GEO_USD, GEO_USD.replace('currency = "USD", amount_minor = 900 }', new))


async def test_vendor_uploads_a_catalog_change_sees_the_plan_with_affected_owners_and_applies_it(
        stack: Stack, tmp_path: object) -> None:
    revision = stack.vendor("GET", "/v1/catalog/revisions").json()["data"][0]["revision"]
    page = await vendor(stack)
    await expect(page).to_have_url(f"{stack.api}/console/catalog")
    await expect(page.get_by_role("table", name="Modules with their current prices")
                 .get_by_role("row", name="Geo maps")).to_contain_text("$9.00")
    await stack.axe(page)
    await stack.shot(page, "catalog")
    path = stack.artifacts / "catalog.toml"
    path.write_text(changed_catalog(str(tmp_path)))
    await page.get_by_label("Catalog file").set_input_files(str(path))
    await expect(page.get_by_label("Catalog TOML")).to_have_value(path.read_text())
    await page.get_by_role("button", name="Plan the change").click()
    plan = page.get_by_role("table", name="What applying would change")
    row = plan.get_by_role("row").filter(has_text="geo_maps/")
    await expect(row).to_contain_text("existing owners move at")
    await expect(row).to_contain_text("$9.00 → $11.00")
    await stack.axe(page)
    await stack.shot(page, "catalog-plan")
    assert stack.vendor("GET", "/v1/catalog/revisions").json()["data"][0]["revision"] == revision  # plan writes nothing
    await page.get_by_role("button", name=f"Apply as revision {revision + 1}").click()
    await expect(page.get_by_role("status").filter(has_text=f"the catalog is now at revision {revision + 1}")
                 ).to_be_visible()
    prices = stack.vendor("GET", "/v1/catalog/modules/geo_maps/prices").json()["data"]
    assert any(p["currency"] == "USD" and p["amount_minor"] == 1100 for p in prices)


async def test_availability_matrix_cell_reason_matches_the_offers_api(stack: Stack) -> None:
    offers = stack.vendor("GET", "/v1/offers", params={"user": "acme-vic"}).json()
    assert offers["roles"] == ["viewer"] and (offers["segment"], offers["region"]) == ("enterprise", "us")
    offer = next(o for o in offers["data"] if not o["owned"] and o["policy"] is not None)
    page = await vendor(stack)
    await page.get_by_role("link", name="Availability").click()
    await ready(page)
    await page.get_by_label("Segment").select_option("enterprise")
    await page.get_by_label("Region").select_option("us")
    cell = page.get_by_role("button", name=f"{offer['name']} for viewer: {offer['effect'].replace('_', ' ')}")
    await cell.click()
    detail = page.locator(".cell-detail")
    await expect(detail.get_by_role("heading", name=f"{offer['name']} for viewer")).to_be_visible()
    await expect(detail.locator(".reason")).to_have_text(offer["reason"])
    await stack.axe(page)
    await stack.shot(page, "availability")


async def test_vendor_pages_accounts_suggestions_credit_and_webhooks(stack: Stack) -> None:
    r = stack.vendor("POST", "/v1/webhook-endpoints", json={"url": "https://hooks.vendor.test/commerce"})
    assert r.status_code == 201, r.text
    page = await vendor(stack)
    for name, check in (("Accounts", "Acme Analytics"), ("Suggestions", "Lift against the holdout"),
                        ("Sales credit", "This month"), ("Webhooks", "https://hooks.vendor.test/commerce")):
        await page.get_by_role("link", name=name, exact=True).click()
        await ready(page)
        await expect(page.get_by_text(check).first).to_be_visible()
        await stack.axe(page)
        await stack.shot(page, name.lower().replace(" ", "-"))
    await page.get_by_role("button", name="Rotate the signing secret").click()
    await expect(page.get_by_role("status").filter(has_text="New secret (shown once)")).to_be_visible()
    # the vendor opens an account's admin pages from the accounts list
    await visit(stack, page, "/console/accounts")
    await page.get_by_role("link", name="Globex GmbH").click()
    await ready(page)
    await expect(page.get_by_role("heading", name="Globex GmbH modules")).to_be_visible()
    await page.set_viewport_size({"width": 390, "height": 844})
    await visit(stack, page, "/console/suggestions")
    # the funnel's figures are in the chart's name, for a screen reader
    funnel = re.compile(r"^Suggestion funnel: .*: Shown \d+; Clicked \d+ · ")
    await expect(page.get_by_role("img", name=funnel)).to_be_visible()
    # the stack holds nobody out: the page says why there is no lift, not "not enough data yet"
    await expect(page.get_by_text("No holdout: every user sees suggestions")).to_be_visible()
    await stack.shot(page, "suggestions-phone")


async def test_customer_admin_cannot_open_vendor_pages_or_another_account(stack: Stack) -> None:
    page = await admin(stack)
    for path in ("/console/catalog", "/console/availability", "/admin/budgets?account=globex"):
        response = await page.goto(stack.api + path)
        assert response is not None and response.status == 403, path
    await expect(page.get_by_role("heading", name="Not your account")).to_be_visible()
    status = await page.evaluate("async () => (await fetch('/v1/accounts/globex/budgets')).status")
    assert status == 404
    status = await page.evaluate("async () => (await fetch('/v1/suggestions/stats')).status")
    assert status == 403
    await stack.shot(page, "not-your-account")
