"""Session-wide embedded PostgreSQL; every test runs on its own database cloned from a migrated template."""

from __future__ import annotations

import gc
import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.serialization import encode_json
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.clock import FrozenClock
from app.db import create_engine, make_sessionmaker
from app.settings import Settings, load_settings
from tests.support.apps import commerce_app
from tests.support.contract import Contract
from tests.support.database import TestDatabases, server_dir

START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _parse_each_handler_signature_once() -> None:
    """Litestar parses every handler's signature (``typing.get_type_hints`` over string annotations) each time an
    app is built, and the suite builds one app per test: that was about a third of the API tests' CPU. The parse is
    a pure function of the function and the names it resolves against, so a worker remembers it; an app built by a
    test is otherwise the app production builds (handlers made per app, as closures, are parsed anew)."""
    from litestar.utils.signature import ParsedSignature

    parse = ParsedSignature.from_fn.__func__  # type: ignore[attr-defined]
    # keyed by the namespace's objects' ids; the entry keeps those objects alive, so an id is never reused
    parsed: dict[tuple[object, ...], tuple[ParsedSignature, tuple[object, ...]]] = {}

    def from_fn(cls: type[ParsedSignature], fn: Any, signature_namespace: dict[str, Any]) -> ParsedSignature:
        # a controller's handlers are bound methods of a controller made per app: the same function every time
        target = (fn.__func__, True) if inspect.ismethod(fn) else (fn, False)
        key = (cls, *target, tuple(sorted((name, id(value)) for name, value in signature_namespace.items())))
        if key not in parsed:
            parsed[key] = (parse(cls, fn, signature_namespace), tuple(signature_namespace.values()))
        return parsed[key][0]

    ParsedSignature.from_fn = classmethod(from_fn)  # type: ignore[method-assign,assignment]


_parse_each_handler_signature_once()


def pytest_collection_finish(session: pytest.Session) -> None:
    """What importing and collecting made (some million objects) is frozen out of the cycle collector's reach, and
    the collector runs less often: a test makes and drops many short-lived objects, and each full pass over the
    whole heap was a tenth of the API tests' CPU (measured: 38.9 -> 34.7 s for 77 tests)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """pytest's last step collects the whole heap (looking for exceptions raised in finalizers); over everything a
    worker's tests left behind (the apps it keeps, their caches) one pass took seconds of CPU at the end of each
    worker. The process is about to exit: what is left is frozen out of that pass."""
    gc.freeze()


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestDatabases]:
    with server_dir(tmp_path_factory.mktemp("pg")) as data_dir:
        dbs = TestDatabases(data_dir)
        yield dbs
        dbs.stop()


@pytest.fixture(scope="session")
async def template_ready(databases: TestDatabases) -> TestDatabases:
    await databases.prepare_template()
    return databases


@pytest.fixture
async def database_url(template_ready: TestDatabases) -> AsyncIterator[str]:
    name = await template_ready.create()
    yield template_ready.url(name)
    await template_ready.drop(name)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings({}, env="test", database_url=database_url, data_dir=tmp_path / "data",
                         token_secret="test-secret-" + "x" * 40, dispatcher="off", scheduler="off", warm_start="off",
                         stripe_backend="fake")


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=5, max_overflow=20)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


@pytest.fixture
def app(settings: Settings, clock: FrozenClock) -> Iterator[Litestar]:
    """The app of the test's settings and clock (built once per shape and worker: `tests/support/apps.py`)."""
    with commerce_app(settings, clock=clock) as app:
        yield app


_contract: list[Contract] = []


def contract_of(app: Litestar) -> Contract:
    """The OpenAPI document as served (one per process: every test app documents the same API)."""
    if not _contract:
        _contract.append(Contract(json.loads(encode_json(app.openapi_schema.to_schema()))))
    return _contract[0]


def conformance_hook(app: Litestar) -> Callable[[httpx.Response], Awaitable[None]]:
    """A response hook failing the test on any answer the OpenAPI document does not promise."""
    async def conforms(response: httpx.Response) -> None:
        content_type = response.headers.get("content-type", "")
        if content_type.startswith("text/event-stream") or response.request.url.path.startswith("/schema"):
            return  # a stream is read by its test; the document does not describe itself
        await response.aread()
        problems = contract_of(app).violations(response.request.method, response.request.url.path,
                                               response.status_code, content_type, response.content)
        assert not problems, "the answer breaks the OpenAPI document:\n" + "\n".join(problems)

    return conforms


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The app in process; every answer is checked against the app's OpenAPI document."""
    async with AsyncTestClient(app=app) as c:
        c.event_hooks = {"request": [], "response": [conformance_hook(app)]}
        yield c
