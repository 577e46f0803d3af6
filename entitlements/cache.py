"""Per-process caches of the check path: user snapshots (bounded LRU + TTL), the live catalog, and the
buffer of demand signals (denied checks) written off the hot path.

Invalidation arrives through LISTEN/NOTIFY (``app.notify``): topic ``ent`` with ``<account_id>`` (every
user of the account) or ``<account_id>:<user_id>`` (one user), topic ``catalog`` for a new revision; the
listener flushes everything after a reconnect. A generation counter per account makes sure a snapshot
read from the database before an invalidation is never cached after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date

from app.notify import FLUSH
from entitlements.domain import CatalogView, FeatureState, Snapshot

# Distinct resolved feature maps (and module and role sets) kept for sharing: users holding the same grants
# resolve to equal maps, so the cache keeps one copy of each (bounded: past this many distinct values the
# table starts over).
SHARED_FEATURES_MAX = 4096


class SnapshotCache:
    """LRU of per-user snapshots keyed by the user's external id, at most ``max_entries``, each ``ttl`` seconds."""

    def __init__(self, *, max_entries: int, ttl: float) -> None:
        assert max_entries >= 1 and ttl > 0
        self.max_entries = max_entries
        self.ttl = ttl
        self._entries: OrderedDict[str, Snapshot] = OrderedDict()
        self._by_account: dict[str, set[str]] = {}
        self._seq = 0  # grows with every invalidation
        self._touched: dict[str, int] = {}  # account -> seq of its last invalidation
        self._flushed = 0  # seq of the last full flush
        self.hits = 0
        self.misses = 0
        self._shared: dict[tuple[object, ...], dict[str, FeatureState]] = {}
        self._sets: dict[frozenset[str], frozenset[str]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, user_ref: str) -> Snapshot | None:
        snap = self._entries.get(user_ref)
        if snap is None or time.monotonic() - snap.loaded_at > self.ttl:
            self.misses += 1
            return None
        self._entries.move_to_end(user_ref)
        self.hits += 1
        return snap

    def token(self) -> int:
        """Take before reading from the database; hand back to ``put``."""
        return self._seq

    def put(self, snap: Snapshot, token: int) -> bool:
        """Cache ``snap`` unless its account (or everything) was invalidated since ``token`` was taken."""
        if self._flushed > token or self._touched.get(snap.account_id, -1) > token:
            return False
        snap.loaded_at = time.monotonic()
        snap.features = self._share(snap.features)
        snap.modules, snap.roles = self._same(snap.modules), self._same(snap.roles)
        old = self._entries.pop(snap.user_ref, None)
        if old is not None:
            self._forget(old)
        self._entries[snap.user_ref] = snap
        self._by_account.setdefault(snap.account_id, set()).add(snap.user_ref)
        while len(self._entries) > self.max_entries:
            _, evicted = self._entries.popitem(last=False)
            self._forget(evicted)
        return True

    def _share(self, features: dict[str, FeatureState]) -> dict[str, FeatureState]:
        """One copy of each distinct resolved feature map (nothing changes a snapshot's map once resolved)."""
        key = tuple((k, f.kind, f.granted, f.limit, f.value, f.period, f.modules)
                    for k, f in sorted(features.items()))
        shared = self._shared.get(key)
        if shared is None:
            if len(self._shared) >= SHARED_FEATURES_MAX:
                self._shared.clear()
            shared = self._shared[key] = features
        return shared

    def _same(self, values: frozenset[str]) -> frozenset[str]:
        """One copy of each distinct set of modules or roles (many users hold the same ones)."""
        shared = self._sets.get(values)
        if shared is None:
            if len(self._sets) >= SHARED_FEATURES_MAX:
                self._sets.clear()
            shared = self._sets[values] = values
        return shared

    def _forget(self, snap: Snapshot) -> None:
        refs = self._by_account.get(snap.account_id)
        if refs is not None:
            refs.discard(snap.user_ref)
            if not refs:
                del self._by_account[snap.account_id]

    def invalidate(self, value: str) -> None:
        """NOTIFY callback: ``*`` (everything), ``<account_id>`` or ``<account_id>:<user_id>``."""
        if value == FLUSH or not value:
            self.clear()
            return
        account_id, _, user_id = value.partition(":")
        self._seq += 1
        if len(self._touched) >= 100_000:  # bounded bookkeeping: forgetting it all counts as a full flush
            self._touched.clear()
            self._flushed = self._seq
        self._touched[account_id] = self._seq
        for ref in list(self._by_account.get(account_id, ())):
            snap = self._entries.get(ref)
            if snap is not None and (not user_id or snap.user_id == user_id):
                del self._entries[ref]
                self._forget(snap)

    def clear(self) -> None:
        self._seq += 1
        self._flushed = self._seq
        self._entries.clear()
        self._by_account.clear()
        self._shared.clear()
        self._sets.clear()


class CatalogHolder:
    """The live catalog, loaded once per process and replaced when a new revision is applied."""

    def __init__(self, *, ttl: float) -> None:
        self.ttl = ttl
        self.view: CatalogView | None = None
        self.loaded_at = 0.0
        self.generation = 0

    def current(self) -> CatalogView | None:
        if self.view is None or time.monotonic() - self.loaded_at > self.ttl:
            return None
        return self.view

    def expired(self) -> bool:
        """Older than the TTL (still usable while a refresh runs: changes themselves arrive by NOTIFY)."""
        return time.monotonic() - self.loaded_at > self.ttl

    def put(self, view: CatalogView, generation: int) -> None:
        if generation == self.generation:
            self.view, self.loaded_at = view, time.monotonic()

    def invalidate(self, _value: str) -> None:
        self.generation += 1
        self.view = None


@dataclass
class DemandBuffer:
    """Denied checks counted in memory per (account, user, feature, UTC day) and flushed in the background.

    Bounded: beyond ``max_keys`` distinct keys new keys are dropped (and counted in ``dropped``), so a flood
    of denials can neither grow memory nor slow checks down.
    """

    max_keys: int

    def __post_init__(self) -> None:
        self.counts: dict[tuple[str, str, str, date], int] = {}
        self.dropped = 0

    def add(self, account_id: str, user_id: str, feature: str, day: date) -> None:
        key = (account_id, user_id, feature, day)
        if key in self.counts:
            self.counts[key] += 1
        elif len(self.counts) < self.max_keys:
            self.counts[key] = 1
        else:
            self.dropped += 1

    def take(self) -> dict[tuple[str, str, str, date], int]:
        taken, self.counts = self.counts, {}
        return taken

    def restore(self, taken: dict[tuple[str, str, str, date], int]) -> None:
        """Put back counts whose write failed (still bounded)."""
        for key, n in taken.items():
            if key in self.counts or len(self.counts) < self.max_keys:
                self.counts[key] = self.counts.get(key, 0) + n
            else:
                self.dropped += n


class ChangeSignal:
    """Wakes every waiting stream of this process when an entitlement or catalog notification arrives; ``close``
    (the process is stopping) ends them, so a graceful stop is not held up by clients that never hang up."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.closed = False
        self.streams = 0  # streams open in this process
        self._none_open = asyncio.Event()
        self._none_open.set()

    def opened(self) -> None:
        self.streams += 1
        self._none_open.clear()

    def ended(self) -> None:
        self.streams -= 1
        if self.streams <= 0:
            self._none_open.set()

    def close(self) -> None:
        """Wake every stream for the last time: each ends, and its client resumes from its cursor elsewhere."""
        self.closed = True
        self.poke()

    def reopen(self) -> None:
        """A new life of the process's runtime after a stop: streams are served again."""
        self.closed = False

    async def drained(self, *, seconds: float) -> bool:
        """After ``close``: until every stream has ended (True) or ``seconds`` pass (False)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._none_open.wait()
        return self.streams <= 0

    def poke(self, _value: str = "") -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    def token(self) -> asyncio.Event:
        """Take before reading; ``wait`` on it returns at once if a notification arrived during the read."""
        return self._event

    @staticmethod
    async def wait(token: asyncio.Event, *, seconds: float) -> None:
        """Until the token is set or ``seconds`` pass."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await token.wait()
