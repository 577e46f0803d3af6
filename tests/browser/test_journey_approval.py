"""Journey 3: a viewer requests approval with a reason; an approver approves through the API and the widget shows
access without a reload."""

from __future__ import annotations

from playwright.async_api import expect

from tests.browser.conftest import Stack


async def test_viewer_request_approved_through_api_shows_access_without_reload(stack: Stack) -> None:
    page = await stack.open("acme-vic")
    panel = page.locator("section.panel[data-feature=shared_workspaces]")
    await expect(panel.get_by_role("heading", name="Unlock Shared workspaces")).to_be_visible()
    # what a viewer may not buy says so instead of offering a button
    charts = page.locator("section.panel[data-feature=advanced_charts]")
    await expect(charts.get_by_text("Your role cannot buy this. Ask your admin to add it for you.")).to_be_visible()
    await expect(charts.get_by_role("button", name="Buy")).to_have_count(0)
    await stack.shot(page, "offers-for-a-viewer")

    await panel.get_by_role("button", name="Buy").click()
    dialog = page.get_by_role("dialog", name="Request approval")
    await expect(dialog.get_by_text("An approver must agree first.")).to_be_visible()
    await dialog.get_by_label("Why do you need it? (shown to your approver)").fill("Q4 planning with the EU team")
    await stack.axe(page)
    await stack.shot(page, "request-with-reason")
    await dialog.get_by_role("button", name="Send request").click()
    await expect(page.get_by_role("dialog", name="Request sent")).to_be_visible()
    await page.get_by_role("button", name="Close", exact=True).click()
    await expect(panel.get_by_role("heading", name="Waiting for approval")).to_be_visible()
    await expect(panel.get_by_text("You have temporary access for")).to_be_visible()
    await expect(page.locator("#event-log")).to_contain_text("approval requested: shared_workspaces")
    await stack.shot(page, "pending")

    pending = [a for a in stack.vendor("GET", "/v1/accounts/acme/approvals", params={"state": "pending"}).json()["data"]
               if a["requester"] == "acme-vic"]  # the demo also has a colleague waiting
    assert [(a["requester"], a["reason"], a["modules"]) for a in pending] == [
        ("acme-vic", "Q4 planning with the EU team", ["shared_workspaces"])]
    r = stack.vendor("POST", f"/v1/approvals/{pending[0]['id']}/approve", json={"note": "ok for Q4"})
    assert r.status_code == 200, r.text

    await expect(panel).to_have_attribute("data-state", "unlocked")
    await expect(panel.get_by_role("heading", name="Shared workspaces is on")).to_be_visible()
    await expect(page.locator("#event-log")).to_contain_text("access granted: shared_workspaces (approval)")
    await stack.shot(page, "approved")
    assert stack.allowed("acme-vic", "shared_workspaces")
