"""Journey 5: a double click on Confirm and an answer lost on the way back (retried with the same key) buy once."""

from __future__ import annotations

from playwright.async_api import Route, expect

from tests.browser.conftest import Stack


async def test_double_click_and_dropped_answer_place_exactly_one_order(stack: Stack) -> None:
    page = await stack.open("acme-ana")
    keys: list[str | None] = []

    async def drop_first_answer(route: Route) -> None:
        if route.request.method != "POST":
            await route.continue_()
            return
        keys.append(await route.request.header_value("idempotency-key"))
        if len(keys) == 1:
            await route.fetch()  # the server places the order ...
            await route.abort("connectionreset")  # ... and the answer never reaches the browser
        else:
            await route.continue_()

    await page.route("**/v1/orders", drop_first_answer)
    panel = page.locator("section.panel[data-feature=advanced_charts]")
    await panel.get_by_role("button", name="Buy").click()
    confirm = page.get_by_role("dialog").get_by_role("button", name="Confirm purchase")
    await confirm.dblclick()
    await expect(page.get_by_role("dialog", name="Advanced Charts is yours")).to_be_visible()
    await expect(panel).to_have_attribute("data-state", "unlocked")
    await stack.shot(page, "bought-once")

    assert len(keys) == 2 and keys[0] == keys[1] and keys[0]  # one retry, the same Idempotency-Key
    orders = stack.vendor("GET", "/v1/orders", params={"user": "acme-ana"}).json()["data"]
    assert [o["lines"][0]["module"] for o in orders] == ["advanced_charts"]
    assert orders[0]["state"] == "fulfilled"
