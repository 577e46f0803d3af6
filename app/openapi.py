"""OpenAPI document: bearer security and the problem responses every authenticated operation may give."""

from __future__ import annotations

import re
from typing import Any, cast

from litestar import Litestar, Router
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import (
    Components,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    PathItem,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.openapi.spec.enums import OpenAPIType

from app.errors import PROBLEM_MEDIA_TYPE
from app.webhooks import events

OPENAPI_PATH = "/schema"

_PROBLEM_STATUSES = {
    "400": "Invalid input (problem details with per-field errors)",
    "401": "Missing, invalid, expired or revoked credentials",
    "403": "The credentials lack the scope or role this operation needs",
    "404": "Not found (also for another account's objects: existence is not leaked)",
    "409": "Conflict with the current state (or a concurrent request with the same Idempotency-Key)",
    "413": "Request body too large",
    "422": "Semantically invalid (or an Idempotency-Key reused with a different request)",
    "429": "Rate limit of this API key or user reached: retry after Retry-After seconds (RateLimit-* headers)",
}
_RETRY_HEADERS = {
    "Retry-After": "Seconds to wait before one more request fits",
    "RateLimit-Limit": "Requests allowed per window for this caller and route class",
    "RateLimit-Remaining": "Requests left in the window (0 here)",
    "RateLimit-Reset": "Seconds until the window allows a request again",
    "RateLimit-Policy": "The limit and its window, e.g. 60;w=60",
}

_PROBLEM_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    description="RFC 9457 problem details; extension members may be present.",
    required=["type", "title", "status", "detail"],
    properties={
        "type": Schema(type=OpenAPIType.STRING),
        "title": Schema(type=OpenAPIType.STRING),
        "status": Schema(type=OpenAPIType.INTEGER),
        "detail": Schema(type=OpenAPIType.STRING),
        "instance": Schema(type=OpenAPIType.STRING),
        "code": Schema(type=OpenAPIType.STRING),
        "errors": Schema(type=OpenAPIType.ARRAY, items=Schema(
            type=OpenAPIType.OBJECT, required=["field", "message"],
            properties={"field": Schema(type=OpenAPIType.STRING), "message": Schema(type=OpenAPIType.STRING)},
        )),
    },
)


SWAGGER_PATHS = ["/", "/swagger"]


def openapi_config(version: str, *, swagger: SwaggerRenderPlugin | None = None) -> OpenAPIConfig:
    """The OpenAPI document and its UIs; ``swagger`` brings a page with local assets (web/apidocs)."""
    return OpenAPIConfig(
        title="Commerce and entitlements API",
        version=version,
        description="In-product module commerce: catalog, entitlements, quotes, orders, budgets. "
                    "Authenticate with 'Authorization: Bearer sk_...' (vendor API key) or a user session token.",
        components=Components(security_schemes={
            "BearerAuth": SecurityScheme(type="http", scheme="bearer",
                                         description="Vendor API key (sk_...) or user session token"),
        }),
        render_plugins=[swagger or SwaggerRenderPlugin(path=SWAGGER_PATHS), JsonRenderPlugin()],
        openapi_router=Router(path=OPENAPI_PATH, route_handlers=[], opt={"public": True}, include_in_schema=False),
    )


def route_opts(app: Litestar) -> dict[tuple[str, str], dict[str, Any]]:
    """The declared ``opt`` of every (path, method) the app serves (automatic OPTIONS/HEAD left out).

    The dicts are the handlers' own: ``add_problem_responses`` records each operation's query names there.
    """
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for route in app.routes:
        for method, (handler, _kwargs) in getattr(route, "route_handler_map", {}).items():
            if method in ("OPTIONS", "HEAD"):
                continue
            out[(re.sub(r"{(\w+):\w+}", r"{\1}", route.path), method)] = handler.opt
    return out


def add_problem_responses(app: Litestar) -> None:
    """Document the shared problem responses on every operation (public ones get none of the auth errors)."""
    spec = app.openapi_schema
    if spec.components.schemas is None:
        spec.components.schemas = {}
    spec.components.schemas["Problem"] = _PROBLEM_SCHEMA
    opts = route_opts(app)
    for path, item in (spec.paths or {}).items():
        for method in ("get", "post", "put", "patch", "delete"):
            op = getattr(item, method)
            if op is None:
                continue
            op.responses = op.responses or {}
            handler_opt = opts.get((path, method.upper()), {})
            handler_opt["query_params"] = frozenset(
                p.name for p in (op.parameters or []) if getattr(p, "param_in", None) == "query")
            if handler_opt.get("public"):
                continue
            op.security = [{"BearerAuth": []}]
            for status, description in _PROBLEM_STATUSES.items():
                op.responses[status] = (OpenAPIResponse(
                    description=description,
                    content={PROBLEM_MEDIA_TYPE: OpenAPIMediaType(
                        schema=Reference(ref="#/components/schemas/Problem"))},
                    headers=_retry_headers() if status == "429" else None,
                ))


def _retry_headers() -> dict[str, OpenAPIHeader | Reference]:
    return {name: OpenAPIHeader(description=text, schema=Schema(type=OpenAPIType.STRING))
            for name, text in _RETRY_HEADERS.items()}


def add_event_webhooks(app: Litestar) -> None:
    """Document every catalogued event under the OpenAPI ``webhooks`` key (one POST per type and version)."""
    spec = app.openapi_schema
    refs, components = events.json_schemas()
    schemas = cast(dict[str, Any], spec.components.schemas)
    for name, schema in components.items():
        schemas[f"event.{name}"] = schema
    webhooks: dict[str, PathItem | Reference] = {}
    for event in events.catalogue():
        body = {"allOf": [{"$ref": "#/components/schemas/event.Envelope"}, {
            "type": "object",
            "properties": {"type": {"const": event.type}, "version": {"const": event.version},
                           "data": refs[f"{event.type}@v{event.version}"]},
        }]}
        webhooks[f"{event.type}@v{event.version}"] = PathItem(post=Operation(
            summary=f"{event.type} (version {event.version})",
            description=event.description + "\n\nSigned with the Commerce-Signature header; see docs/webhooks.md.",
            tags=["Webhook events"],
            request_body=RequestBody(required=True, content={
                "application/json": OpenAPIMediaType(schema=cast(Schema, body))}),
            responses={"2XX": OpenAPIResponse(description="Any 2xx acknowledges the event; anything else is retried")},
            security=[],
        ))
    spec.webhooks = webhooks
