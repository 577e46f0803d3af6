"""Real responses checked against the app's own OpenAPI document.

``Contract(spec).violations(method, path, status, content_type, body)`` finds the documented operation of a
request and says what in its answer the document does not promise: an undocumented status or content type, a
body that fails the documented JSON Schema (JSON Schema 2020-12, as OpenAPI 3.1 uses it), a problem ``code``
the operation does not declare. The test client of the suite runs every answer through it (tests/conftest.py),
so every API test is also a conformance test; the conformance gate adds the operations' coverage.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema_rs

if TYPE_CHECKING:
    from litestar import Litestar

HTTP_METHODS = ("get", "post", "put", "patch", "delete")
PROBLEM = "application/problem+json"
# answered by the server itself before any operation runs, for any route: documented once in docs/api.md
ANY_ROUTE_STATUSES = frozenset({405, 406, 413, 414, 415, 431, 499})


@dataclass
class _Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    literal_chars: int


@dataclass
class Contract:
    """The document's promises, with validators built on first use."""

    spec: dict[str, Any]
    routes: list[_Route] = field(default_factory=list)
    _validators: dict[tuple[str, str, str, str], Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for template, item in self.spec["paths"].items():
            regex = "^" + re.sub(r"\\{\w+\\}", "[^/]+", re.escape(template)) + "$"
            literal = len(re.sub(r"{\w+}", "", template))
            self.routes += [_Route(m.upper(), template, re.compile(regex), literal) for m in item if m in HTTP_METHODS]
        self.routes.sort(key=lambda r: -r.literal_chars)  # /v1/orders/x/pay before /v1/orders/{order_id}

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        """(path template, operation object) serving this request, or None if undocumented."""
        for route in self.routes:
            if route.method == method.upper() and route.pattern.match(path):
                return route.template, self.spec["paths"][route.template][method.lower()]
        return None

    def declared_codes(self, template: str, method: str, status: int) -> list[str] | None:
        """The problem codes the operation declares for a status (None: any code)."""
        response = self.spec["paths"][template][method.lower()]["responses"].get(str(status), {})
        schema = response.get("content", {}).get(PROBLEM, {}).get("schema", {})
        code = schema.get("properties", {}).get("code", {})
        return list(code["enum"]) if "enum" in code else None

    def violations(self, method: str, path: str, status: int, content_type: str, body: bytes) -> list[str]:
        """What in this answer the document does not promise (empty: conforms)."""
        if method.upper() in ("OPTIONS", "HEAD"):
            return []  # CORS preflights and HEAD are the server's, for every route (docs/api.md), not operations
        found = self.operation(method, path)
        if found is None:
            if status in (404, 405) or not path.startswith("/v1/"):
                return []  # pages, assets and the widget are not API operations
            return [f"{method} {path}: no documented operation serves it"]
        template, op = found
        where = f"{method} {template} -> {status}"
        responses = op.get("responses", {})
        response = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX") or responses.get("default")
        if response is None:
            if status in ANY_ROUTE_STATUSES or status >= 500:
                return []  # the server's own answers (>= 500 is the fuzz gate's business, not a promise)
            return [f"{where}: status not documented (documented: {sorted(responses)})"]
        media = content_type.split(";")[0].strip()
        content = response.get("content") or {}
        if not content:
            return [] if not body else [f"{where}: documented without a body, answered {len(body)} bytes"]
        if media not in content:
            return [f"{where}: content type {media!r} not documented ({sorted(content)})"]
        schema = content[media].get("schema")
        if schema is None or not media.endswith("json"):
            return []
        try:
            document = json.loads(body)
        except ValueError:
            return [f"{where}: body is not JSON"]
        errors = [f"{where}: {error.message} at {'/'.join(map(str, error.instance_path)) or 'the root'}"
                  for error in self._validator(template, method, str(status), media).iter_errors(document)][:5]
        return errors

    def _validator(self, template: str, method: str, status: str, media: str) -> Any:
        key = (template, method.lower(), status, media)
        if key not in self._validators:
            schema = self.spec["paths"][template][method.lower()]["responses"][status]["content"][media]["schema"]
            self._validators[key] = jsonschema_rs.Draft202012Validator(
                {**schema, "components": self.spec.get("components", {})})
        return self._validators[key]


def offline_app() -> Litestar:
    """The app as built (its routes, guards and dependencies), never started: no database is reached."""
    from app.asgi import create_app
    from app.settings import load_settings

    return create_app(load_settings({}, env="test", database_url="postgresql://unused/none",
                                    data_dir=Path("/nonexistent"), token_secret="x" * 40, stripe_backend="fake"))


def offline_document() -> dict[str, Any]:
    """The OpenAPI document as the app serves it (JSON), built without starting the app."""
    from litestar.serialization import encode_json

    return dict(json.loads(encode_json(offline_app().openapi_schema.to_schema())))
