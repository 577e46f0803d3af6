"""Swagger UI's files (swagger-ui-dist 5.35.0, Apache-2.0, LICENSE.txt beside them) under /schema/assets/<build>/.

Litestar's Swagger page loads them from a CDN by default: a machine without internet showed a blank page.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Response, Router, get
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.params import PathParameter

from app.errors import NotFound
from web.assets import IMMUTABLE, Bundle, load_bundle

BASE = "/schema/assets"
SWAGGER_UI_VERSION = "5.35.0"


def _bundle() -> Bundle:
    return load_bundle("web.apidocs", "static", exclude=frozenset({"__init__.py"}))


def swagger_plugin(*, path: list[str]) -> SwaggerRenderPlugin:
    """The Swagger UI page, pointing at the local copies."""
    build = _bundle().build
    base = f"{BASE}/{build}"
    return SwaggerRenderPlugin(
        version=SWAGGER_UI_VERSION, path=path, js_url=f"{base}/swagger-ui-bundle.js", css_url=f"{base}/swagger-ui.css",
        standalone_preset_js_url=f"{base}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{base}/favicon-32x32.png'>")


def apidocs_router() -> Router:
    """Serves the files (immutable: the build id is the hash of them all)."""
    bundle = _bundle()

    @get("/{build:str}/{name:str}", opt={"public": True, "owner": "public"}, include_in_schema=False)
    async def asset(build: Annotated[str, PathParameter()], name: Annotated[str, PathParameter()]) -> Response[bytes]:
        found = bundle.get(name) if build == bundle.build else None
        if found is None:
            raise NotFound(f"No API docs file {name!r} in build {build!r}.")
        return Response(found.body, media_type=found.media_type,
                        headers={"Cache-Control": IMMUTABLE, "ETag": found.etag, "X-Content-Type-Options": "nosniff"})

    return Router(path=BASE, route_handlers=[asset])
