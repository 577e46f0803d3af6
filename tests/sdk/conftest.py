"""The SDK against the real service: granian with two workers on an embedded PostgreSQL database, demo catalog."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from commerce_sdk import CachePolicy, Commerce, UsagePolicy

from app.clock import SystemClock
from app.db import create_engine, make_sessionmaker
from app.demo import demo_catalog_toml
from tests.factories import make_key
from tests.support.database import TestDatabases
from tests.support.live_server import free_port, live_server

SECRET = "sdk-secret-" + "s" * 40


@dataclass
class Service:
    base_url: str
    key: str
    database_url: str
    data_dir: Path
    port: int

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {self.key}"}, timeout=10)


@pytest.fixture(scope="module")
async def service_db(template_ready: TestDatabases) -> AsyncIterator[tuple[str, str]]:
    name = await template_ready.create()
    url = template_ready.url(name)
    engine = create_engine(url, pool_size=1, max_overflow=0)
    key = await make_key(make_sessionmaker(engine), SystemClock())
    await engine.dispose()
    yield url, key
    await template_ready.drop(name)


@pytest.fixture(scope="module")
def service(service_db: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    url, key = service_db
    port, data_dir = free_port(), tmp_path_factory.mktemp("sdk-live")
    with live_server(url, data_dir, SECRET, workers=2, port=port,
                     extra_env={"COMMERCE_CHANGES_HEARTBEAT_SECONDS": "2"}) as base:
        svc = Service(base_url=base, key=key, database_url=url, data_dir=data_dir, port=port)
        with svc.http() as http:
            http.post("/v1/catalog/apply", json={"toml": demo_catalog_toml()}).raise_for_status()
        yield svc


@pytest.fixture
def sdk(service: Service) -> Iterator[Commerce]:
    client = Commerce(api_key=service.key, base_url=service.base_url,
                      usage=UsagePolicy(batch_size=50, flush_interval=0.05), cache=CachePolicy(max_users=1000))
    yield client
    client.close()
