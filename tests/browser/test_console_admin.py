"""Admin console journeys in Chromium on the demo's data: sign in by a console link, budgets cross-checked with
the API, guardrails simulated and saved, an approval requested in the widget and approved in the console, a
seat reclaimed; a keyboard-only path; every page checked by axe and photographed."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from playwright.async_api import expect

from tests.browser.conftest import Stack
from tests.browser.consoles import admin, ready, visit


async def settled_budget(stack: Stack) -> dict[str, Any]:
    """Acme's budget once its figures stop moving (three equal reads half a second apart)."""
    reads: list[dict[str, Any]] = []
    for _ in range(240):
        reads = [*reads[-2:], stack.vendor("GET", "/v1/accounts/acme/budgets").json()["data"][0]]
        if len(reads) == 3 and reads[0] == reads[1] == reads[2]:
            return reads[-1]
        await asyncio.sleep(0.5)
    raise AssertionError(f"acme's budget kept moving: {reads}")


async def test_admin_signs_in_by_link_and_sees_budget_figures_the_api_reports(stack: Stack) -> None:
    page = await admin(stack)
    await expect(page).to_have_url(f"{stack.api}/admin/budgets")
    await expect(page.get_by_role("heading", name="Budgets", level=1)).to_be_visible()
    fields = (("amount", "period_amount_minor"), ("captured", "captured_minor"), ("held", "reserved_minor"),
              ("left", "remaining_minor"))
    api = await settled_budget(stack)  # the app's renewal job renews the demo's monthly purchases at start
    await page.reload()
    await ready(page)
    card = page.get_by_role("region", name=api["name"])
    for figure, field in fields:
        await expect(card.locator(f"[data-figure={figure}]")).to_have_text(f"${api[field] / 100:,.2f}")
    await expect(card.get_by_role("img", name="used this period")).to_be_visible()
    await stack.axe(page)
    await stack.shot(page, "budgets")
    await page.set_viewport_size({"width": 390, "height": 844})
    await stack.shot(page, "budgets-phone")


async def test_admin_edits_guardrails_simulates_on_history_and_saves_a_new_version(stack: Stack) -> None:
    before = stack.vendor("GET", "/v1/accounts/acme/guardrails").json()
    page = await admin(stack)
    await page.get_by_role("link", name="Guardrails").click()
    await ready(page)
    save = page.get_by_role("button", name="Save as a new version")
    await expect(save).to_be_disabled()  # nothing is saved before it is simulated
    await page.get_by_label("Auto-approve purchases up to (USD)").fill("10.00")
    await page.get_by_role("button", name="Simulate on the last 90 days").click()
    sim = page.get_by_role("region", name="Simulation over")
    await expect(sim.get_by_role("row", name=re.compile("^Sent for approval"))).to_be_visible()
    await expect(sim.get_by_text("auto_approve_limit_minor: 10000 → 1000")).to_be_visible()
    # the seeded history has purchases between 10 and 100 dollars: the draft sends some for approval
    await expect(sim.get_by_role("table", name="Purchases the draft would decide differently")).to_be_visible()
    await stack.axe(page)
    await stack.shot(page, "guardrails-simulated")
    assert stack.vendor("GET", "/v1/accounts/acme/guardrails").json()["version"] == before["version"]
    await save.click()
    saved = f"Saved as version {before['version'] + 1}"
    await expect(page.get_by_role("status").filter(has_text=saved)).to_be_visible()
    after = stack.vendor("GET", "/v1/accounts/acme/guardrails").json()
    assert after["version"] == before["version"] + 1
    assert after["policy"]["auto_approve_limit_minor"] == 1000
    assert after["policy"]["role_rules"] == before["policy"]["role_rules"]  # the rest of the policy is kept
    audit = stack.vendor("GET", "/v1/accounts/acme/audit-log").json()["data"]
    assert any(e["action"].startswith("guardrails") and e["actor"].startswith("user:") for e in audit)


async def test_approval_requested_in_the_widget_is_approved_in_the_console_and_the_widget_shows_access(
        stack: Stack) -> None:
    console = await admin(stack)
    await console.get_by_role("link", name="Approvals").click()
    await ready(console)
    asked = console.get_by_role("heading", name="Colleague 1 (acme-s001) asks for Report Branding")
    await expect(asked).to_be_visible()

    widget = await stack.open("acme-vic")
    panel = widget.locator("section.panel[data-feature=shared_workspaces]")
    await panel.get_by_role("button", name="Buy").click()
    dialog = widget.get_by_role("dialog", name="Request approval")
    await dialog.get_by_label("Why do you need it? (shown to your approver)").fill("Q4 planning with the EU team")
    await dialog.get_by_role("button", name="Send request").click()
    await expect(widget.get_by_role("dialog", name="Request sent")).to_be_visible()

    # the console picks the new request up without a reload
    heading = console.get_by_role("heading", name="Vic Viewer (acme-vic) asks for Shared Workspaces")
    request = console.get_by_role("listitem").filter(has=heading)
    await expect(request).to_be_visible()
    await expect(request.get_by_text("Q4 planning with the EU team")).to_be_visible()
    await expect(request.get_by_text("Temporary access in force until")).to_be_visible()
    await stack.axe(console)
    await stack.shot(console, "approvals-queue")
    await request.get_by_label("Note to Vic Viewer (acme-vic) (optional)").fill("ok for Q4")
    await request.get_by_role("button", name="Approve Shared Workspaces for Vic Viewer (acme-vic)").click()
    await expect(console.get_by_role("status").filter(has_text="Approved: Shared Workspaces for Vic Viewer (acme-vic).")
                 ).to_be_visible()
    decided = console.get_by_role("table", name="Decided requests, newest first")
    await expect(decided.get_by_role("row", name="acme-vic")).to_contain_text("ok for Q4")
    await stack.shot(console, "approvals-decided")

    await expect(panel).to_have_attribute("data-state", "unlocked")
    await expect(panel.get_by_role("heading", name="Shared workspaces is on")).to_be_visible()
    assert stack.allowed("acme-vic", "shared_workspaces")
    approval = next(a for a in stack.vendor("GET", "/v1/accounts/acme/approvals").json()["data"]
                    if a["requester"] == "acme-vic")
    assert (approval["state"], approval["decision_note"]) == ("approved", "ok for Q4")
    assert approval["decided_by"] is not None


async def test_admin_reclaims_an_unused_seat_and_the_users_check_says_no(stack: Stack) -> None:
    assert stack.allowed("acme-vic", "nl_query")
    page = await admin(stack)
    await page.get_by_role("link", name="Adoption").click()
    await ready(page)
    await expect(page.get_by_role("heading", name="nl_query: 1 of 2 seats taken")).to_be_visible()
    await stack.axe(page)
    await stack.shot(page, "adoption")
    await page.get_by_role("button", name="Reclaim acme-vic's seat").click()
    await expect(page.get_by_role("status").filter(has_text="Reclaimed the nl_query seat of acme-vic.")).to_be_visible()
    await expect(page.get_by_role("heading", name="nl_query: 0 of 2 seats taken")).to_be_visible()
    assert not stack.allowed("acme-vic", "nl_query")


async def test_admin_pages_spend_and_audit_show_the_accounts_data(stack: Stack) -> None:
    page = await admin(stack)
    await visit(stack, page, "/admin/spend")
    orders = stack.vendor("GET", "/v1/accounts/acme/orders", params={"limit": 100}).json()["data"]
    paid = [o for o in orders if o["state"] in ("paid", "fulfilled")]
    assert paid, "the demo seeds paid purchases"
    await expect(page.get_by_role("img", name="Spend per month (USD)")).to_be_visible()
    by_user = page.get_by_role("table", name="Spend by user")
    top = max({o["user"] for o in paid}, key=lambda u: sum(o["total_minor"] for o in paid if o["user"] == u))
    total = sum(o["total_minor"] - o["refunded_minor"] for o in paid if o["user"] == top)
    await expect(by_user.get_by_role("row", name=top)).to_contain_text(f"${total / 100:,.2f}")
    await stack.axe(page)
    await stack.shot(page, "spend")
    await visit(stack, page, "/admin/audit")
    await page.get_by_label("Filter by who, what or on what").fill("console.signed_in")
    await expect(page.get_by_role("table", name="Changes in the account, newest first")
                 .get_by_role("row").filter(has_text="console.signed_in")).not_to_have_count(0)
    await stack.axe(page)
    await stack.shot(page, "audit")
    await page.set_viewport_size({"width": 390, "height": 844})
    await visit(stack, page, "/admin/approvals")
    await stack.axe(page)
    await stack.shot(page, "approvals-phone")


async def test_keyboard_only_admin_approves_a_request(stack: Stack) -> None:
    page = await admin(stack)

    async def tab_to(name: str, limit: int = 60) -> None:
        for _ in range(limit):
            await page.keyboard.press("Tab")
            focused = await page.evaluate("() => (document.activeElement.getAttribute('aria-label') || "
                                          "document.activeElement.labels?.[0]?.textContent || "
                                          "document.activeElement.textContent || '').trim()")
            if focused == name:
                return
        raise AssertionError(f"{name!r} is not reachable with Tab")

    await tab_to("Skip to content")
    await tab_to("Approvals")
    await page.keyboard.press("Enter")
    await ready(page)
    await expect(page.get_by_role("heading", name="Colleague 1 (acme-s001) asks for Report Branding")).to_be_visible()
    await tab_to("Note to Colleague 1 (acme-s001) (optional)")
    await page.keyboard.type("Go ahead")
    await tab_to("Approve Report Branding for Colleague 1 (acme-s001)")
    await stack.shot(page, "keyboard-focus-on-approve")
    await page.keyboard.press("Enter")
    approved = page.get_by_role("status").filter(has_text="Approved: Report Branding for Colleague 1 (acme-s001).")
    await expect(approved).to_be_visible()
    approval = next(a for a in stack.vendor("GET", "/v1/accounts/acme/approvals").json()["data"]
                    if a["requester"] == "acme-s001")
    assert (approval["state"], approval["decision_note"]) == ("approved", "Go ahead")


async def test_charts_keep_every_label_inside_the_drawing_however_wide_the_figures(stack: Stack) -> None:
    page = await admin(stack)
    found = await page.evaluate("""async () => {
        const src = document.querySelector("script[type=module]").src;
        const { columns, hbars, niceCeil } = await import(new URL("charts.mjs", src).href);
        const usd = (minor) => "$" + (minor / 100).toLocaleString("en-US", { minimumFractionDigits: 2 });
        const box = document.createElement("section");
        box.setAttribute("aria-label", "wide charts");
        box.append(
            columns({ title: "Huge spend", labels: ["2026-01", "2026-02"], format: usd,
                      series: [{ name: "Spend", values: [123456789012, 5], cls: "captured" }] }),
            hbars({ title: "Long names", format: usd, rows: [
                { label: "Maximiliana Featherstonehaugh-Worthington (acme-user-000001)", value: 98765432101,
                  note: "1,234 purchases" },
                { label: "B", value: 1 }] }));
        document.querySelector("main").append(box);
        return { ticks: [...box.querySelectorAll("svg")[0].querySelectorAll("text.axis")].map((t) => t.textContent)
                         .filter((t) => t.startsWith("$")),
                 nice: [1, 7, 19, 120, 193067, 250001].map(niceCeil) };
    }""")
    assert found["ticks"] == ["$0.00", "$1,000,000,000.00", "$2,000,000,000.00"]  # round figures, sign and all
    assert found["nice"] == [1, 10, 20, 200, 200000, 500000]
    # a screen reader reads the figures from each chart's name (the drawn text is not read)
    await expect(page.get_by_role("img", name="Huge spend: 2026-01 $1,234,567,890.12; 2026-02 $0.05")).to_be_visible()
    await expect(page.get_by_role("img", name=re.compile(
        r"^Long names: Maximiliana .* \$987,654,321\.01 · 1,234 purchases; B \$0\.01$"))).to_be_visible()
    await stack.axe(page)  # which fails on any chart text drawn outside its chart
    await stack.shot(page, "wide-charts", only=page.get_by_role("region", name="wide charts"))
