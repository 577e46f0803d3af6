"""Trials: start one from the offer, see the days left, and the host page unlocks at once; Buy now converts."""

from __future__ import annotations

from playwright.async_api import expect

from tests.browser.conftest import Stack


async def test_trial_started_from_the_offer_unlocks_and_offers_to_convert(stack: Stack) -> None:
    page = await stack.open("acme-ana")
    panel = page.locator("section.panel[data-feature=advanced_charts]")
    await expect(panel.get_by_text("Try it free for 30 days.")).to_be_visible()
    await panel.get_by_role("button", name="Start trial").click()
    await expect(panel.get_by_role("heading", name="Your Advanced Charts trial is on")).to_be_visible()
    await expect(panel.get_by_text("30 days left in your trial.")).to_be_visible()
    await expect(panel).to_have_attribute("data-state", "unlocked")
    await expect(page.locator("#event-log")).to_contain_text("access granted: advanced_charts (trial)")
    await stack.shot(page, "trial-on")
    assert stack.allowed("acme-ana", "advanced_charts")

    await panel.get_by_role("button", name="Buy now").click()
    await expect(page.get_by_role("dialog").get_by_role("button", name="Confirm purchase")).to_be_visible()
    await page.get_by_role("dialog").get_by_role("button", name="Confirm purchase").click()
    await expect(page.get_by_role("dialog", name="Advanced Charts is yours")).to_be_visible()
    orders = stack.vendor("GET", "/v1/orders", params={"user": "acme-ana"}).json()["data"]
    assert [(o["lines"][0]["module"], o["state"]) for o in orders] == [("advanced_charts", "fulfilled")]
