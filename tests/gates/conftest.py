"""Fixtures of the gates: a live server with a vendor key and two tenants (A and B)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.clock import SystemClock
from app.db import create_engine, make_sessionmaker
from app.demo import demo_catalog_toml
from tests.factories import make_key
from tests.support.database import TestDatabases
from tests.support.live_server import live_server

SECRET = "gate-secret-" + "g" * 40


@dataclass
class LiveTenant:
    account: str
    admin: str
    user: str
    admin_token: str
    user_token: str


@dataclass
class Live:
    base_url: str
    vendor_key: str
    a: LiveTenant
    b: LiveTenant


def _tenant(base: str, key: str, name: str) -> LiveTenant:
    h = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=h, timeout=10) as c:
        c.post("/v1/accounts", json={"external_id": name, "name": f"{name.title()} Corp"}).raise_for_status()
        for uid, roles in ((f"{name}-admin", ["admin"]), (f"{name}-user", ["analyst"])):
            c.post(f"/v1/accounts/{name}/users", json={"external_id": uid, "roles": roles,
                                                        "email": f"{uid}@{name}.test"}).raise_for_status()
        tokens = [c.post("/v1/session-tokens", json={"account": name, "user": f"{name}-{who}", "ttl_seconds": 3600})
                  .json()["token"] for who in ("admin", "user")]
    return LiveTenant(account=name, admin=f"{name}-admin", user=f"{name}-user", admin_token=tokens[0],
                      user_token=tokens[1])


@pytest.fixture(scope="module")
async def live(template_ready: TestDatabases, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Live]:
    name = await template_ready.create()
    url = template_ready.url(name)
    engine = create_engine(url, pool_size=1, max_overflow=0)
    key = await make_key(make_sessionmaker(engine), SystemClock())
    await engine.dispose()
    # limits stay on (the limiter runs on every request) but high enough that the fuzzer's bursts with one key
    # or token reach the deep code paths instead of 429s
    roomy = {f"COMMERCE_RATE_LIMIT_{c}_{w}": "1000000/minute" for c in ("CHECK", "MONEY", "DEFAULT")
             for w in ("KEY", "USER")}
    with live_server(url, tmp_path_factory.mktemp("live"), SECRET, extra_env=roomy) as base:
        # a live catalog, so feature and module keys the fuzzer draws from examples reach the deeper code paths
        httpx.post(f"{base}/v1/catalog/apply", json={"toml": demo_catalog_toml()}, headers={
            "Authorization": f"Bearer {key}"}, timeout=30).raise_for_status()
        yield Live(base_url=base, vendor_key=key, a=_tenant(base, key, "alpha"), b=_tenant(base, key, "beta"))
    await template_ready.drop(name)


def headers(token: str) -> dict[str, Any]:
    return {"Authorization": f"Bearer {token}"}
