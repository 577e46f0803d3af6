"""Journey 6: a purchase with the keyboard alone; focus moves into the dialog and back out of it."""

from __future__ import annotations

import asyncio

from playwright.async_api import Page, expect

from tests.browser.conftest import Stack


async def tab_to(stack: Stack, page: Page, target: str, *, limit: int = 60) -> None:
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await stack.deep_focus(page) == target:
            return
    raise AssertionError(f"{target!r} not reachable with Tab; focus is on {await stack.deep_focus(page)!r}")


async def focus_settles_on(stack: Stack, page: Page, prefix: str) -> None:
    focus = ""
    for _ in range(100):
        focus = await stack.deep_focus(page)
        if focus.startswith(prefix):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"focus stayed on {focus!r}, not {prefix!r}")


async def test_purchase_with_the_keyboard_only(stack: Stack) -> None:
    page = await stack.open("acme-ana")
    panel = page.locator("section.panel[data-feature=shared_workspaces]")
    await expect(panel.get_by_role("heading", name="Unlock Shared workspaces")).to_be_visible()
    await expect(page.get_by_role("heading", name="Suggested for you")).to_be_visible()

    # Escape closes the dialog and gives focus back to the widget
    await tab_to(stack, page, "button:Buy")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("button", name="Confirm purchase")).to_be_visible()
    await focus_settles_on(stack, page, "h2:Confirm your purchase")  # the dialog moves focus to its heading
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("dialog")).to_have_count(0)
    await focus_settles_on(stack, page, "h2:Unlock Forecasting")  # focus returns as the dialog is torn down
    await expect(page.locator("#event-log")).to_contain_text("dismissed: forecasting (checkout)")

    # the first Buy belongs to Forecasting: go on to the Shared workspaces offer
    for _ in range(3):
        await tab_to(stack, page, "button:Buy")
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Confirm your purchase")
    await expect(dialog.get_by_text("Shared Workspaces", exact=True)).to_be_visible()
    await tab_to(stack, page, "button:Confirm purchase", limit=5)
    await stack.shot(page, "keyboard-confirm-focused")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("dialog", name="Shared Workspaces is yours")).to_be_visible()
    await tab_to(stack, page, "button:Continue", limit=5)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("dialog")).to_have_count(0)
    await expect(panel).to_have_attribute("data-state", "unlocked")
    await focus_settles_on(stack, page, "h2:Shared workspaces is on")  # as the success dialog is torn down
    await stack.shot(page, "keyboard-done")
    assert stack.allowed("acme-ana", "shared_workspaces")
