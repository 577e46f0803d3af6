"""The widget's own JavaScript unit tests (tests/browser/js/widget.test.mjs), run in Chromium against the served
module: no Node needed."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.async_api import Browser

from app.settings import load_settings
from tests.support.apps import commerce_app
from tests.support.live_server import free_port
from tests.support.threaded import served

TESTS = Path(__file__).parent / "js" / "widget.test.mjs"


async def test_widget_javascript_unit_tests_pass_in_chromium(browser: Browser, settings_env: dict[str, str]) -> None:
    with commerce_app(load_settings(settings_env)) as app, served([(app, free_port())]) as (api,):
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(api + "/healthz")  # same origin as the module
        build = json.loads(await page.evaluate("fetch('/widget/v1/manifest.json').then(r => r.text())"))["build"]
        await page.evaluate(f"globalThis.WIDGET_MODULE_URL = '{api}/widget/v1/{build}/widget.mjs'")
        await page.add_script_tag(content=TESTS.read_text(), type="module")
        await page.wait_for_function("globalThis.WIDGET_TEST_RESULT !== undefined")
        result = await page.evaluate("globalThis.WIDGET_TEST_RESULT")
        await page.close()
    assert not errors, errors
    assert result["ran"] >= 10
    assert result["failures"] == []
