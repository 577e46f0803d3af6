"""OpenAPI document: bearer security and the problem responses every authenticated operation may give."""

from __future__ import annotations

import re
from typing import Any, cast

import msgspec
from litestar import Litestar, Router
from litestar._openapi.plugin import OpenAPIPlugin  # the app holds its built document there (Litestar 2)
from litestar.enums import ParamType
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Parameter,
    PathItem,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.openapi.spec.enums import OpenAPIType

from app.errors import PROBLEM_BASE, PROBLEM_MEDIA_TYPE, DomainError
from app.operation_problems import OPERATION_PROBLEMS
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


# Finished documents by the routes they describe. Building one costs about 0.3 s of CPU (Litestar's schema
# generation for some 300 operations); a process building several apps over the same routes (the test suite builds
# one per test) builds it once. Nothing changes a document once it is finished.
_FINISHED: dict[tuple[tuple[str, str, str, bool], ...], OpenAPI] = {}


def _routes_key(app: Litestar) -> tuple[tuple[str, str, str, bool], ...]:
    """What the document is made of: every operation's path, method, handler function and whether it is shown."""
    out: list[tuple[str, str, str, bool]] = []
    for route in app.routes:
        for method, (handler, _kwargs) in getattr(route, "route_handler_map", {}).items():
            fn = handler.fn
            out.append((route.path, method, f"{fn.__module__}.{fn.__qualname__}", bool(handler.include_in_schema)))
    return tuple(sorted(out))


def finish_document(app: Litestar) -> None:
    """Complete the app's OpenAPI document (problems, closed inputs, webhooks) and record each operation's query
    names on its handler (the request path refuses unknown ones), reusing a finished document of the same routes."""
    key = _routes_key(app)
    finished = _FINISHED.get(key)
    if finished is None:
        add_problem_responses(app)
        close_input_schemas(app)
        add_event_webhooks(app)
        _FINISHED[key] = app.openapi_schema
        return
    app.plugins.get(OpenAPIPlugin)._openapi = finished  # the plugin's own memo of the built document
    _record_query_params(app, finished)


def _record_query_params(app: Litestar, spec: OpenAPI) -> None:
    opts = route_opts(app)
    for path, item in (spec.paths or {}).items():
        for method in ("get", "post", "put", "patch", "delete"):
            op = getattr(item, method)
            if op is not None:
                query = [p for p in (op.parameters or []) if getattr(p, "param_in", None) == "query"]
                opt = opts.get((path, method.upper()), {})
                opt["query_params"] = frozenset(p.name for p in query)
                opt["repeatable_query_params"] = frozenset(p.name for p in query if _is_list(p.schema))


def _is_list(schema: Any) -> bool:
    """Whether a parameter's schema takes a list (a name given more than once), itself or as one alternative."""
    alternatives = [schema, *(getattr(schema, "one_of", None) or []), *(getattr(schema, "any_of", None) or [])]
    return any("array" in str(getattr(s, "type", "")).lower() for s in alternatives)


def add_problem_responses(app: Litestar) -> None:
    """Document the shared problem responses on every operation (public ones get none of the auth errors)."""
    spec = app.openapi_schema
    if spec.components.schemas is None:
        spec.components.schemas = {}
    spec.components.schemas["Problem"] = _PROBLEM_SCHEMA
    _record_query_params(app, spec)
    opts = route_opts(app)
    for path, item in (spec.paths or {}).items():
        for method in ("get", "post", "put", "patch", "delete"):
            op = getattr(item, method)
            if op is None:
                continue
            op.responses = op.responses or {}
            handler_opt = opts.get((path, method.upper()), {})
            if handler_opt.get("public"):
                continue
            scope = handler_opt.get("scope")
            # scopes of a bearer scheme name what the vendor key needs (session tokens: see the description)
            op.security = [{"BearerAuth": [scope] if scope else []}]
            ok = op.responses.get("200")
            if handler_opt.get("event_stream") and isinstance(ok, OpenAPIResponse) and ok.content is not None:
                ok.content["text/event-stream"] = OpenAPIMediaType(schema=Schema(
                    type=OpenAPIType.STRING, description="Server-sent events (with 'Accept: text/event-stream'): "
                    "'ready', 'changes' and 'heartbeat' events whose data is the JSON answer and whose id is its "
                    "cursor"))
            if handler_opt.get("idempotency"):
                op.parameters = [*(op.parameters or []), _idempotency_header(
                    required=handler_opt["idempotency"] == "required")]
            codes = _operation_codes(method.upper(), path, has_body=op.request_body is not None,
                                     idempotent=bool(handler_opt.get("idempotency")))
            for status, status_codes in sorted(codes.items()):
                op.responses[status] = _problem_response(status, status_codes)


# answered for any authenticated operation by the guard, the rate limiter and the input decoder
_EVERY_OPERATION = ("validation_failed", "unauthorized", "forbidden", "payload_too_large", "too_many_requests")
_WITH_A_BODY = ("malformed_body",)
_IDEMPOTENT = ("conflict", "unprocessable")  # the same key still running; the same key with another request


def _status_of_codes() -> dict[str, int]:
    """Every DomainError subclass's code and status (every package is imported by the time the app is built)."""
    out: dict[str, int] = {}
    todo: list[type[DomainError]] = [DomainError]
    while todo:
        cls = todo.pop()
        out[cls.code] = cls.status
        todo.extend(cls.__subclasses__())
    return out


def _operation_codes(method: str, path: str, *, has_body: bool, idempotent: bool) -> dict[str, list[str]]:
    """The problem codes this operation can answer, by status (as strings, the document's keys)."""
    status_of = _status_of_codes()
    codes = {*_EVERY_OPERATION, *OPERATION_PROBLEMS.get((method, path), ())}
    if has_body:
        codes.update(_WITH_A_BODY)
    if idempotent:
        codes.update(_IDEMPOTENT)
    by_status: dict[str, list[str]] = {}
    for code in sorted(codes):
        status = status_of.get(code, 400)
        if status != 499:  # a client that hung up reads no answer
            by_status.setdefault(str(status), []).append(code)
    return by_status


def _problem_response(status: str, codes: list[str]) -> OpenAPIResponse:
    general = _PROBLEM_STATUSES.get(status, "")
    return OpenAPIResponse(
        description=(general + ". " if general else "") + "Problem codes: " + ", ".join(codes)
        + " (type /problems/<code>; docs/api.md lists every type)",
        content={PROBLEM_MEDIA_TYPE: OpenAPIMediaType(schema=Schema(
            all_of=[Reference(ref="#/components/schemas/Problem")],
            properties={"code": Schema(type=OpenAPIType.STRING, enum=list(codes)),
                        "type": Schema(type=OpenAPIType.STRING, enum=[PROBLEM_BASE + c for c in codes])},
        ))},
        headers=_retry_headers() if status == "429" else None,
    )


_SIGNED = ("\n\nSigned by the Standard Webhooks specification (webhook-id, webhook-timestamp, webhook-signature) "
           "and the Commerce-Signature header; see docs/webhooks.md.")


def _idempotency_header(*, required: bool) -> Parameter:
    return Parameter(
        name="Idempotency-Key", param_in=ParamType.HEADER, required=required,
        schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$"),
        description="Any unique string per intended operation (1 to 255 visible ASCII characters). The same key "
                    "and request return the first answer (Idempotent-Replayed: true); the same key with another "
                    "request is a 422; while the first is still running, a 409." + (
                        " Required: this request moves money." if required else ""),
    )


def close_input_schemas(app: Litestar) -> None:
    """Request bodies reject unknown fields (``forbid_unknown_fields``): say so (``additionalProperties: false``),
    and declare the constraints on list items that Litestar's schema leaves out (msgspec enforces them)."""
    strict: dict[str, type[msgspec.Struct]] = {}
    pending: list[type] = [msgspec.Struct]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        config = getattr(cls, "__struct_config__", None)
        if config is not None and config.forbid_unknown_fields:
            strict[cls.__name__] = cls  # a struct that forbids unknown fields: an input
    for name, schema in (app.openapi_schema.components.schemas or {}).items():
        struct = strict.get(name.rsplit("_", 1)[-1])
        if isinstance(schema, Schema) and struct is not None and schema.type == OpenAPIType.OBJECT:
            schema.additional_properties = False
            _add_item_constraints(schema, struct)


_CONSTRAINTS = {"minLength": "min_length", "maxLength": "max_length", "pattern": "pattern", "minimum": "minimum",
                "maximum": "maximum", "exclusiveMinimum": "exclusive_minimum", "exclusiveMaximum": "exclusive_maximum",
                "minItems": "min_items", "maxItems": "max_items", "minProperties": "min_properties",
                "maxProperties": "max_properties"}
_TYPES = {"string": OpenAPIType.STRING, "integer": OpenAPIType.INTEGER, "number": OpenAPIType.NUMBER,
          "boolean": OpenAPIType.BOOLEAN, "array": OpenAPIType.ARRAY, "object": OpenAPIType.OBJECT}


def _add_item_constraints(schema: Schema, cls: type[msgspec.Struct]) -> None:
    """Copy what msgspec's own schema enforces onto the document's properties where Litestar left it out: list
    items, dictionary keys and values, bounds of optional numbers, a lower bound of 0."""
    _, components = msgspec.json.schema_components([cls])
    own = components.get(cls.__name__, {}).get("properties", {})
    for field, declared in (schema.properties or {}).items():
        if isinstance(declared, Schema) and field in own:
            _merge(declared, own[field])


def _merge(declared: Schema, enforced: dict[str, Any]) -> None:
    branches = enforced.get("anyOf") or enforced.get("oneOf")
    if branches:
        for branch in [b for b in (declared.one_of or declared.any_of or []) if isinstance(b, Schema)]:
            for other in branches:
                if _TYPES.get(other.get("type", "")) == branch.type:
                    _merge(branch, other)
        if declared.one_of or declared.any_of:
            return
    for key, attribute in {**_CONSTRAINTS, "enum": "enum"}.items():
        if key in enforced and getattr(declared, attribute) is None:
            setattr(declared, attribute, enforced[key])
    items = enforced.get("items")
    if isinstance(items, dict) and isinstance(declared.items, Schema):
        _merge(declared.items, items)
    keys = enforced.get("propertyNames")
    if isinstance(keys, dict) and declared.property_names is None:
        declared.property_names = Schema(type=OpenAPIType.STRING, **{
            attribute: keys[key] for key, attribute in _CONSTRAINTS.items() if key in keys})
    values = enforced.get("additionalProperties")
    if isinstance(values, dict) and isinstance(declared.additional_properties, Schema):
        _merge(declared.additional_properties, values)


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
            description=event.description + _SIGNED,
            tags=["Webhook events"],
            request_body=RequestBody(required=True, content={
                "application/json": OpenAPIMediaType(schema=cast(Schema, body))}),
            responses={"2XX": OpenAPIResponse(description="Any 2xx acknowledges the event; anything else is retried")},
            security=[],
        ))
    spec.webhooks = webhooks
