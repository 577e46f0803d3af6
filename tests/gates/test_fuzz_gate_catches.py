"""The fuzz gate is seen to fail on a route that answers 500 to some input, and prints how to reproduce it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.asgi import create_app
from app.settings import load_settings
from tests.gates.broken_app import divide
from tests.gates.conftest import SECRET
from tests.gates.fuzz import fuzz_operation, load
from tests.support.live_server import live_server


@pytest.fixture
def broken_server(database_url: str, tmp_path: Path) -> Iterator[str]:
    with live_server(database_url, tmp_path, SECRET, target="tests.gates.broken_app:factory") as base:
        yield base


async def test_fuzz_gate_reports_a_server_error_with_a_reproduction(broken_server: str, sessionmaker: object,
                                                                   clock: object) -> None:
    from tests.factories import make_key

    key = await make_key(sessionmaker, clock)  # type: ignore[arg-type]
    spec = factory_spec()
    try:
        fuzz_operation(load(spec), "GET", "/v1/broken/divide", base_url=broken_server,
                       headers={"Authorization": f"Bearer {key}"}, max_examples=50)
    except BaseException as exc:  # schemathesis raises an exception group of failures
        message = str(exc) + "".join(str(e) for e in getattr(exc, "exceptions", []))
    else:
        pytest.fail("the fuzz gate did not notice a route that answers 500")
    assert "Server error" in message
    assert "curl" in message and "n=0" in message


def factory_spec() -> dict[str, object]:
    settings = load_settings({}, env="test", database_url="postgresql://unused/none", data_dir=Path("/nonexistent"),
                             token_secret="x" * 40, stripe_backend="fake")
    return create_app(settings, extra_route_handlers=[divide]).openapi_schema.to_schema()
