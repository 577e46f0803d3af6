"""/schema (Swagger UI) renders with the app's own files: nothing is fetched from anywhere but the app."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, Route, expect

from app.settings import load_settings
from tests.support.apps import commerce_app
from tests.support.browser import ARTIFACTS
from tests.support.live_server import free_port
from tests.support.threaded import served


async def test_swagger_ui_renders_without_any_request_beyond_the_app(browser: Browser,
                                                                     settings_env: dict[str, str]) -> None:
    with commerce_app(load_settings(settings_env)) as app, served([(app, free_port())]) as (api,):
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        foreign: list[str] = []

        async def only_the_app(route: Route) -> None:
            if route.request.url.startswith(api):
                await route.continue_()
            else:
                foreign.append(route.request.url)
                await route.abort()

        await page.route("**/*", only_the_app)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        html = await (await page.request.get(api + "/schema")).text()
        assert "cdn." not in html and "https://" not in html.split("<body>")[0]
        await page.goto(api + "/schema")
        await expect(page.get_by_role("heading", name="Commerce and entitlements API")).to_be_visible()
        await expect(page.get_by_text("/v1/session-tokens").first).to_be_visible()
        folder = Path(ARTIFACTS) / "api-docs"
        folder.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(folder / "schema.png"))
        await page.close()
    assert foreign == []
    assert errors == []
