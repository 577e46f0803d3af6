"""Journey 4: suggestions are shown with their reasons; Not now is respected on the next request."""

from __future__ import annotations

from playwright.async_api import expect

from tests.browser.conftest import Stack


async def test_not_now_removes_a_suggestion_and_the_next_request_respects_it(stack: Stack) -> None:
    page = await stack.open("acme-ana")
    region = page.get_by_role("region", name="Suggested for you")
    cards = region.get_by_role("article")
    await expect(cards.first).to_be_visible()
    names = await region.get_by_role("heading", level=3).all_inner_texts()
    assert 1 <= len(names) <= 3
    first = names[0]
    card = region.get_by_role("article", name=first)
    await expect(card.get_by_role("list", name="Why this").get_by_role("listitem").first).to_be_visible()
    await stack.shot(page, "suggestions")

    await card.get_by_role("button", name="Not now").click()
    await expect(region.get_by_role("article", name=first)).to_have_count(0)
    await expect(page.locator("#event-log")).to_contain_text("dismissed:")
    await stack.shot(page, "after-not-now")

    await page.reload()
    await expect(region.get_by_role("article").first).to_be_visible()
    assert first not in await region.get_by_role("heading", level=3).all_inner_texts()
    await stack.shot(page, "next-visit")
