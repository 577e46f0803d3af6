"""The fuzz gate: schemathesis drives every operation of the app's own OpenAPI document over real HTTP.

Fails on any 5xx, on a 4xx that is not application/problem+json, and on responses that do not match
their documented status codes, content types or schemas. Positive (schema-valid) and negative
(schema-violating) data are both generated; hypothesis prints a reproducible example on failure.
"""

from __future__ import annotations

from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings, strategies
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

PROBLEM = "application/problem+json"
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def problem_json_for_4xx(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx answer is an RFC 9457 problem document."""
    if 400 <= response.status_code < 500:
        content_type = response.headers.get("content-type", [""])
        value = content_type[0] if isinstance(content_type, list) else content_type
        if not value.startswith(PROBLEM):
            raise AssertionError(f"{response.status_code} answered with {value!r}, not {PROBLEM}")
        body = response.json()
        for field in ("type", "title", "status", "detail"):
            if field not in body:
                raise AssertionError(f"problem document lacks {field!r}: {body}")
    return None


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]


def load(spec: dict[str, Any]) -> Any:
    return schemathesis.openapi.from_dict(spec)


def operations(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m.upper(), p) for p, item in spec["paths"].items() for m in item if m in HTTP_METHODS]


def fuzz_operation(schema: Any, method: str, path: str, *, base_url: str, headers: dict[str, str],
                   max_examples: int, session: requests.Session | None = None) -> None:
    """Run one operation with positive and negative examples; raises on the first failing example."""
    operation = schema[path][method]
    strategy = strategies.one_of(
        operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))
    http = session or requests.Session()
    declared = {p.name for p in operation.query}

    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate, Phase.shrink],
              print_blob=True)
    @given(case=strategy)
    def run(case: Any) -> None:
        if case.query:
            case.query = _on_the_wire(case.query, declared)
        response = case.call(base_url=base_url, headers=headers, session=http, timeout=10)
        case.validate_response(response, checks=CHECKS, additional_checks=[problem_json_for_4xx])

    run()


def _on_the_wire(query: dict[str, Any], declared: set[str]) -> dict[str, Any]:
    """Undeclared query parameters valued null are sent as the text 'null'.

    requests leaves out parameters whose value is None, so a negative case made of an unknown parameter
    would reach the server as a valid request, and a 200 would be reported as accepted invalid data.
    """
    def text(value: Any) -> Any:
        if isinstance(value, list):
            return [text(v) for v in value]
        return "null" if value is None else value

    return {k: v if k in declared else text(v) for k, v in query.items()}
