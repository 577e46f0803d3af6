"""Fuzz every operation of the OpenAPI document as the vendor (all scopes), a customer admin and an end user;
the vendor's run starts with every boundary value; every JSON route refuses malformed JSON with a problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.asgi import create_app
from app.settings import load_settings
from tests.gates.conftest import Live, headers
from tests.gates.fuzz import fuzz_operation, json_body_operations, load, malformed_json, operations

SPEC = create_app(load_settings({}, env="test", database_url="postgresql://unused/none",
                                data_dir=Path("/nonexistent"), token_secret="x" * 40,
                                stripe_backend="fake")).openapi_schema.to_schema()
SCHEMA = load(SPEC)
EXAMPLES = {"vendor": 25, "admin": 8, "user": 8}


def _token(live: Live, principal: str) -> str:
    return {"vendor": live.vendor_key, "admin": live.a.admin_token, "user": live.a.user_token}[principal]


@pytest.mark.parametrize("principal", list(EXAMPLES))
@pytest.mark.parametrize(("method", "path"), operations(SPEC))
def test_fuzz_gate(live: Live, method: str, path: str, principal: str) -> None:
    fuzz_operation(SCHEMA, method, path, base_url=live.base_url, headers=headers(_token(live, principal)),
                   max_examples=EXAMPLES[principal], boundaries=principal == "vendor")


@pytest.mark.parametrize("principal", list(EXAMPLES))
def test_every_json_route_refuses_invalid_utf8_and_deep_nesting_with_a_problem(live: Live, principal: str) -> None:
    problems = [p for method, path in json_body_operations(SPEC)
                for p in malformed_json(SCHEMA, method, path, base_url=live.base_url,
                                        headers=headers(_token(live, principal)))]
    assert len(json_body_operations(SPEC)) > 30  # the walk found the JSON routes
    assert problems == [], "\n".join(problems)
