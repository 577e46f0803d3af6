"""Registering a webhook endpoint refuses every spelling of an internal target, in production and elsewhere."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from app.clock import FrozenClock
from app.settings import Settings
from tests.api.test_auth import assert_problem
from tests.factories import bearer, make_key
from tests.support.apps import commerce_app

BASE = "/v1/webhook-endpoints"

# Every form reaches the metadata service, a private network or loopback through some resolver or stack.
METADATA_FORMS = [
    "169.254.169.254.", "0xa9fea9fe", "2852039166", "169.254.43518", "169.16689662", "0251.0376.0251.0376",
    "0xa9.0xfe.0xa9.0xfe", "\uff11\uff16\uff19.\uff12\uff15\uff14.\uff11\uff16\uff19.\uff12\uff15\uff14",
    "169\u3002254\u3002169\u3002254", "metadata", "metadata.google.internal", "metadata.google.internal.",
    "metadata.goog", "instance-data", "intranet", "printer.local", "db.internal", "nas.home.arpa",
    "[::ffff:169.254.169.254]", "[::ffff:a9fe:a9fe]", "[::169.254.169.254]", "[::ffff:0:a9fe:a9fe]",
    "[64:ff9b::169.254.169.254]", "[64:ff9b::a9fe:a9fe]", "[64:ff9b:1::a9fe:a9fe]", "[2002:a9fe:a9fe::1]",
    "[fd00:ec2::254]", "[fe80::a9fe:a9fe]", "[fe80::1%25eth0]", "10.0.0.1", "012.0.0.1", "0xc0a80001",
    "100.64.0.1", "[fc00::1]",
]
LOOPBACK_FORMS = [
    "127.1", "2130706433", "0x7f000001", "0177.0.0.1", "127.0.0.1.", "0", "0.0.0.0", "localhost", "localhost.",
    "api.localhost", "[::1]", "[::ffff:127.0.0.1]", "[::127.0.0.1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::]", "[::]",
]


@pytest.fixture
async def production(settings: Settings, clock: FrozenClock, sessionmaker: Any) -> AsyncIterator[Any]:
    prod = msgspec.structs.replace(settings, env="production", stripe_backend="off")
    assert prod.webhook_networks == ()
    with commerce_app(prod, clock=clock) as app:
        async with AsyncTestClient(app=app) as client:
            yield client, await make_key(sessionmaker, clock)


async def _accepted(client: Any, key: str, urls: list[str]) -> list[tuple[str, int]]:
    """The URLs registration did not refuse with a 4xx problem (each answer is checked to be one)."""
    wrong = []
    for url in urls:
        r = await client.post(BASE, json={"url": url}, headers=bearer(key))
        if r.status_code not in (400, 422):
            wrong.append((url, r.status_code))
        else:
            assert_problem(r, r.status_code)
    return wrong


async def test_internal_targets_are_refused_at_registration_in_production(production: Any) -> None:
    client, key = production
    assert await _accepted(client, key, [f"https://{h}/hooks" for h in METADATA_FORMS + LOOPBACK_FORMS]) == []
    assert (await client.get(BASE, headers=bearer(key))).json()["data"] == []


async def test_internal_targets_are_refused_at_registration_outside_production(
    client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock,
) -> None:
    key = await make_key(sessionmaker, clock)
    hosts = [*METADATA_FORMS, "127.1", "2130706433", "0x7f000001", "127.0.0.1.", "0"]
    assert await _accepted(client, key, [f"http://{h}:8080/hooks" for h in hosts]) == []


async def test_internal_targets_are_refused_when_an_endpoint_is_changed(production: Any) -> None:
    client, key = production
    created = await client.post(BASE, json={"url": "https://hooks.example.com/x"}, headers=bearer(key))
    assert created.status_code == 201, created.text
    for host in ("0xa9fea9fe", "[64:ff9b::a9fe:a9fe]", "metadata", "169.254.169.254."):
        r = await client.patch(f"{BASE}/{created.json()['id']}", json={"url": f"https://{host}/x"},
                               headers=bearer(key))
        assert_problem(r, 422)
    got = await client.get(f"{BASE}/{created.json()['id']}", headers=bearer(key))
    assert got.json()["url"] == "https://hooks.example.com/x"


async def test_public_names_and_addresses_are_still_accepted(production: Any) -> None:
    client, key = production
    for url in ("https://hooks.example.com/x", "https://hooks.example.com./x", "https://b\u00fccher.example/x",
                "https://8.8.8.8/x", "https://[2606:4700::1111]/x", "https://[64:ff9b::808:808]/x"):
        r = await client.post(BASE, json={"url": url}, headers=bearer(key))
        assert r.status_code == 201, (url, r.text)
