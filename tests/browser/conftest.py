"""Journeys in a real Chromium over two origins: the service (API and widget) and the demo host page.

Per worker (xdist): one Chromium and one demo database seeded once as a template. Per test: a database cloned
from it, the app served by granian with CORS for the host page's origin, the host page served on another port
(both from a thread of the worker, `tests/support/threaded.py`: no process start-up per journey), and a fresh
browser context. Any JavaScript error on a page fails the test.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Locator, Page, async_playwright, expect

from app.db import create_engine
from app.demo import seed_demo
from app.settings import load_settings
from tests.support.apps import commerce_app
from tests.support.browser import ARTIFACTS, chromium_path
from tests.support.database import TestDatabases
from tests.support.live_server import free_port
from tests.support.threaded import served
from web.demo_host.app import DemoHost, create_host_app

TOKEN_SECRET = "browser-secret-" + "x" * 40
DEMO_TEMPLATE = "commerce_demo_template"
# Chromium logs every failed request; journeys provoke some on purpose (an expired token, a dropped answer).
EXPECTED_CONSOLE = ("Failed to load resource",)  # ... of an API call the page meant to fail (see console_error)


def console_error(message: ConsoleMessage, page: Page) -> str | None:
    """What a console message says went wrong, or None. A failed load of an API call is the page's business (a
    refusal it shows), and so is the page's own document (a journey opens a forbidden page on purpose); a failed
    load of anything else -- a script, a style sheet, an image, the favicon the browser asks for when a page names
    none -- is a broken page."""
    if message.type != "error":
        return None
    if message.text.startswith(EXPECTED_CONSOLE):
        url = str(message.location.get("url") or "")
        if urlsplit(url).path.startswith("/v1/") or url == page.url:
            return None
        return f"console: {message.text} ({url})"
    return f"console: {message.text}"

# A shared two-core machine can take longer than the default 5 s to draw a page; a real failure still fails.
expect.set_options(timeout=15_000)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.browser)


_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test, so the ``stack`` fixture knows whether the journey failed."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield b
        await b.close()


@pytest.fixture(scope="session")
async def demo_template(template_ready: TestDatabases, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A database with the demo seeded once (make demo's data); returns its name and the demo vendor key."""
    dbs = template_ready
    name = await dbs.create()
    data_dir = tmp_path_factory.mktemp("demo-data")
    settings = load_settings({}, env="test", database_url=dbs.url(name), data_dir=data_dir,
                             token_secret=TOKEN_SECRET, stripe_backend="fake")
    engine = create_engine(dbs.url(name), pool_size=2, max_overflow=2)
    try:
        key = await seed_demo(engine, settings)
    finally:
        await engine.dispose()
    conn = await dbs._admin()
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {DEMO_TEMPLATE} WITH (FORCE)")
        await conn.execute(f"ALTER DATABASE {name} RENAME TO {DEMO_TEMPLATE}")
    finally:
        await conn.close()
    return DEMO_TEMPLATE, key


@dataclass
class Stack:
    """The service and the demo host page, each on its own loopback origin, and helpers for one journey."""

    api: str
    host: str
    key: str
    artifacts: Path
    context: BrowserContext
    errors: list[str] = field(default_factory=list)
    shots: int = 0

    def vendor(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call the API as the vendor's backend (demo vendor key)."""
        return httpx.request(method, self.api + path, headers={"Authorization": f"Bearer {self.key}"}, timeout=10,
                             **kwargs)

    def allowed(self, user: str, feature: str) -> bool:
        r = self.vendor("GET", "/v1/entitlements/check", params={"user": user, "feature": feature})
        r.raise_for_status()
        return bool(r.json()["allowed"])

    async def open(self, user: str) -> Page:
        """The demo host page signed in as ``user``; JavaScript errors are recorded and fail the test."""
        page = await self.context.new_page()
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("console", lambda m: self.errors.append(error) if (error := console_error(m, page)) else None)
        await page.goto(f"{self.host}/?user={user}")
        return page

    async def axe(self, page: Page) -> None:
        """axe-core (shipped inside axe-playwright-python) in the page: no serious or critical violation; and no
        text of a drawn chart outside its drawing (clipped: a y-axis label once lost its currency sign)."""
        results = await Axe().run(page)
        bad = [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
               for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
        assert not bad, "accessibility violations:\n" + "\n".join(bad)
        clipped = await page.evaluate(CLIPPED_SVG_TEXT)
        assert not clipped, f"chart text drawn outside its chart (cut off): {clipped}"

    async def deep_focus(self, page: Page) -> str:
        """The focused element through shadow roots, as 'tag:accessible text'."""
        return str(await page.evaluate("""() => {
            let a = document.activeElement;
            while (a && a.shadowRoot && a.shadowRoot.activeElement) a = a.shadowRoot.activeElement;
            const name = a ? (a.getAttribute('aria-label') || a.textContent || '').trim() : '';
            return a ? `${a.tagName.toLowerCase()}:${name}` : '';
        }"""))

    async def shot(self, page: Page, name: str, *, only: Locator | None = None) -> Path:
        """A screenshot kept in test-artifacts/<test>/ (look at them): the whole page, or ``only`` one element."""
        self.shots += 1
        path = self.artifacts / f"{self.shots:02d}-{name}.png"
        if only is not None:
            await only.screenshot(path=str(path))
        else:
            await page.screenshot(path=str(path), full_page=True)
        return path


CLIPPED_SVG_TEXT = """() => [...document.querySelectorAll("svg")].flatMap((svg) => {
    const box = svg.getBoundingClientRect();
    return [...svg.querySelectorAll("text")].filter((t) => {
        const r = t.getBoundingClientRect();
        return r.width > 0 && (r.left < box.left - 0.5 || r.right > box.right + 0.5
            || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5);
    }).map((t) => t.textContent);
})"""


async def _keep_failure(s: Stack) -> None:
    """What each open page showed when the journey failed: a screenshot and its HTML (shadow roots included)."""
    for n, page in enumerate(s.context.pages):
        with contextlib.suppress(Exception):
            await page.screenshot(path=str(s.artifacts / f"failed-page{n}.png"), full_page=True, timeout=5_000)
        with contextlib.suppress(Exception):
            html = await page.evaluate("""() => {
                const dump = (root) => Array.from(root.querySelectorAll('*')).filter(e => e.shadowRoot)
                    .map(e => `<!-- shadow of ${e.tagName} -->` + e.shadowRoot.innerHTML + dump(e.shadowRoot)).join('');
                return document.documentElement.outerHTML + dump(document);
            }""")
            (s.artifacts / f"failed-page{n}.html").write_text(f"<!-- {page.url} -->\n{html}")


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    folder = ARTIFACTS / re.sub(r"[^\w.-]+", "_", request.node.nodeid.split("::", 1)[-1])
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return folder


@pytest.fixture
def api_port() -> int:
    """The loopback port this test's app listens on (known in advance: the Stripe fake posts its events there)."""
    return free_port()


@pytest.fixture
async def demo_servers(template_ready: TestDatabases, demo_template: tuple[str, str], tmp_path: Path,
                       stack_env: dict[str, str], api_port: int) -> AsyncIterator[tuple[str, str, str]]:
    """This test's clone of the demo database, served by the app and the host page on two origins."""
    dbs = template_ready
    template, key = demo_template
    name = await dbs.create(template=template)
    host_port = free_port()
    host_origin = f"http://127.0.0.1:{host_port}"
    api_env = {"DATABASE_URL": dbs.url(name), "COMMERCE_ENV": "test", "COMMERCE_DATA_DIR": str(tmp_path / "data"),
               "COMMERCE_TOKEN_SECRET": TOKEN_SECRET, "COMMERCE_DISPATCHER": "off", "COMMERCE_STRIPE": "fake",
               # no jobs: the demo's renewals, usage billing and alerts would change figures mid-journey
               "COMMERCE_SCHEDULER": "off", "COMMERCE_CORS_ORIGINS": host_origin,
               # as `make demo`: no holdout (a journey's user drawn into it, one seed in ten, saw no suggestion)
               "COMMERCE_SUGGEST_HOLDOUT_PCT": "0", **stack_env}
    try:
        with commerce_app(load_settings(api_env)) as app:
            api = f"http://127.0.0.1:{api_port}"
            host_app = create_host_app(DemoHost(api_url=api, vendor_key=key,
                                                stripe_fake_url=api_env.get("STRIPE_API_BASE") or None))
            with served([(app, api_port), (host_app, host_port)]) as (api, host):
                yield api, host, key
    finally:
        await dbs.drop(name)


@pytest.fixture
async def settings_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """The environment of an app process on this test's own (empty, migrated) database."""
    return {"DATABASE_URL": database_url, "COMMERCE_ENV": "test", "COMMERCE_DATA_DIR": str(tmp_path / "data"),
            "COMMERCE_TOKEN_SECRET": TOKEN_SECRET, "COMMERCE_DISPATCHER": "off", "COMMERCE_STRIPE": "fake"}


@pytest.fixture
def stack_env() -> dict[str, str]:
    """Extra settings for the app of one journey (override in a test module)."""
    return {}


@pytest.fixture
async def stack(browser: Browser, demo_servers: tuple[str, str, str], artifacts: Path,
                request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    api, host, key = demo_servers
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(15_000)
    s = Stack(api=api, host=host, key=key, artifacts=artifacts, context=context)
    yield s
    call = request.node.stash.get(_REPORTS, {}).get("call")
    if call is not None and call.failed:
        await _keep_failure(s)
    await context.close()
    assert not s.errors, f"JavaScript errors on the page: {s.errors}"
