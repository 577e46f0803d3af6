"""The local entitlement cache: per-user snapshots in process, kept current by the service's change stream.

A warm ``check`` is a dictionary lookup and a comparison (no I/O, no lock, no await). Snapshots load on first
use (with ETags), at most ``max_users`` are kept (least recently used evicted), each at most ``ttl`` seconds
and never past the instant the service says the answer changes by time alone (``valid_until``). The change
stream (``GET /v1/entitlements/changes``, server-sent events) drops the snapshots of users whose answers
changed, within milliseconds of the commit; while the stream is down, snapshots are trusted for at most
``stale_seconds`` more, then reloaded, and if the service cannot be reached either, each feature fails open
or closed as configured.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import httpx
import msgspec

from commerce_sdk import errors
from commerce_sdk._http import AsyncHTTP
from commerce_sdk.models import ChangeBatch, Snapshot, decode

log = logging.getLogger("commerce_sdk.entitlements")
_monotonic = time.monotonic
FailureMode = Literal["open", "closed"]
CHANGES_PATH = "/v1/entitlements/changes"


class Decision(msgspec.Struct, frozen=True, gc=False):
    """A local answer: ``allowed``, why (``reason``), and for limits the limit and what remains before this use."""

    allowed: bool
    reason: str
    limit: int | None = None
    remaining: int | None = None
    value: str | None = None
    stale: bool = False  # answered from a snapshot older than the stream guarantees (service unreachable)


GRANTED = Decision(True, "granted")
NOT_ENTITLED = Decision(False, "not_entitled")
UNAVAILABLE_OPEN = Decision(True, "unavailable_fail_open", stale=True)
UNAVAILABLE_CLOSED = Decision(False, "unavailable_fail_closed", stale=True)


@dataclass
class CachePolicy:
    """How the cache behaves; see docs/sdk.md."""

    max_users: int = 10_000
    ttl: float = 300.0  # safety net: the change stream is what keeps snapshots current
    stale_seconds: float = 30.0  # service unreachable: keep answering from snapshots this much longer
    failure_mode: FailureMode = "closed"  # then, for features not listed below
    feature_failure_modes: dict[str, FailureMode] = field(default_factory=dict)
    stream: bool = True  # follow the change stream (off: snapshots live ``ttl`` seconds)
    refresh_concurrency: int = 8


class _Entry:
    """One user's compacted snapshot: feature -> GRANTED, (limit, used) or a config Decision."""

    __slots__ = ("account", "catalog_revision", "features", "fresh_until", "loaded_at", "version")

    def __init__(self, *, account: str, version: str, catalog_revision: int,
                 features: dict[str, Decision | tuple[int, int]], fresh_until: float, loaded_at: float) -> None:
        self.account = account
        self.version = version
        self.catalog_revision = catalog_revision
        self.features = features
        self.fresh_until = fresh_until
        self.loaded_at = loaded_at


def _compact(snap: Snapshot) -> dict[str, Decision | tuple[int, int]]:
    out: dict[str, Decision | tuple[int, int]] = {}
    for key, state in snap.features.items():
        if not state.granted:
            continue
        name = sys.intern(key)  # one copy of each feature name across all cached users
        if state.kind == "limit" and state.limit is not None:
            out[name] = (state.limit, state.used or 0)
        elif state.kind == "config":
            out[name] = Decision(True, "granted", value=state.value)
        else:
            out[name] = GRANTED
    return out


def entry_size(entry: _Entry) -> int:
    """Bytes one cached user costs (interned feature names and shared answers are not counted)."""
    size = sys.getsizeof(entry) + sys.getsizeof(entry.features) + sys.getsizeof(entry.version)
    for value in entry.features.values():
        if value is not GRANTED:
            size += sys.getsizeof(value)
    return size


class LocalCache:
    """The in-process snapshots; ``check`` is the hot path. Loading is done by its owner (sync or async)."""

    def __init__(self, policy: CachePolicy) -> None:
        assert policy.max_users >= 1 and policy.ttl > 0 and policy.stale_seconds >= 0
        self.policy = policy
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._by_account: dict[str, set[str]] = {}
        self._seq = 0
        self._touched: dict[str, int] = {}
        self._flushed = 0
        self.stream_up = False
        self.catalog_revision: int | None = None
        self.on_invalidate: Callable[[list[str]], None] | None = None
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def check(self, user: str, feature: str, quantity: int = 1) -> Decision | None:
        """The answer from a fresh snapshot, or None when the user's snapshot must be (re)loaded first."""
        entry = self._entries.get(user)
        if entry is None or _monotonic() >= entry.fresh_until:
            self.misses += 1
            return None
        self._entries.move_to_end(user)
        self.hits += 1
        return _decide(entry, feature, quantity, stale=False)

    def fallback(self, user: str, feature: str, quantity: int) -> Decision:
        """The service cannot be reached: a recent enough snapshot, else the feature's failure mode."""
        entry = self._entries.get(user)
        if entry is not None and _monotonic() < entry.fresh_until + self.policy.stale_seconds:
            return _decide(entry, feature, quantity, stale=True)
        mode = self.policy.feature_failure_modes.get(feature, self.policy.failure_mode)
        return UNAVAILABLE_OPEN if mode == "open" else UNAVAILABLE_CLOSED

    def version_of(self, user: str) -> str | None:
        entry = self._entries.get(user)
        return entry.version if entry is not None else None

    # -- loading ----------------------------------------------------------------------------------------

    def token(self) -> int:
        """Take before requesting a snapshot; hand to ``put``."""
        return self._seq

    def put(self, snap: Snapshot, token: int) -> bool:
        """Cache a loaded snapshot, unless its user or account changed since ``token`` (then it may be stale)."""
        if self._flushed > token or self._touched.get(snap.account, -1) > token:
            return False
        if self.catalog_revision is not None and snap.catalog_revision != self.catalog_revision:
            return False
        now = _monotonic()
        life = self.policy.ttl if (self.stream_up or not self.policy.stream) else min(
            self.policy.ttl, self.policy.stale_seconds)
        if snap.valid_until is not None:
            life = min(life, max(0.0, (snap.valid_until - snap.computed_at).total_seconds()))
        entry = _Entry(account=snap.account, version=snap.version, catalog_revision=snap.catalog_revision,
                       features=_compact(snap), fresh_until=now + life, loaded_at=now)
        self._store(snap.user, entry)
        return True

    def touch(self, user: str, token: int) -> None:
        """A 304: the cached snapshot is still current; it lives another TTL."""
        entry = self._entries.get(user)
        if entry is not None and token >= self._flushed and self._touched.get(entry.account, -1) <= token:
            entry.fresh_until = _monotonic() + (self.policy.ttl if self.stream_up else self.policy.stale_seconds)

    def _store(self, user: str, entry: _Entry) -> None:
        old = self._entries.pop(user, None)
        if old is not None:
            self._forget(user, old)
        self._entries[user] = entry
        self._by_account.setdefault(entry.account, set()).add(user)
        while len(self._entries) > self.policy.max_users:
            evicted_user, evicted = self._entries.popitem(last=False)
            self._forget(evicted_user, evicted)

    def _forget(self, user: str, entry: _Entry) -> None:
        users = self._by_account.get(entry.account)
        if users is not None:
            users.discard(user)
            if not users:
                del self._by_account[entry.account]

    def consume(self, user: str, feature: str, quantity: int) -> None:
        """Usage recorded through this SDK counts locally at once (the service confirms through the stream)."""
        entry = self._entries.get(user)
        if entry is not None:
            value = entry.features.get(feature)
            if isinstance(value, tuple):
                entry.features[feature] = (value[0], value[1] + quantity)

    # -- invalidation -----------------------------------------------------------------------------------

    def invalidate(self, account: str, user: str | None) -> list[str]:
        """Drop one user's snapshot, or every user's of the account; returns the users dropped."""
        self._seq += 1
        if len(self._touched) >= 100_000:
            self._touched.clear()
            self._flushed = self._seq
        self._touched[account] = self._seq
        users = [user] if user is not None else list(self._by_account.get(account, ()))
        dropped = []
        for ref in users:
            entry = self._entries.get(ref)
            if entry is not None and entry.account == account:
                del self._entries[ref]
                self._forget(ref, entry)
                dropped.append(ref)
        return dropped

    def clear(self) -> None:
        self._seq += 1
        self._flushed = self._seq
        self._entries.clear()
        self._by_account.clear()

    def apply(self, kind: str, batch: ChangeBatch, *, resumed: bool) -> list[str]:
        """One event of the change stream; returns the users whose snapshots were dropped (to reload)."""
        self.stream_up = True
        if kind == "ready" and (batch.reset or not resumed):
            # a fresh stream: anything loaded before it was live may have missed a change
            users = list(self._entries)
            self.catalog_revision = batch.catalog_revision
            self.clear()
            return users
        if batch.reset or batch.catalog_revision != self.catalog_revision:
            users = list(self._entries)
            self.catalog_revision = batch.catalog_revision
            self.clear()
            return users
        dropped: list[str] = []
        for change in batch.changes:
            dropped += self.invalidate(change.account, change.user)
        return dropped

    def stream_lost(self) -> None:
        """The stream is down: changes may be missed from now on, so no snapshot is trusted past stale_seconds."""
        if not self.stream_up:
            return
        self.stream_up = False
        limit = _monotonic() + self.policy.stale_seconds
        for entry in self._entries.values():
            entry.fresh_until = min(entry.fresh_until, limit)


def _decide(entry: _Entry, feature: str, quantity: int, *, stale: bool) -> Decision:
    value = entry.features.get(feature)
    if value is None:
        return NOT_ENTITLED if not stale else Decision(False, "not_entitled", stale=True)
    if isinstance(value, Decision):
        return value if not stale else Decision(value.allowed, value.reason, value=value.value, stale=True)
    limit, used = value
    allowed = used + quantity <= limit
    return Decision(allowed, "within_limit" if allowed else "limit_exceeded", limit=limit,
                    remaining=max(0, limit - used), stale=stale)


# -- loading and the stream (async; the sync client runs these on its own loop thread) -------------------

async def load(http: AsyncHTTP, cache: LocalCache, user: str) -> Snapshot | None:
    """Fetch one user's snapshot past the service's own cache (with the cached ETag) and cache it.

    Returns the snapshot, or None when the cached one was still current (304).
    """
    token = cache.token()
    headers = {"Cache-Control": "no-cache"}
    version = cache.version_of(user)
    if version is not None:
        headers["If-None-Match"] = f'"{version}"'
    response = await http.send("GET", "/v1/entitlements/snapshot", params={"user": user}, headers=headers)
    if response.status_code == 304:
        cache.touch(user, token)
        return None
    snap = decode(response.content, Snapshot)
    cache.put(snap, token)
    return snap


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str, str | None]]:
    """(event, data, id) of a text/event-stream, per the WHATWG parsing rules that matter here."""
    kind, event_id = "message", None
    data: list[str] = []
    async for line in lines:
        if line == "":
            if data:
                yield kind, "\n".join(data), event_id
            kind, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            kind = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value


class ChangeFollower:
    """Follows the change stream, reconnecting with backoff and resuming from the last cursor."""

    def __init__(self, http: AsyncHTTP, cache: LocalCache, *, reload: Callable[[Iterable[str]], None],
                 read_timeout: float = 45.0, max_backoff: float = 5.0) -> None:
        self._http = http
        self._cache = cache
        self._reload = reload
        self._read_timeout = read_timeout
        self._max_backoff = max_backoff
        self.cursor: str | None = None
        self.connected = asyncio.Event()
        self.reconnects = 0
        self.last_error: str | None = None

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                await self._follow()
                failures = 0  # the server ended the stream on purpose (its maximum length): resume at once
            except asyncio.CancelledError:
                raise
            except (httpx.HTTPError, errors.CommerceError, msgspec.DecodeError, ValueError) as exc:
                failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("entitlement change stream lost (%s); reconnecting", self.last_error)
            self.connected.clear()
            self._cache.stream_lost()
            self.reconnects += 1
            if failures:
                delay = min(self._max_backoff, 0.1 * 2 ** min(failures, 10))
                await asyncio.sleep(delay * (0.5 + random.random() / 2))  # noqa: S311

    async def _follow(self) -> None:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.cursor:
            headers["Last-Event-ID"] = self.cursor
        timeout = httpx.Timeout(10.0, read=self._read_timeout)
        async with self._http.client.stream("GET", CHANGES_PATH, headers=headers, timeout=timeout) as response:
            if response.status_code != 200:
                await response.aread()
                raise errors.error_for(response.status_code, _problem_of(response))
            resumed = self.cursor is not None
            async for kind, data, _event_id in sse_events(response.aiter_lines()):
                batch = decode(data.encode(), ChangeBatch)
                dropped = self._cache.apply(kind, batch, resumed=resumed)
                self.cursor = batch.cursor
                if kind == "ready":
                    self.connected.set()
                if dropped:
                    self._reload(dropped)


def _problem_of(response: httpx.Response) -> dict[str, object]:
    try:
        body = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return {"detail": response.text[:200]}
    return body if isinstance(body, dict) else {}


def utcnow() -> datetime:
    return datetime.now(UTC)
