"""Fuzz every operation of the OpenAPI document as the vendor (all scopes), a customer admin and an end user."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.asgi import create_app
from app.settings import load_settings
from tests.gates.conftest import Live, headers
from tests.gates.fuzz import fuzz_operation, load, operations

SPEC = create_app(load_settings({}, env="test", database_url="postgresql://unused/none",
                                data_dir=Path("/nonexistent"), token_secret="x" * 40,
                                stripe_backend="fake")).openapi_schema.to_schema()
SCHEMA = load(SPEC)
EXAMPLES = {"vendor": 25, "admin": 8, "user": 8}


@pytest.mark.parametrize("principal", list(EXAMPLES))
@pytest.mark.parametrize(("method", "path"), operations(SPEC))
def test_fuzz_gate(live: Live, method: str, path: str, principal: str) -> None:
    token = {"vendor": live.vendor_key, "admin": live.a.admin_token, "user": live.a.user_token}[principal]
    fuzz_operation(SCHEMA, method, path, base_url=live.base_url, headers=headers(token),
                   max_examples=EXAMPLES[principal])
