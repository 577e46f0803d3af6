"""The per-process cache of users' token generations: races with invalidation, flush, TTL, bound."""

from __future__ import annotations

import time

from app.notify import FLUSH
from app.sessions import GenerationCache, _Entry


def _entry(generation: int | None = 0, account: str = "acct_1") -> _Entry:
    return _Entry(account_id=account, generation=generation, loaded_at=time.monotonic())


def _generation(cache: GenerationCache, user_id: str) -> int | None:
    entry = cache.get(user_id)
    return None if entry is None else entry.generation


def test_a_generation_read_before_an_invalidation_is_not_cached() -> None:
    cache = GenerationCache(ttl=60)
    token = cache.token()
    cache.invalidate("usr_a")  # a revocation arrives while the old generation was being read
    cache.put("usr_a", _entry(0), token)
    assert cache.get("usr_a") is None
    cache.put("usr_a", _entry(1), cache.token())
    assert _generation(cache, "usr_a") == 1


def test_an_invalidation_drops_one_user_and_a_flush_drops_all() -> None:
    cache = GenerationCache(ttl=60)
    for user in ("usr_a", "usr_b", "usr_c"):
        cache.put(user, _entry(3), cache.token())
    cache.invalidate("usr_a")
    assert cache.get("usr_a") is None and _generation(cache, "usr_b") == 3
    cache.invalidate(FLUSH)  # the listener reconnected: notifications may have been missed
    assert cache.get("usr_b") is None and cache.get("usr_c") is None


def test_ttl_is_a_safety_net() -> None:
    cache = GenerationCache(ttl=0.01)
    cache.put("usr_a", _entry(), cache.token())
    time.sleep(0.02)
    assert cache.get("usr_a") is None


def test_cache_is_a_bounded_lru() -> None:
    cache = GenerationCache(ttl=60, max_entries=2)
    cache.put("usr_a", _entry(), cache.token())
    cache.put("usr_b", _entry(), cache.token())
    assert cache.get("usr_a") is not None  # a is now the most recent
    cache.put("usr_c", _entry(), cache.token())
    assert cache.get("usr_b") is None and cache.get("usr_a") is not None and cache.get("usr_c") is not None
