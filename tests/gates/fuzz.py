"""The fuzz gate: schemathesis drives every operation of the app's own OpenAPI document over real HTTP.

Fails on any 5xx, on a 4xx that is not application/problem+json, and on responses that do not match
their documented status codes, content types or schemas. Positive (schema-valid) and negative
(schema-violating) data are both generated; hypothesis prints a reproducible example on failure.
With ``boundaries`` every operation also gets schemathesis's coverage-phase cases: each field in turn
at its boundaries (shortest and longest strings, smallest and largest integers), all schema-valid, so
a value the schema accepts but the database cannot store shows up as the 5xx it causes.
``malformed_json`` sends what a JSON parser chokes on (invalid UTF-8, nesting 1,000 deep) to a route.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, example, given, settings, strategies
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
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


OPAQUE_PARAMETERS = frozenset({"cursor"})


def _inexpressible(problem: dict[str, Any]) -> bool:
    """A refusal of schema-valid input that no JSON Schema can rule out: a cursor the API never issued, a
    signature that is an HMAC of the body (Stripe-Signature), or an integer written as 2.0 (JSON Schema counts
    it as an integer; the API takes JSON integers, as every generated client sends them)."""
    if problem.get("code") == "invalid_signature":
        return True
    errors = [e for e in problem.get("errors") or [] if isinstance(e, dict)]
    return bool(errors) and all(
        str(e.get("field")) in OPAQUE_PARAMETERS
        or _integer_as_float(str(e.get("message", "")))
        for e in errors)


def _integer_as_float(message: str) -> bool:
    """msgspec's words for a JSON number with a fraction part where an integer (or a union with one) is due."""
    expected = message.partition("`")[2].partition("`")[0]
    return message.endswith("got `float`") and "int" in expected.split(" | ") and "float" not in expected


def _time_out_of_range(problem: dict[str, Any], case: Any) -> bool:
    """A refused date-time that the format admits but whose UTC instant falls outside years 1-9999 (such as
    0001-01-01T00:00:00+01:00): no JSON Schema can say so, and the API answers it with a 400 by design."""
    errors = [e for e in problem.get("errors") or [] if isinstance(e, dict)]
    names = {str(f).rpartition(".")[2] for f in [problem.get("field"), *(e.get("field") for e in errors)] if f}
    sent = {**(case.query or {}), **(case.body if isinstance(case.body, dict) else {})}
    for name in names:
        value = sent.get(name)
        if isinstance(value, str):
            try:
                datetime.fromisoformat(value).astimezone(UTC)
            except OverflowError:
                return True
            except ValueError:
                continue
    return False


def valid_data_accepted(ctx: Any, response: Any, case: Any) -> bool | None:
    """Positive conformance: schema-valid input is never refused as invalid (a 400), so the document is no
    looser than the server. Business refusals of valid input (404, 409, 422, ...) stay allowed."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return None
    if _inexpressible(response.json()) or _time_out_of_range(response.json(), case):
        return None
    raise AssertionError(f"schema-valid input refused as invalid: {response.text[:500]}")


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]
VALID_ON_THE_WIRE_CHECKS = [check for check in CHECKS if check is not negative_data_rejection]


def _invalid_on_the_wire(case: Any) -> bool:
    """Whether a negative case still breaks the schema as sent. One negative only in its headers does not: the
    gate sends every request with a principal's valid Authorization (replacing the case's), and the other
    headers it may add are ones a server ignores, so accepting it is right (which case of that kind a run draws
    depends on the derandomised seed, so the gate passed or failed with unrelated edits of its own code)."""
    meta = case.meta
    return meta is None or any(
        location != ParameterLocation.HEADER and info.mode.is_negative for location, info in meta.components.items())


def load(spec: dict[str, Any]) -> Any:
    return schemathesis.openapi.from_dict(spec)


def operations(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m.upper(), p) for p, item in spec["paths"].items() for m in item if m in HTTP_METHODS]


_boundaries: dict[tuple[int, str, str], list[Any]] = {}


def boundary_cases(schema: Any, method: str, path: str) -> list[Any]:
    """Schemathesis's coverage phase for one operation, valid cases only: every field at its boundaries.
    Generated once per operation (the catalog document's take seconds)."""
    key = (id(schema), method, path)
    if key not in _boundaries:
        _boundaries[key] = list(_coverage(schema, method, path))
    return _boundaries[key]


def _coverage(schema: Any, method: str, path: str) -> Iterator[Any]:
    return iter(schema.iter_coverage_cases(schema[path][method], generation_modes=[GenerationMode.POSITIVE],
                                           generation_config=schema.config.generation))


def first_boundary_case(schema: Any, method: str, path: str) -> Any:
    """The first of ``boundary_cases`` (a valid request), without generating the rest when they are not made yet
    (all of them for every JSON route take seconds)."""
    found = _boundaries.get((id(schema), method, path))
    return found[0] if found else next(_coverage(schema, method, path))


_strategies: dict[tuple[int, str, str], Any] = {}


def _strategy(schema: Any, method: str, path: str) -> Any:
    """Positive and negative cases of one operation. Made once per operation and process: turning the JSON
    schemas into hypothesis strategies happens on the first draw and is kept by the strategy, so the three
    principals' runs share it."""
    key = (id(schema), method, path)
    if key not in _strategies:
        operation = schema[path][method]
        _strategies[key] = strategies.one_of(
            operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))
    return _strategies[key]


def fuzz_operation(schema: Any, method: str, path: str, *, base_url: str, headers: dict[str, str],
                   max_examples: int, session: requests.Session | None = None, boundaries: bool = False) -> None:
    """Run one operation with positive and negative examples (and, with ``boundaries``, every boundary case
    first); raises on the first failing example."""
    operation = schema[path][method]
    strategy = _strategy(schema, method, path)
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
        case.validate_response(response, checks=CHECKS if _invalid_on_the_wire(case) else VALID_ON_THE_WIRE_CHECKS,
                                additional_checks=[problem_json_for_4xx, valid_data_accepted])

    for case in reversed(boundary_cases(schema, method, path) if boundaries else []):
        run = example(case=case)(run)  # explicit examples run first, in the order given
    run()


def json_body_operations(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """The operations that take a JSON request body."""
    return [(method, path) for method, path in operations(spec)
            if "application/json" in (spec["paths"][path][method.lower()].get("requestBody") or {}).get(
                "content", {})]


def malformed_bodies(valid: Any) -> list[tuple[str, bytes]]:
    """(what, body) pairs a JSON parser chokes on, built around a valid body where that matters."""
    raw = json.dumps(valid).encode()
    in_string = raw.replace(b'": "', b'": "\xff\xfe', 1) if b'": "' in raw else b'{"note": "\xff\xfe"}'
    return [
        ("invalid UTF-8 inside a string", in_string),
        ("invalid UTF-8 in a key", b'{"\xed\xa0\x80": 1}'),  # an encoded surrogate: not UTF-8
        ("arrays nested 1,000 deep", b"[" * 1000 + b"1" + b"]" * 1000),
        ("objects nested 1,000 deep", b'{"a":' * 1000 + b"1" + b"}" * 1000),
    ]


def _reproduce(method: str, url: str, headers: dict[str, str], body: bytes) -> str:
    escaped = "".join(chr(b) if 32 <= b < 127 and b not in b"'%\\" else f"\\x{b:02x}" for b in body)
    header_args = " ".join(f"-H '{k}: {v}'" for k, v in headers.items())
    return f"printf '{escaped}' | curl -X {method} {header_args} --data-binary @- '{url}'"


def malformed_json(schema: Any, method: str, path: str, *, base_url: str, headers: dict[str, str],
                   session: requests.Session | None = None) -> list[str]:
    """Send each malformed body to one JSON operation; every answer must be a 4xx problem document."""
    first = first_boundary_case(schema, method, path)  # a valid request: the malformed bodies replace its body
    kwargs = first.as_transport_kwargs(base_url=base_url, headers=headers)
    url = requests.Request("GET", kwargs["url"], params=kwargs.get("params")).prepare().url or kwargs["url"]
    sent = {**headers, "Content-Type": "application/json"}
    http = session or requests.Session()
    problems = []
    for what, body in malformed_bodies(first.body if isinstance(first.body, dict | list) else {}):
        response = http.request(method, url, data=body, headers=sent, timeout=10)
        content_type = response.headers.get("content-type", "")
        if response.status_code >= 500 or not (400 <= response.status_code < 500 and content_type.startswith(
                PROBLEM)):
            problems.append(f"{method} {path}: {what} answered {response.status_code} {content_type!r}, "
                            f"not a 4xx problem document. Reproduce with:\n    {_reproduce(method, url, sent, body)}")
    return problems


def _on_the_wire(query: dict[str, Any], declared: set[str]) -> dict[str, Any]:
    """Undeclared query parameters valued null are sent as the text 'null'.

    requests leaves out parameters whose value is None, so a negative case made of an unknown parameter
    would reach the server as a valid request, and a 200 would be reported as accepted invalid data.
    """
    def text(value: Any) -> Any:
        if isinstance(value, list):
            return [text(v) for v in value] or ["null"]
        return "null" if value is None else value

    # likewise an empty list (nothing is sent) and an empty name ("=x" names no parameter): each is sent as an
    # undeclared parameter that does reach the server
    return {k if k or k in declared else "_": (twice(v) if k in declared else text(v)) for k, v in query.items()}


def twice(value: Any) -> Any:
    """A declared parameter drawn as a list (no parameter of the API takes one: a negative case) with fewer than
    two items reads on the wire as one value or none, a valid request: it is sent given twice, as a list is."""
    if not isinstance(value, list) or len(value) >= 2:
        return value
    return value * 2 if value else ["", ""]
