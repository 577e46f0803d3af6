"""The fuzz gate is seen to fail on routes that answer 500 to some input, and prints how to reproduce it:
a crash on an ordinary value, a schema-valid boundary value the storage cannot hold, and JSON a parser
chokes on (invalid UTF-8, nesting 1,000 deep)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.asgi import create_app
from app.clock import SystemClock
from app.db import create_engine, make_sessionmaker
from app.settings import load_settings
from tests.factories import make_key
from tests.gates.broken_app import BROKEN_ROUTES
from tests.gates.conftest import SECRET
from tests.gates.fuzz import fuzz_operation, load, malformed_json
from tests.support.database import TestDatabases
from tests.support.live_server import live_server


@pytest.fixture(scope="module")
async def broken(template_ready: TestDatabases, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[
        tuple[str, str]]:
    """The broken app served by granian, and a vendor key for it."""
    name = await template_ready.create()
    url = template_ready.url(name)
    engine = create_engine(url, pool_size=1, max_overflow=0)
    key = await make_key(make_sessionmaker(engine), SystemClock())
    await engine.dispose()
    with live_server(url, tmp_path_factory.mktemp("broken"), SECRET, target="tests.gates.broken_app:factory") as base:
        yield base, key
    await template_ready.drop(name)


def factory_spec() -> dict[str, object]:
    settings = load_settings({}, env="test", database_url="postgresql://unused/none", data_dir=Path("/nonexistent"),
                             token_secret="x" * 40, stripe_backend="fake")
    return create_app(settings, extra_route_handlers=BROKEN_ROUTES).openapi_schema.to_schema()


def _failure(run: Any) -> str:
    try:
        run()
    except BaseException as exc:  # schemathesis raises an exception group of failures
        return str(exc) + "".join(str(e) for e in getattr(exc, "exceptions", []))
    pytest.fail("the fuzz gate did not notice a route that answers 500")


async def test_fuzz_gate_reports_a_server_error_with_a_reproduction(broken: tuple[str, str]) -> None:
    broken_server, key = broken
    schema = load(factory_spec())
    message = _failure(lambda: fuzz_operation(schema, "GET", "/v1/broken/divide", base_url=broken_server,
                                              headers={"Authorization": f"Bearer {key}"}, max_examples=50))
    assert "Server error" in message
    assert "curl" in message and "n=0" in message


async def test_fuzz_gate_boundaries_catch_a_value_the_schema_accepts_but_storage_cannot(
        broken: tuple[str, str]) -> None:
    broken_server, key = broken
    schema = load(factory_spec())
    headers = {"Authorization": f"Bearer {key}"}
    message = _failure(lambda: fuzz_operation(schema, "POST", "/v1/broken/gadgets", base_url=broken_server,
                                              headers=headers, max_examples=1, boundaries=True))
    assert "Server error" in message and "curl" in message
    assert "0" * 121 in message or "1000000000000" in message  # the longest label or the largest count
    # the same budget of random examples alone does not find it: the boundary cases are what catch it
    fuzz_operation(schema, "POST", "/v1/broken/gadgets", base_url=broken_server, headers=headers, max_examples=1)


async def test_malformed_json_gate_catches_a_route_that_500s_on_bad_utf8_or_deep_nesting(
        broken: tuple[str, str]) -> None:
    broken_server, key = broken
    schema = load(factory_spec())
    headers = {"Authorization": f"Bearer {key}"}
    problems = malformed_json(schema, "POST", "/v1/broken/notes", base_url=broken_server, headers=headers)
    text = "\n".join(problems)
    for what in ("invalid UTF-8 inside a string", "invalid UTF-8 in a key", "arrays nested 1,000 deep",
                 "objects nested 1,000 deep"):
        assert f"POST /v1/broken/notes: {what} answered 500" in text, text
    assert "printf '" in text and "curl -X POST" in text
    # the negative space: the app's own routes refuse the same bodies with problem documents
    assert malformed_json(schema, "POST", "/v1/broken/gadgets", base_url=broken_server, headers=headers) == []
