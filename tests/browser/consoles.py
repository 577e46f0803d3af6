"""Helpers of the console journeys: sign in by a one-time console link, open a page, check it."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.browser.conftest import Stack, console_error


async def sign_in(stack: Stack, body: dict[str, str], *, width: int = 1280, height: int = 800) -> Page:
    """Mint a console link as the vendor's backend would, open it and press Sign in."""
    r = stack.vendor("POST", "/v1/console-links", json=body)
    assert r.status_code == 201, r.text
    page = await stack.context.new_page()
    await page.set_viewport_size({"width": width, "height": height})
    page.on("pageerror", lambda e: stack.errors.append(f"pageerror: {e}"))
    page.on("console", lambda m: stack.errors.append(error) if (error := console_error(m, page)) else None)
    await page.goto(stack.api + r.json()["path"])
    await page.get_by_role("button", name="Sign in").click()
    await ready(page)
    return page


async def ready(page: Page) -> None:
    """The page's module has drawn it (or said why not)."""
    await expect(page.locator("body[data-ready=true]")).to_have_count(1)


async def admin(stack: Stack, user: str = "acme-alice", account: str = "acme") -> Page:
    return await sign_in(stack, {"console": "admin", "account": account, "user": user})


async def vendor(stack: Stack) -> Page:
    return await sign_in(stack, {"console": "vendor", "email": "offers@vendor.test"})


async def visit(stack: Stack, page: Page, path: str) -> None:
    await page.goto(stack.api + path)
    await ready(page)
