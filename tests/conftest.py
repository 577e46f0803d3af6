"""Session-wide embedded PostgreSQL; every test runs on its own database cloned from a migrated template."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.asgi import create_app
from app.clock import FrozenClock
from app.db import create_engine, make_sessionmaker
from app.settings import Settings, load_settings
from tests.support.database import TestDatabases

START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestDatabases]:
    dbs = TestDatabases(tmp_path_factory.mktemp("pg"))
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
                         token_secret="test-secret-" + "x" * 40, dispatcher="off", scheduler="off",
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
def app(settings: Settings, clock: FrozenClock) -> Litestar:
    return create_app(settings, clock=clock)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as c:
        yield c
