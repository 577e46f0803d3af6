"""A fake product ("Acme Insights") on its own origin that embeds the widget the way a vendor would.

Its backend holds the vendor API key and talks to the service through the Python SDK (commerce_sdk), as
docs/sdk.md tells a vendor to: it mints each visitor's session token, and checks entitlements in process
(the SDK's cached snapshot, kept current by the change stream) before showing a feature. The page loads
the widget from the service, listens to its events and unlocks a feature without a reload once the service
says the user has it. Development and tests only.
"""

from __future__ import annotations

import contextlib
import html
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from commerce_sdk import AsyncCommerce, CommerceError
from litestar import Litestar, Response, get
from litestar.exceptions import HTTPException
from litestar.params import PathParameter, QueryParameter

from web.assets import IMMUTABLE, load_bundle

DEMO_USERS = {  # external id -> (name, what the demo shows with this user)
    "acme-ana": ("Ana Analyst", "pays from the team budget"),
    "acme-cara": ("Cara Consultant", "pays with her own card"),
    "acme-vic": ("Vic Viewer", "asks an approver"),
}
FEATURES = [  # (feature, panel title, what the unlocked panel shows, how the page embeds the widget)
    ("forecasting", "Forecasting", "Next quarter: revenue +12% (80% band: +7% to +17%).", "mount"),
    ("advanced_charts", "Advanced charts", "Cohort heatmap and funnel charts are on.", "element"),
    ("shared_workspaces", "Shared workspaces", "Your team's workspace 'Q4 planning' is ready.", "element"),
    ("nl_query", "Ask in plain words", "Ask: 'which region grew fastest?' (iframe mode)", "iframe"),
]


@dataclass(frozen=True)
class DemoHost:
    """Where the service is (for the browser and for this backend) and the vendor key this backend uses."""

    api_url: str
    vendor_key: str
    account: str = "acme"
    stripe_fake_url: str | None = None
    token_ttl_seconds: int | None = None


def _csp(host: DemoHost) -> str:
    """What docs/widget.md tells a vendor to allow: the service for scripts, calls and styles' fetch."""
    extra = f" {host.stripe_fake_url}" if host.stripe_fake_url else ""
    return (f"default-src 'self'; script-src 'self' {host.api_url}; connect-src 'self' {host.api_url}{extra}; "
            f"style-src 'self'; img-src 'self' data:; frame-src {host.api_url}{extra}; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _page(host: DemoHost, user: str, allowed: dict[str, bool], token: str) -> str:
    e = html.escape
    name, _role = DEMO_USERS[user]
    current = ' aria-current="page"'
    switch = "".join(
        f'<li><a href="/?user={e(u)}"{current if u == user else ""}>{e(n)}</a> '
        f'<span class="muted">({e(r)})</span></li>' for u, (n, r) in DEMO_USERS.items())
    panels = []
    for feature, title, content, how in FEATURES:
        if allowed.get(feature):
            body = f'<p class="unlocked">{e(title)} is unlocked.</p><p>{e(content)}</p>'
        elif how in ("mount", "iframe"):
            body = f'<div class="mount" data-feature="{e(feature)}" data-mode="{e(how)}"></div>'
        else:
            body = f'<commerce-offer feature="{e(feature)}" token="{e(token)}" poll-ms="500"></commerce-offer>'
        panels.append(f'<section class="panel" aria-labelledby="p-{e(feature)}" data-feature="{e(feature)}" '
                      f'data-content="{e(content)}" data-title="{e(title)}">'
                      f'<h2 id="p-{e(feature)}">{e(title)}</h2>{body}</section>')
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Acme Insights (demo vendor app)</title>
<link rel="stylesheet" href="/static/{_BUNDLE.build}/host.css">
<script src="{e(host.api_url)}/widget/v1/widget.js" defer></script>
<script src="/static/{_BUNDLE.build}/host.js" defer></script>
</head>
<body data-user="{e(user)}">
<header><p class="brand">Acme Insights</p><p class="muted">A demo of a vendor's app on its own origin,
embedding the commerce widget.</p></header>
<nav aria-label="Demo users"><p>Signed in as <strong>{e(name)}</strong>. Switch user:</p><ul>{switch}</ul></nav>
<main>
<h1>Reports workspace</h1>
<div class="layout">
<div class="panels">{"".join(panels)}</div>
<aside aria-label="Suggestions and events">
<commerce-suggestions surface="home" token="{e(token)}"></commerce-suggestions>
<h2 id="log-title">Widget events</h2>
<ol id="event-log" aria-labelledby="log-title" aria-live="polite"></ol>
</aside>
</div>
</main>
</body>
</html>
"""


_BUNDLE = load_bundle("web.demo_host", "static")


def create_host_app(host: DemoHost) -> Litestar:
    """The demo vendor app; its backend talks to the service with the vendor key through the SDK, like any vendor."""
    client = AsyncCommerce(api_key=host.vendor_key, base_url=host.api_url, timeout=10)

    async def mint(user: str) -> dict[str, Any]:
        token = await client.session_tokens.create(account=host.account, user=user,
                                                   ttl_seconds=host.token_ttl_seconds)
        return {"token": token.token, "expires_at": token.expires_at.isoformat()}

    def known(user: str) -> str:
        if user not in DEMO_USERS:
            raise HTTPException(status_code=404, detail="unknown demo user")
        return user

    @get("/", media_type="text/html")
    async def page(user: Annotated[str, QueryParameter()] = "acme-ana") -> Response[str]:
        known(user)
        # the vendor's hot path: answered from the SDK's local snapshot (one load on the user's first check)
        allowed = {f: (await client.entitlements.check(user, f)).allowed for f, *_ in FEATURES}
        token = (await mint(user))["token"]
        return Response(_page(host, user, allowed, token), media_type="text/html",
                        headers={"Content-Security-Policy": _csp(host), "Cache-Control": "no-store"})

    @get("/api/session")
    async def session(user: Annotated[str, QueryParameter()]) -> dict[str, Any]:
        return await mint(known(user))

    @get("/api/check")
    async def check(user: Annotated[str, QueryParameter()],
                    feature: Annotated[str, QueryParameter(pattern=r"^[a-z0-9_]{1,60}$")]) -> dict[str, Any]:
        # asked right after the widget says access was granted: the service's own answer, one round trip
        # (the local snapshot hears of the grant through the change stream within milliseconds, not before)
        try:
            result = await client.entitlements.check_remote(known(user), feature)
        except CommerceError as exc:
            raise HTTPException(status_code=502, detail="the commerce service did not answer") from exc
        return {"feature": feature, "allowed": result.allowed}

    @get("/static/{build:str}/{name:str}")
    async def static(build: Annotated[str, PathParameter()], name: Annotated[str, PathParameter()]) -> Response[bytes]:
        asset = _BUNDLE.get(name) if build == _BUNDLE.build else None
        if asset is None:
            raise HTTPException(status_code=404, detail="no such file")
        return Response(asset.body, media_type=asset.media_type, headers={"Cache-Control": IMMUTABLE})

    async def close() -> None:
        await client.aclose()

    return Litestar(route_handlers=[page, session, check, static], on_shutdown=[close], debug=False)


def app_factory() -> Litestar:
    """For granian (``--factory``): COMMERCE_DEMO_API_URL and the vendor key (or the file holding it)."""
    key = os.environ.get("COMMERCE_DEMO_VENDOR_KEY") or Path(os.environ["COMMERCE_DEMO_KEY_FILE"]).read_text().strip()
    ttl = os.environ.get("COMMERCE_DEMO_TOKEN_TTL_SECONDS")
    return create_host_app(DemoHost(api_url=os.environ["COMMERCE_DEMO_API_URL"].rstrip("/"), vendor_key=key,
                                    stripe_fake_url=os.environ.get("COMMERCE_DEMO_STRIPE_FAKE_URL") or None,
                                    token_ttl_seconds=int(ttl) if ttl else None))


@contextlib.contextmanager
def serve_host_page(*, api_url: str, key_file: Path, host: str, port: int,
                    stripe_fake_url: str | None = None) -> Iterator[str]:
    """Run the demo host page in its own granian process for the duration of the block; yields its URL."""
    env = {**os.environ, "COMMERCE_DEMO_API_URL": api_url, "COMMERCE_DEMO_KEY_FILE": str(key_file.resolve())}
    if stripe_fake_url:
        env["COMMERCE_DEMO_STRIPE_FAKE_URL"] = stripe_fake_url
    proc = subprocess.Popen(  # noqa: S603  (our own interpreter and module, no shell)
        [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host", host, "--port", str(port),
         "--workers", "1", "--log-level", "warning", "web.demo_host.app:app_factory"],
        env=env, start_new_session=True)
    try:
        yield f"http://{host}:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
