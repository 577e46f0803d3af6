"""Journey 7: a token that stopped working mid-purchase is refreshed by the host page and the purchase continues.

The token is made invalid by revoking the user's tokens through the API (the same 401 an expired token gets,
without waiting out a TTL): the mounted widget calls onTokenExpired, the tag-embedded one fires
commerce:token-expired, and both go on with the fresh token.
"""

from __future__ import annotations

import httpx
from playwright.async_api import expect

from tests.browser.conftest import Stack


async def test_rejected_token_is_refreshed_through_the_host_and_the_purchase_continues(stack: Stack) -> None:
    page = await stack.open("acme-ana")
    forecasting = page.locator("section.panel[data-feature=forecasting]")
    await expect(forecasting.get_by_role("heading", name="Unlock Forecasting")).to_be_visible()
    old = await page.locator("commerce-suggestions").get_attribute("token")
    assert stack.vendor("POST", "/v1/accounts/acme/users/acme-ana/revoke-tokens").status_code == 200
    for _ in range(100):  # every app process hears of the revocation (NOTIFY); wait until this one has
        if httpx.get(stack.api + "/v1/me", headers={"Authorization": f"Bearer {old}"}).status_code == 401:
            break

    await forecasting.get_by_role("button", name="Buy").click()  # Commerce.mount(..., {onTokenExpired})
    await page.get_by_role("dialog").get_by_role("button", name="Confirm purchase").click()
    await expect(forecasting).to_have_attribute("data-state", "unlocked")
    await expect(page.locator("#event-log")).to_contain_text("token refreshed")
    await page.get_by_role("button", name="Continue").click()

    charts = page.locator("section.panel[data-feature=advanced_charts]")  # <commerce-offer token="...">
    await charts.get_by_role("button", name="Buy").click()
    await page.get_by_role("dialog").get_by_role("button", name="Confirm purchase").click()
    await expect(charts).to_have_attribute("data-state", "unlocked")
    await stack.shot(page, "continued-after-refresh")
    assert stack.allowed("acme-ana", "forecasting") and stack.allowed("acme-ana", "advanced_charts")
