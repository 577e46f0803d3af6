"""Serving the widget: a small stable loader, immutable content-hashed files, a manifest with integrity hashes.

``/widget/v1/widget.js`` is the one URL vendors embed; it changes with every build and is cached briefly.
It imports ``/widget/v1/<build>/widget.mjs``, whose folder holds every other file under a build id that is
the hash of their contents: cached for a year, never changed. Every answer allows any origin to read it
(module scripts and stylesheets are fetched in CORS mode; nothing here is secret).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Request, Response, Router, get
from litestar.datastructures import State
from litestar.params import PathParameter

from app.errors import NotFound
from app.settings import Settings
from web.assets import IMMUTABLE, Asset, Bundle, load_bundle, make_asset

BASE = "/widget/v1"
LOADER_CACHE = "public, max-age=300"
PUBLIC = {"public": True, "owner": "public"}
# The files vendors may pin by integrity (frame.html is navigated to, not fetched as a subresource).
LOADER_TEMPLATE = """\
/* Commerce widget loader, API v1, build {build}. Embed: <script src=".../widget/v1/widget.js" defer></script> */
(function () {{
  "use strict";
  if (window.Commerce && window.Commerce.build) return;
  var script = document.currentScript;
  var base = new URL("{build}/", script && script.src ? script.src : "{path}/widget.js");
  var ready = import(new URL("widget.mjs", base).href);
  window.Commerce = {{
    build: "{build}",
    ready: ready,
    mount: function (element, options) {{ return ready.then(function (m) {{ return m.mount(element, options); }}); }}
  }};
}})();
"""


class WidgetConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What the widget needs to know about this deployment (nothing secret)."""

    build: str
    card_mode: str  # "stripe": Stripe.js with the publishable key; "fake": the local fake's test-card form; "off"
    stripe_publishable_key: str | None  # the fake takes any pk_ key, as Stripe.js would send it
    stripe_fake_url: str | None


def card_config(settings: Settings) -> tuple[str, str | None, str | None]:
    """How the widget adds cards: a local fake wherever STRIPE_API_BASE points at one, else Stripe.js."""
    if settings.stripe_api_base and not settings.is_production:
        return "fake", settings.stripe_publishable_key or "pk_test_fake", settings.stripe_api_base.rstrip("/")
    if settings.stripe_mode == "stripe" and settings.stripe_publishable_key:
        return "stripe", settings.stripe_publishable_key, None
    return "off", None, None


def loader(bundle: Bundle) -> Asset:
    """The stable entry script, naming the current build."""
    text = LOADER_TEMPLATE.format(build=bundle.build, path=BASE)
    return make_asset("widget.js", text.encode())


def _answer(request: Request[object, object, State], asset: Asset, cache: str) -> Response[bytes]:
    headers = {"Cache-Control": cache, "ETag": asset.etag, "Access-Control-Allow-Origin": "*",
               "X-Content-Type-Options": "nosniff", "Cross-Origin-Resource-Policy": "cross-origin"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(b"", status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


def manifest(bundle: Bundle, entry: Asset) -> dict[str, object]:
    """Every file with its URL and Subresource Integrity hash (docs/widget.md shows how to pin them)."""
    files = {name: {"url": f"{BASE}/{bundle.build}/{name}", "integrity": a.integrity}
             for name, a in sorted(bundle.assets.items())}
    return {"version": "v1", "build": bundle.build,
            "loader": {"url": f"{BASE}/widget.js", "integrity": entry.integrity}, "files": files}


def widget_router(settings: Settings) -> Router:
    """The widget's routes; the files are read once, here."""
    bundle = load_bundle("web.widget", "static")
    entry = loader(bundle)
    listing = make_asset("manifest.json", msgspec.json.encode(manifest(bundle, entry)))
    mode, publishable, fake_url = card_config(settings)
    csp = frame_csp(mode, fake_url)
    config = make_asset("config.json", msgspec.json.encode(WidgetConfig(
        build=bundle.build, card_mode=mode, stripe_publishable_key=publishable, stripe_fake_url=fake_url)))

    @get("/widget.js", opt=PUBLIC, include_in_schema=False)
    async def widget_js(request: Request[object, object, State]) -> Response[bytes]:
        return _answer(request, entry, LOADER_CACHE)

    @get("/manifest.json", opt=PUBLIC, include_in_schema=False)
    async def widget_manifest(request: Request[object, object, State]) -> Response[bytes]:
        return _answer(request, listing, LOADER_CACHE)

    @get("/config.json", opt=PUBLIC, include_in_schema=False)
    async def widget_config(request: Request[object, object, State]) -> Response[bytes]:
        return _answer(request, config, LOADER_CACHE)

    @get("/{build:str}/{name:str}", opt=PUBLIC, include_in_schema=False)
    async def widget_file(request: Request[object, object, State], build: Annotated[str, PathParameter()],
                          name: Annotated[str, PathParameter()]) -> Response[bytes]:
        asset = bundle.get(name) if build == bundle.build else None
        if asset is None:
            raise NotFound(f"No widget file {name!r} in build {build!r}; load {BASE}/widget.js for the current one.")
        answer = _answer(request, asset, IMMUTABLE)
        if name == "frame.html":
            answer.headers["Content-Security-Policy"] = csp
        return answer

    return Router(path=BASE, route_handlers=[widget_js, widget_manifest, widget_config, widget_file])


def frame_csp(mode: str, fake_url: str | None) -> str:
    """The iframe page runs only our own files and talks only to this origin and the card service it uses:
    Stripe.js and its frames with a publishable key, the local Stripe fake (its API and challenge page) in
    development. Any page may frame it: it acts only with the session token that the embedding page hands it.
    """
    script, connect, frames = "'self'", "'self'", "'none'"
    if mode == "stripe":
        script += " https://js.stripe.com"
        connect += " https://api.stripe.com"
        frames = "https://js.stripe.com https://hooks.stripe.com"
    elif fake_url:
        connect += f" {fake_url}"
        frames = fake_url
    return (f"default-src 'none'; script-src {script}; style-src 'self'; connect-src {connect}; "
            f"frame-src {frames}; img-src 'self' data:; form-action 'none'; base-uri 'none'; frame-ancestors *")
