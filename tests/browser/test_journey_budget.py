"""Journey 1: a denied feature shows the offer with its reason; buying on the team budget unlocks the feature on
the host page without a reload, and the entitlement check agrees."""

from __future__ import annotations

import re

from playwright.async_api import expect

from tests.browser.conftest import Stack


async def test_denied_feature_bought_on_budget_unlocks_without_reload(stack: Stack) -> None:
    assert not stack.allowed("acme-ana", "forecasting")
    page = await stack.open("acme-ana")
    offer = page.locator("section.panel[data-feature=forecasting]")
    await expect(offer.get_by_role("heading", name="Unlock Forecasting")).to_be_visible()
    await expect(offer.get_by_text("You can buy this yourself.")).to_be_visible()
    await expect(offer.get_by_text("$29.00 per seat per month")).to_be_visible()
    # the prerequisite the quote adds is named with its own price (metered: what is included, then per insight)
    needs = re.compile(r"^Needs AI Insights \(50 a month included, then \$0\.20 per insight.*\) first; "
                       r"the quote includes it\.$")
    await expect(offer.get_by_text(needs)).to_be_visible()
    await stack.shot(page, "offer")
    navigations: list[str] = []
    page.on("framenavigated", lambda f: navigations.append(f.url) if f == page.main_frame else None)

    await offer.get_by_role("button", name="Buy").click()
    dialog = page.get_by_role("dialog", name="Confirm your purchase")
    await expect(dialog.get_by_role("button", name="Confirm purchase")).to_be_visible()
    await expect(dialog.get_by_text("Your team's budget")).to_be_visible()
    await expect(dialog.get_by_text("No approval needed.")).to_be_visible()
    await expect(dialog.get_by_text("Price held for")).to_be_visible()
    await expect(dialog.get_by_text("AI Insights", exact=True)).to_be_visible()
    await stack.shot(page, "quote")

    await dialog.get_by_role("button", name="Confirm purchase").click()
    await expect(page.get_by_role("dialog", name="Forecasting is yours")).to_be_visible()
    await expect(offer).to_have_attribute("data-state", "unlocked")
    await expect(offer.get_by_text("Forecasting is unlocked.")).to_be_visible()
    await expect(page.locator("#event-log")).to_contain_text("access granted: forecasting (order)")
    await stack.shot(page, "granted")
    await page.get_by_role("button", name="Continue").click()
    await expect(page.get_by_role("dialog")).to_have_count(0)

    assert navigations == []  # no reload: the page unlocked itself on the widget's event
    assert stack.allowed("acme-ana", "forecasting")
    orders = stack.vendor("GET", "/v1/orders", params={"user": "acme-ana"}).json()["data"]
    assert [(o["state"], o["route"]) for o in orders] == [("fulfilled", "budget")]


async def test_offer_and_quote_have_no_serious_accessibility_violations(stack: Stack) -> None:
    page = await stack.open("acme-ana")
    await expect(page.get_by_role("heading", name="Unlock Forecasting")).to_be_visible()
    await expect(page.get_by_role("heading", name="Suggested for you")).to_be_visible()
    await stack.axe(page)
    await page.locator("section.panel[data-feature=forecasting]").get_by_role("button", name="Buy").click()
    await expect(page.get_by_role("button", name="Confirm purchase")).to_be_visible()
    await stack.axe(page)
