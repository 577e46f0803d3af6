"""The per-process side of entitlements: the check path over cached snapshots and the demand-signal flusher
(the expiry and trial sweep is a scheduled job, app/jobs). One ``Runtime`` per app, created by the app factory
and kept in ``app.state``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import metrics
from app.auth import Principal
from app.clock import Clock
from app.errors import NotFound
from app.notify import Listener
from app.settings import Settings
from app.singleflight import SingleFlight
from catalog.service import load_live
from entitlements.cache import CatalogHolder, ChangeSignal, DemandBuffer, SnapshotCache
from entitlements.domain import MEMO_MAX, CatalogView, Snapshot, best_offer, check, used_now
from entitlements.errors import FeatureNotFound
from entitlements.schemas import CheckRead, FeatureSnapshot, SnapshotRead
from entitlements.service._snapshot import catalog_view, load_snapshot
from entitlements.service._usage import add_signals

log = logging.getLogger("commerce.entitlements")
_ENCODER = msgspec.json.Encoder()  # the bytes Litestar sends for a CheckRead (same library, no custom types)


class Runtime:
    """Caches and background work of one process; every method is safe to call on the event loop."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings, self.clock = settings, clock
        self.snapshots = SnapshotCache(max_entries=settings.entitlement_cache_max_entries,
                                       ttl=settings.entitlement_cache_ttl_seconds)
        self.catalog = CatalogHolder(ttl=settings.entitlement_cache_ttl_seconds)
        self.demand = DemandBuffer(max_keys=settings.demand_buffer_max_keys)
        self.sessionmaker: async_sessionmaker[AsyncSession] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._loading: SingleFlight[str, tuple[Snapshot, CatalogView]] = SingleFlight()
        self._catalog_refresh: asyncio.Task[None] | None = None
        self.changes = ChangeSignal()  # wakes this process's change streams

    # -- wiring -----------------------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        listener.subscribe("ent", self.snapshots.invalidate)
        listener.subscribe("catalog", self._catalog_changed)
        # after the caches above, so a woken stream reads the new catalog revision
        listener.subscribe("ent", self.changes.poke)
        listener.subscribe("catalog", self.changes.poke)

    def _catalog_changed(self, value: str) -> None:
        self.catalog.invalidate(value)
        self.snapshots.clear()

    async def start(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker
        self.changes.reopen()
        self._tasks.append(asyncio.create_task(self._every(self.settings.demand_flush_seconds, self.flush_demand),
                                               name="demand-flush"))

    async def stop(self) -> None:
        if self._catalog_refresh is not None:
            self._tasks.append(self._catalog_refresh)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.flush_demand()

    async def _every(self, seconds: float, work: Any) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await work()
            except Exception:
                log.warning("background %s failed; will retry", getattr(work, "__name__", work), exc_info=True)

    async def flush_demand(self) -> int:
        """Write buffered denied checks (one statement); on failure they go back into the bounded buffer."""
        taken = self.demand.take()
        if not taken or self.sessionmaker is None:
            return 0
        try:
            async with self.sessionmaker() as session, session.begin():
                await add_signals(session, {k: (n, 0) for k, n in taken.items()}, now=self.clock.now())
        except Exception:
            self.demand.restore(taken)
            raise
        return len(taken)

    # -- reads ------------------------------------------------------------------------------------------

    async def view(self, session: AsyncSession | None = None) -> CatalogView:
        current = self.catalog.current()
        if current is not None:
            return current
        if session is not None:
            return await catalog_view(session, self.catalog)
        assert self.sessionmaker is not None
        async with self.sessionmaker() as s, s.begin():
            return await catalog_view(s, self.catalog)

    def _warm_view(self) -> CatalogView | None:
        """The cached catalog; past its TTL it is still served while one background task reloads it."""
        view = self.catalog.view
        if view is not None and self.catalog.expired() and self._catalog_refresh is None:
            self._catalog_refresh = asyncio.get_running_loop().create_task(self._refresh_catalog())
        return view

    async def _refresh_catalog(self) -> None:
        try:
            assert self.sessionmaker is not None
            generation = self.catalog.generation
            async with self.sessionmaker() as session, session.begin():
                self.catalog.put(CatalogView.build(await load_live(session)), generation)
        except Exception:
            log.warning("catalog refresh failed; keeping the cached revision", exc_info=True)
        finally:
            self._catalog_refresh = None

    async def snapshot(self, principal: Principal, user_ref: str, now: datetime) -> tuple[Snapshot, CatalogView]:
        """The user's snapshot: from the cache when warm (no database round trip), else loaded and cached."""
        view = self._warm_view()
        snap = self.snapshots.get(user_ref)
        if (view is None or snap is None or now >= snap.valid_until or now < snap.computed_at
                or snap.catalog_revision != view.revision):
            metrics.ENTITLEMENT_CACHE.labels(result="miss").inc()
            snap, view = await self._load(user_ref, now)
        else:
            metrics.ENTITLEMENT_CACHE.labels(result="hit").inc()
        if not principal.may_access_user(snap.account_id, snap.user_id):
            raise NotFound(f"User {user_ref!r} does not exist.")
        return snap, view

    async def fresh_snapshot(self, principal: Principal, user_ref: str,
                             now: datetime) -> tuple[Snapshot, CatalogView]:
        """Read from the database, not this process's cache (which may not have heard of a change yet)."""
        snap, view = await self._read(user_ref, now)
        if not principal.may_access_user(snap.account_id, snap.user_id):
            raise NotFound(f"User {user_ref!r} does not exist.")
        return snap, view

    async def _load(self, user_ref: str, now: datetime) -> tuple[Snapshot, CatalogView]:
        """Single flight: concurrent misses for one user share one database read."""
        return await self._loading.run(user_ref, lambda: self._read(user_ref, now))

    async def _read(self, user_ref: str, now: datetime) -> tuple[Snapshot, CatalogView]:
        assert self.sessionmaker is not None
        token = self.snapshots.token()
        async with self.sessionmaker() as session, session.begin():
            view = await catalog_view(session, self.catalog)
            snap = await load_snapshot(session, user_ref, now=now, view=view)
        if snap is None:
            raise NotFound(f"User {user_ref!r} does not exist.")
        self.snapshots.put(snap, token)
        return snap, view

    def cached(self, principal: Principal, user_ref: str, now: datetime) -> tuple[Snapshot, CatalogView] | None:
        """The user's warm snapshot when ``snapshot`` would answer from the cache without a database read and
        without an error; None otherwise (nothing counted: the caller then goes the ordinary way)."""
        view = self._warm_view()
        snap = self.snapshots.get(user_ref)
        if (view is None or snap is None or now >= snap.valid_until or now < snap.computed_at
                or snap.catalog_revision != view.revision
                or not principal.may_access_user(snap.account_id, snap.user_id)):
            return None
        return snap, view

    def check(self, snap: Snapshot, view: CatalogView, feature_key: str, quantity: int, now: datetime) -> CheckRead:
        """The check over a snapshot, in memory; a denial records a demand signal and carries the offer."""
        answer = self.answer(snap, view, feature_key, quantity, now)
        if not answer.allowed:
            self.demand.add(snap.account_id, snap.user_id, feature_key, now.date())
        return answer

    def answer(self, snap: Snapshot, view: CatalogView, feature_key: str, quantity: int, now: datetime) -> CheckRead:
        """The check's answer, memoised on the snapshot with its JSON encoding (``encoded``); records nothing."""
        memo = snap.memo.get((feature_key, quantity))
        if memo is not None:
            result: CheckRead = memo[0]
            return result
        feature = view.features.get(feature_key)
        if feature is None:
            raise FeatureNotFound(f"Feature {feature_key!r} does not exist.", feature=feature_key)
        out = check(snap, feature, quantity, now)
        offer = None
        if not out.allowed:
            if feature_key in snap.offers:
                offer = snap.offers[feature_key]
            else:
                needed = quantity + (out.used or 0) - (out.limit or 0)
                offer = snap.offers[feature_key] = best_offer(snap, feature, view, needed=needed)
        answer = CheckRead(
            user=snap.user_ref, feature=feature_key, kind=out.kind, allowed=out.allowed, reason=out.reason,
            quantity=quantity, limit=out.limit, used=out.used, remaining=out.remaining, period=out.period,
            period_start=out.period_start, period_end=out.period_end, value=out.value, modules=list(out.modules),
            offer=offer,
        )
        if len(snap.memo) < MEMO_MAX:
            snap.memo[(feature_key, quantity)] = (answer, _ENCODER.encode(answer))
        return answer

    @staticmethod
    def encode(answer: CheckRead) -> bytes:
        """The JSON body the check route sends for ``answer``."""
        return _ENCODER.encode(answer)

    def snapshot_read(self, snap: Snapshot, view: CatalogView, now: datetime) -> SnapshotRead:
        features: dict[str, FeatureSnapshot] = {}
        for key, state in sorted(snap.features.items()):
            used = remaining = None
            period_end = None
            if state.period is not None and state.limit is not None:
                _, period_end, used = used_now(snap, key, state.period, now)
                remaining = max(0, state.limit - used)
            features[key] = FeatureSnapshot(kind=state.kind, granted=state.granted, limit=state.limit, used=used,
                                            remaining=remaining, period=state.period, period_end=period_end,
                                            value=state.value, modules=list(state.modules))
        return SnapshotRead(user=snap.user_ref, account=snap.account_ref, version=snap.version,
                            computed_at=snap.computed_at,
                            valid_until=None if snap.valid_until.year == 9999 else snap.valid_until,
                            catalog_revision=view.revision, modules=sorted(snap.modules), features=features)
