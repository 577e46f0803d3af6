"""The check path's principal cache (a verified token's principal kept by the token's SHA-256): a revoked key
stops working at once through the API or a notice, and within the key cache's TTL when the notice is lost."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import msgspec
from litestar.testing import AsyncTestClient

from app import keys
from app.asgi import create_app
from app.auth import KeyCache, VendorPrincipal, _CachedKey
from app.clock import FrozenClock
from app.settings import Settings
from tests.factories import bearer, make_key

CHECK = "/v1/entitlements/check?user=nobody&feature=reports&quantity=1"


async def _warm(client: AsyncTestClient[Any], key: str) -> None:
    for _ in range(3):  # the first request verifies the token, the next ones are served the remembered principal
        r = await client.get(CHECK, headers=bearer(key))
        assert r.status_code == 404, r.text  # authenticated: an unknown user, not a bad key


async def test_a_revoked_key_stops_checks_at_once_though_its_principal_was_remembered(
    client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock,
) -> None:
    admin = await make_key(sessionmaker, clock)
    victim = await make_key(sessionmaker, clock, scopes="entitlements:read")
    await _warm(client, victim)
    victim_id = victim[3:].split(".")[0]
    r = await client.post(f"/v1/api-keys/{victim_id}/revoke", headers=bearer(admin))
    assert r.status_code == 200
    r = await client.get(CHECK, headers=bearer(victim))
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
    assert (await client.get(CHECK, headers=bearer(admin))).status_code == 404  # other keys keep working


async def test_a_revoked_key_stops_within_the_cache_ttl_when_the_notice_is_lost(
    settings: Settings, sessionmaker: Any, clock: FrozenClock,
) -> None:
    ttl = 0.5
    app = create_app(msgspec.structs.replace(settings, api_key_cache_seconds=ttl), clock=clock)
    async with AsyncTestClient(app=app) as client:
        victim = await make_key(sessionmaker, clock, scopes="entitlements:read")
        await _warm(client, victim)
        async with sessionmaker() as session, session.begin():  # revoked in the database, no notice sent
            await keys.revoke_key(session, victim[3:].split(".")[0], clock=clock)
        assert (await client.get(CHECK, headers=bearer(victim))).status_code == 404  # not heard of it yet
        await asyncio.sleep(ttl + 0.1)
        assert (await client.get(CHECK, headers=bearer(victim))).status_code == 401


def _entry(key_id: str = "key_1") -> _CachedKey:
    return _CachedKey(key_id=key_id, secret_sha256=keys.token_sha256("t"), scopes=frozenset({"x"}),
                      account_ids=None, revoked=False, loaded_at=0.0, last_used_write=0.0)


def test_a_remembered_principal_is_served_only_while_its_entry_is_live() -> None:
    cache = KeyCache(ttl=3600)
    entry = dataclasses.replace(_entry(), loaded_at=time.monotonic())
    principal = VendorPrincipal(key_id="key_1", scopes=entry.scopes)
    cache.put(entry)
    cache.remember("digest", entry, principal)
    assert cache.principal("digest") == (entry, principal)
    assert cache.principal("other digest") is None
    cache.invalidate("key_1")  # a revocation notice
    assert cache.principal("digest") is None and entry.revoked


def test_a_remembered_principal_expires_with_its_entry() -> None:
    cache = KeyCache(ttl=0.0)
    entry = _entry()
    cache.put(entry)
    cache.remember("digest", entry, VendorPrincipal(key_id="key_1", scopes=entry.scopes))
    assert cache.principal("digest") is None


async def test_concurrent_misses_of_one_key_share_one_read() -> None:
    cache = KeyCache(ttl=3600)
    reads = 0
    gate = asyncio.Event()

    async def read() -> _CachedKey:
        nonlocal reads
        reads += 1
        await gate.wait()
        return dataclasses.replace(_entry(), loaded_at=time.monotonic())

    waiting = [asyncio.create_task(cache.load("key_1", read)) for _ in range(20)]
    await asyncio.sleep(0)
    gate.set()
    entries = await asyncio.gather(*waiting)
    assert reads == 1 and all(e is entries[0] for e in entries) and cache.get("key_1") is entries[0]
