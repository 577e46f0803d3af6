"""The per-process rate limiter: an app-level guard after authentication, local buckets, periodic sync.

A request is counted against its caller's bucket for the route's class (``opt["rate_limit"]``: ``check``,
``money``, else ``default``): the API key for vendor calls, the user for session tokens. The decision is
made in memory; PostgreSQL sees one batched upsert per process every ``COMMERCE_RATE_LIMIT_SYNC_SECONDS``
plus one round trip when a bucket is first seen or its local share is spent (docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from itertools import islice
from typing import Any, cast

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Message, Scope
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth import Principal, UserPrincipal
from app.clock import Clock
from app.errors import TooManyRequests
from app.ratelimit import store
from app.ratelimit.domain import (
    Bucket,
    Decision,
    Rate,
    apply_sync,
    count,
    decide,
    fail_open,
    give_back,
    parse_rate,
    roll,
    take_pending,
)
from app.settings import Settings

log = logging.getLogger("commerce.ratelimit")

CLASSES = ("check", "money", "default")
MAX_BUCKETS = 100_000
PURGE_EVERY_S = 60.0
_SCOPE_KEY = "commerce.rate_limit"
_SYNC_TRIES = 3


class RateLimiter:
    """Buckets of this process and their sync with the shared counters; safe to use on the event loop only."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.clock = clock
        self.sync_s = settings.rate_limit_sync_seconds
        self.alive_s = max(2.0, 4 * self.sync_s)
        self.node_id = "node_" + secrets.token_hex(8)
        self.rates: dict[str, tuple[Rate, Rate]] = {
            cls: (parse_rate(getattr(settings, f"rate_limit_{cls}_key")),
                  parse_rate(getattr(settings, f"rate_limit_{cls}_user")))
            for cls in CLASSES
        }
        self._buckets: dict[str, tuple[Bucket, Rate]] = {}
        self._carry: dict[tuple[str, int], list[int]] = {}
        self._syncing: dict[str, asyncio.Task[None]] = {}
        self._sessionmaker: async_sessionmaker[AsyncSession] | None = None
        self._task: asyncio.Task[None] | None = None
        self._static: dict[Rate, list[tuple[bytes, bytes]]] = {}

    # -- wiring -----------------------------------------------------------------------------------------

    async def start(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._task = asyncio.create_task(self._run(), name="rate-limit-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.sync()

    async def _run(self) -> None:
        purged_at = 0.0
        while True:
            await asyncio.sleep(self.sync_s)
            try:
                await self.sync()
                if time.monotonic() - purged_at > PURGE_EVERY_S:
                    purged_at = time.monotonic()
                    await self._purge()
            except Exception:
                log.warning("rate-limit sync failed; will retry", exc_info=True)

    # -- the guard and the response headers -----------------------------------------------------------------

    async def guard(self, connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        """App-level guard, after ``auth_guard``: count the request or refuse it with a 429 problem."""
        principal: Principal | None = connection.scope.get("auth")
        if principal is None:
            return  # public routes (health, readiness, Stripe's signed webhook) are not limited
        cls = handler.opt.get("rate_limit", "default")
        rate, decision = await self.admit(principal, cls)
        if not decision.allowed:
            who = "user" if isinstance(principal, UserPrincipal) else "API key"
            raise TooManyRequests(
                f"This {who} made more than {rate.limit} requests in {rate.window_s} s to {cls} routes; "
                f"retry after {decision.retry_after_s} s.",
                headers={"Retry-After": str(decision.retry_after_s), **_headers(rate, decision)},
                retry_after_seconds=decision.retry_after_s, limit=rate.limit, window_seconds=rate.window_s,
            )
        cast(dict[str, Any], connection.scope)[_SCOPE_KEY] = (rate, decision)

    def before_send(self, message: Message, scope: Scope) -> None:
        """Add the RateLimit headers of the admitted request to its response."""
        if message["type"] != "http.response.start":
            return
        admitted = cast(dict[str, Any], scope).get(_SCOPE_KEY)
        if admitted is None:
            return
        rate, decision = admitted
        static = self._static.get(rate)
        if static is None:
            static = self._static[rate] = [(b"ratelimit-limit", str(rate.limit).encode()),
                                           (b"ratelimit-policy", rate.policy.encode())]
        headers = cast(list[tuple[bytes, bytes]], message.setdefault("headers", []))
        headers.extend(static)
        headers.append((b"ratelimit-remaining", str(decision.remaining).encode()))
        headers.append((b"ratelimit-reset", str(decision.reset_s).encode()))

    # -- decisions --------------------------------------------------------------------------------------------

    def bucket_key(self, principal: Principal, cls: str) -> tuple[str, Rate]:
        key_rate, user_rate = self.rates[cls]
        if isinstance(principal, UserPrincipal):
            return f"{cls}:u:{principal.account_id}:{principal.user_id}", user_rate
        return f"{cls}:k:{principal.key_id}", key_rate

    async def admit(self, principal: Principal, cls: str) -> tuple[Rate, Decision]:
        """Decide for one request; counts it when admitted. A DB round trip only to (re)sync the bucket."""
        key, rate = self.bucket_key(principal, cls)
        entry = self._buckets.get(key)
        bucket = entry[0] if entry is not None else self._new(key, rate)
        for _ in range(_SYNC_TRIES):
            now = self.clock.now().timestamp()
            carried = roll(bucket, rate, now)
            if carried is not None:
                self._carry_hits(key, rate, *carried)
            decision = decide(bucket, rate, now)
            if not decision.sync:
                if decision.allowed:
                    count(bucket)
                return rate, decision
            await self._sync_bucket(key)
        # still no share after fresh syncs: many concurrent requests of one caller in this process; the
        # overshoot is bounded by the tries, and the next sync corrects the counts
        count(bucket)
        return rate, decision._replace(allowed=True, sync=False)

    def _new(self, key: str, rate: Rate) -> Bucket:
        if len(self._buckets) >= MAX_BUCKETS:
            for old in list(islice(self._buckets, MAX_BUCKETS // 10)):
                gone, gone_rate = self._buckets.pop(old)
                if gone.pending:
                    self._carry_hits(old, gone_rate, gone.window * gone_rate.window_s, gone.pending)
        bucket = Bucket()
        self._buckets[key] = (bucket, rate)
        return bucket

    def _carry_hits(self, key: str, rate: Rate, window_start_s: int, hits: int) -> None:
        slot = self._carry.setdefault((key, window_start_s), [0, rate.window_s])
        slot[0] += hits

    # -- sync with the shared counters ---------------------------------------------------------------------

    async def _sync_bucket(self, key: str) -> None:
        task = self._syncing.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self.sync([key]))
            self._syncing[key] = task
            task.add_done_callback(lambda _t: self._syncing.pop(key, None))
        await asyncio.shield(task)

    async def sync(self, keys: list[str] | None = None) -> None:
        """Write the unwritten hits of these buckets (default: every bucket with some, and carried hits)."""
        if self._sessionmaker is None:
            return
        taken: list[tuple[str, Bucket, Rate, int, int]] = []
        rows: dict[tuple[str, int], list[int]] = {}
        chosen = keys if keys is not None else [k for k, (b, _r) in self._buckets.items() if b.pending]
        for key in chosen:
            entry = self._buckets.get(key)
            if entry is None:
                continue
            bucket, rate = entry
            start = bucket.window * rate.window_s
            hits = take_pending(bucket)
            taken.append((key, bucket, rate, start, hits))
            rows.setdefault((key, start), [0, rate.window_s])[0] += hits
        carried: dict[tuple[str, int], list[int]] = {}
        if keys is None:
            carried, self._carry = self._carry, {}
            for slot_key, (hits, width) in carried.items():
                rows.setdefault(slot_key, [0, width])[0] += hits
        if not rows:
            return
        try:
            async with self._sessionmaker() as session, session.begin():
                totals, nodes = await store.add_hits(
                    session, [store.Hits(k, s, h, w) for (k, s), (h, w) in rows.items()],
                    node_id=self.node_id, alive_s=self.alive_s)
        except Exception:
            log.warning("rate-limit counters could not be written; deciding locally meanwhile", exc_info=True)
            self._undo(taken, carried, failed_keys=keys)
            return
        by_slot = {(t.bucket, t.window_start_s): t for t in totals}
        now = self.clock.now().timestamp()
        for key, bucket, rate, start, hits in taken:
            total = by_slot.get((key, start))
            if total is not None:
                apply_sync(bucket, rate, now, window_start=start, flushed=hits, shared=total.hits,
                           prev=total.prev_hits, nodes=nodes)

    def _undo(self, taken: list[tuple[str, Bucket, Rate, int, int]], carried: dict[tuple[str, int], list[int]],
              *, failed_keys: list[str] | None) -> None:
        now = self.clock.now().timestamp()
        for key, bucket, rate, start, hits in taken:
            back = give_back(bucket, start, rate, hits)
            if back is not None:
                self._carry_hits(key, rate, *back)
            if failed_keys is not None:
                fail_open(bucket, rate, now)  # availability first: the database is only our shared memory
        for (key, start), (hits, width) in carried.items():
            slot = self._carry.setdefault((key, start), [0, width])
            slot[0] += hits

    async def _purge(self) -> None:
        assert self._sessionmaker is not None
        async with self._sessionmaker() as session, session.begin():
            await store.purge(session, now_s=int(self.clock.now().timestamp()))


def _headers(rate: Rate, decision: Decision) -> dict[str, str]:
    return {"RateLimit-Limit": str(rate.limit), "RateLimit-Remaining": str(decision.remaining),
            "RateLimit-Reset": str(decision.retry_after_s or decision.reset_s), "RateLimit-Policy": rate.policy}
