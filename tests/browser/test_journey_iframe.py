"""Iframe mode: the widget runs in a frame on the service's origin; a purchase there unlocks the host page."""

from __future__ import annotations

from playwright.async_api import expect

from tests.browser.conftest import Stack


async def test_purchase_inside_the_iframe_unlocks_the_host_page(stack: Stack) -> None:
    page = await stack.open("acme-ana")
    panel = page.locator("section.panel[data-feature=nl_query]")
    frame = page.frame_locator("section.panel[data-feature=nl_query] iframe")
    await expect(frame.get_by_role("heading", name="Unlock Ask in plain language")).to_be_visible()
    src = await panel.locator("iframe").get_attribute("src")
    assert src is not None and src.startswith(stack.api + "/widget/v1/")
    await frame.get_by_role("button", name="Buy").click()
    await expect(frame.get_by_role("dialog").get_by_role("button", name="Confirm purchase")).to_be_visible()
    await stack.shot(page, "iframe-quote")
    # the frame grows to fit the dialog while it opens; activate by keyboard, which needs no stable layout
    confirm = frame.get_by_role("button", name="Confirm purchase")
    await confirm.focus()
    await confirm.press("Enter")
    await expect(panel).to_have_attribute("data-state", "unlocked")
    await expect(page.locator("#event-log")).to_contain_text("access granted: nl_query (order)")
    await expect(frame.get_by_role("dialog", name="Ask Data is yours")).to_be_visible()
    await stack.shot(page, "iframe-granted")
    assert stack.allowed("acme-ana", "nl_query")
