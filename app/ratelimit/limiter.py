"""The per-process rate limiter: an app-level guard after authentication, buckets with leases.

A request is counted against its caller's bucket for the route's class (``opt["rate_limit"]``: ``check``,
``money``, else ``default``): the API key for vendor calls, the user for session tokens. Requests are admitted
from a lease held in memory; PostgreSQL is asked (one statement) only when the lease is spent, and a
background task gives idle leases back and writes the process heartbeat every
``COMMERCE_RATE_LIMIT_SYNC_SECONDS`` (docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from itertools import islice
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth import Principal, UserPrincipal
from app.clock import Clock, SystemClock
from app.errors import TooManyRequests
from app.ratelimit import store
from app.ratelimit.domain import (
    Bucket,
    Decision,
    Rate,
    count,
    decide,
    granted,
    lease_size,
    parse_rate,
    prev_weight,
    release,
    roll,
)
from app.settings import Settings

log = logging.getLogger("commerce.ratelimit")

CLASSES = ("check", "money", "default")
MAX_BUCKETS = 100_000
PURGE_EVERY_S = 60.0
WARN_EVERY_S = 10.0
# Set in a request's scope by a fast path that already counted the request (spend_leased) before handing it on
# to the app: the guard then does not count it again.
SPENT = "commerce.rate_limit_spent"
IDLE_TICKS = 10  # a lease unused for this many sync intervals goes back (5 s by default)
_ASK_TRIES = 5


class RateLimiter:
    """Buckets of this process and their leases; safe to use on the event loop only."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.clock = clock
        # epoch seconds; the system clock without building a datetime per request
        self._now: Callable[[], float] = time.time if isinstance(clock, SystemClock) else (
            lambda: clock.now().timestamp())
        self.hold_s = settings.rate_limit_sync_seconds
        self.alive_s = max(5.0, 10 * self.hold_s)
        self.node_id = "node_" + secrets.token_hex(8)
        self.nodes = 1
        self.rates: dict[str, tuple[Rate, Rate]] = {
            cls: (parse_rate(getattr(settings, f"rate_limit_{cls}_key")),
                  parse_rate(getattr(settings, f"rate_limit_{cls}_user")))
            for cls in CLASSES
        }
        self._buckets: dict[str, tuple[Bucket, Rate]] = {}
        self._leased: set[str] = set()
        self._returns: dict[tuple[str, int], int] = {}
        self._asking: dict[str, asyncio.Task[None]] = {}
        self._sessionmaker: async_sessionmaker[AsyncSession] | None = None
        self._task: asyncio.Task[None] | None = None
        self._warned_at = 0.0

    # -- wiring -----------------------------------------------------------------------------------------

    async def start(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._task = asyncio.create_task(self._run(), name="rate-limit-leases")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.tick(everything=True)  # a stopping process gives back what it still holds

    async def _run(self) -> None:
        purged_at = time.monotonic()
        while True:
            await asyncio.sleep(self.hold_s)
            try:
                await self.tick()
                if time.monotonic() - purged_at > PURGE_EVERY_S:
                    purged_at = time.monotonic()
                    await self._purge()
            except Exception:
                self._warn("rate-limit leases could not be given back; will retry")

    # -- the guard and the response headers -----------------------------------------------------------------

    async def guard(self, connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        """App-level guard, after ``auth_guard``: count the request or refuse it with a 429 problem.

        The common case (a known caller with hits left in its lease, same window) is a few attribute reads;
        it is kept inline because this runs on every request of the entitlement check path.
        """
        principal: Principal | None = connection.scope.get("auth")
        if principal is None or connection.scope.get(SPENT):
            return  # public routes (health, readiness, Stripe's signed webhook) are not limited
        cls = handler.opt.get("rate_limit", "default")
        if self.spend_leased(principal, cls):
            return
        rate, decision = await self.admit(principal, cls)
        if not decision.allowed:
            who = "user" if isinstance(principal, UserPrincipal) else "API key"
            raise TooManyRequests(
                f"This {who} reached its limit of {rate.limit} requests per {rate.window_s} s on {cls} routes; "
                f"retry after {decision.retry_after_s} s.",
                headers={"Retry-After": str(decision.retry_after_s), "RateLimit-Limit": str(rate.limit),
                         "RateLimit-Remaining": "0", "RateLimit-Reset": str(decision.retry_after_s),
                         "RateLimit-Policy": rate.policy},
                retry_after_seconds=decision.retry_after_s, limit=rate.limit, window_seconds=rate.window_s,
            )

    def spend_leased(self, principal: Principal, cls: str) -> bool:
        """The common case, inline: a known caller with hits left in its lease, same window; counts the request.
        False: nothing was counted, ``admit`` decides."""
        key, rate = self.bucket_key(principal, cls)
        entry = self._buckets.get(key)
        if entry is not None:
            bucket = entry[0]
            if bucket.lease > 0 and self._now() // rate.window_s == bucket.window:
                count(bucket)
                return True
        return False

    # -- decisions --------------------------------------------------------------------------------------------

    def bucket_key(self, principal: Principal, cls: str) -> tuple[str, Rate]:
        key_rate, user_rate = self.rates[cls]
        if isinstance(principal, UserPrincipal):
            return f"{cls}:u:{principal.account_id}:{principal.user_id}", user_rate
        return f"{cls}:k:{principal.key_id}", key_rate

    async def admit(self, principal: Principal, cls: str) -> tuple[Rate, Decision]:
        """Decide for one request; spends one hit of the lease when admitted. Asks PostgreSQL only for leases."""
        key, rate = self.bucket_key(principal, cls)
        entry = self._buckets.get(key)
        bucket = entry[0] if entry is not None else self._new(key, rate)
        for _ in range(_ASK_TRIES):
            now = self._now()
            back = roll(bucket, rate, now)
            if back is not None:
                self._give_back(key, *back)
            decision = decide(bucket, rate, now)
            if not decision.ask:
                if decision.allowed:
                    count(bucket)
                return rate, decision
            await self._ask(key, bucket, rate)
        # every fresh lease went to concurrent requests of the same caller: refuse this one for a moment
        return rate, decision._replace(ask=False, retry_after_s=1)

    def _new(self, key: str, rate: Rate) -> Bucket:
        if len(self._buckets) >= MAX_BUCKETS:
            for old in list(islice(self._buckets, MAX_BUCKETS // 10)):
                gone, gone_rate = self._buckets.pop(old)
                self._leased.discard(old)
                if gone.lease:
                    self._give_back(old, gone.window * gone_rate.window_s, release(gone))
        bucket = Bucket()
        self._buckets[key] = (bucket, rate)
        return bucket

    def _give_back(self, key: str, window_start_s: int, hits: int) -> None:
        if hits:
            self._returns[(key, window_start_s)] = self._returns.get((key, window_start_s), 0) + hits

    # -- leases ------------------------------------------------------------------------------------------------

    async def _ask(self, key: str, bucket: Bucket, rate: Rate) -> None:
        task = self._asking.get(key)
        if task is None:  # one ask per bucket at a time; concurrent requests wait for its answer
            task = asyncio.get_running_loop().create_task(self._grant(key, bucket, rate))
            self._asking[key] = task
            task.add_done_callback(lambda _t: self._asking.pop(key, None))
        await asyncio.shield(task)

    async def _grant(self, key: str, bucket: Bucket, rate: Rate) -> None:
        mono = time.monotonic()
        want = lease_size(rate, bucket, mono, self.hold_s)
        now = self._now()
        start = bucket.window * rate.window_s
        try:
            assert self._sessionmaker is not None, "the limiter starts with the app"
            async with self._sessionmaker() as session, session.begin():
                answer = await store.grant(session, bucket=key, window_start_s=start, width_s=rate.window_s,
                                           limit=rate.limit, weight=prev_weight(bucket, rate, now), want=want,
                                           nodes=self.nodes)
        except Exception:
            # availability first: the database is only where processes share counts; decide locally meanwhile
            self._warn("rate-limit lease could not be asked for; admitting locally")
            answer = store.Grant(lease=want, hits=bucket.shared + want, prev_hits=bucket.prev)
        bucket.used, bucket.asked_at = 0, mono
        if bucket.window * rate.window_s != start:  # the window closed while we asked
            self._give_back(key, start, answer.lease)
            return
        granted(bucket, rate, self._now(), lease=answer.lease, shared=answer.hits,
                prev=answer.prev_hits, hold_s=self.hold_s)
        if bucket.lease:
            self._leased.add(key)

    async def tick(self, *, everything: bool = False) -> None:
        """Give back leases of callers idle for IDLE_TICKS ticks (all, when stopping); write the heartbeat."""
        for key in list(self._leased):
            entry = self._buckets.get(key)
            if entry is None:
                self._leased.discard(key)
                continue
            bucket, rate = entry
            bucket.idle_ticks = 0 if bucket.touched else bucket.idle_ticks + 1
            bucket.touched = False
            if bucket.lease == 0:
                self._leased.discard(key)
            elif everything or bucket.idle_ticks >= IDLE_TICKS:
                self._give_back(key, bucket.window * rate.window_s, release(bucket))
                self._leased.discard(key)
        returns, self._returns = self._returns, {}
        if self._sessionmaker is None or (not returns and not self._buckets):
            return
        try:
            async with self._sessionmaker() as session, session.begin():
                await store.give_back(session, [store.Return(k, s, h) for (k, s), h in sorted(returns.items())])
                self.nodes = await store.heartbeat(session, node_id=self.node_id, alive_s=self.alive_s)
        except Exception:
            for slot, hits in returns.items():
                self._returns[slot] = self._returns.get(slot, 0) + hits
            raise

    async def _purge(self) -> None:
        assert self._sessionmaker is not None
        async with self._sessionmaker() as session, session.begin():
            await store.purge(session, now_s=int(self._now()))

    def _warn(self, message: str) -> None:
        if time.monotonic() - self._warned_at > WARN_EVERY_S:
            self._warned_at = time.monotonic()
            log.warning(message, exc_info=True)
