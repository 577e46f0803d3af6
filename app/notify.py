"""Cross-process invalidation through PostgreSQL LISTEN/NOTIFY.

Writers call ``notify`` inside their transaction (delivered only if it commits); every app process
runs one ``Listener`` that dispatches payloads ``<topic>:<value>`` to the callbacks registered for
the topic. The listener reconnects after a lost connection and then tells every topic to flush,
since notifications sent while it was away are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

CHANNEL = "commerce_invalidate"
FLUSH = "*"

log = logging.getLogger("commerce.notify")

Callback = Callable[[str], None]
_PENDING = "commerce_notify_pending"
# Listeners running in this process: they also get this process's own notifications synchronously at commit,
# so a request that follows a committed change never sees a stale cache entry in the process that made it.
_LOCAL: set[Listener] = set()


async def notify(session: AsyncSession, topic: str, value: str) -> None:
    """Queue an invalidation that every process receives when the caller's transaction commits."""
    payload = f"{topic}:{value}"
    await session.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload})
    sync = session.sync_session
    if _PENDING not in sync.info:
        sync.info[_PENDING] = []
        event.listen(sync, "after_commit", _dispatch_local)
        event.listen(sync, "after_rollback", _drop_pending)
    sync.info[_PENDING].append(payload)


async def notify_many(session: AsyncSession, topic: str, values: list[str]) -> None:
    """``notify`` for many values in one statement (bulk writers such as usage ingestion)."""
    if not values:
        return
    payloads = payloads_of(topic, values)
    await session.execute(text("SELECT pg_notify(:channel, p) FROM unnest(CAST(:payloads AS text[])) AS p"),
                          {"channel": CHANNEL, "payloads": payloads})
    sent(session, payloads)


def payloads_of(topic: str, values: list[str]) -> list[str]:
    """The notices ``notify_many`` sends on CHANNEL for these values, for a statement sending them itself
    (``SELECT pg_notify(CHANNEL, p) FROM unnest(:payloads) AS p``); then ``sent`` (in a session) or
    ``dispatch_local`` (after a commit outside one)."""
    return [f"{topic}:{v}" for v in dict.fromkeys(values)]


def sent(session: AsyncSession, payloads: list[str]) -> None:
    """Record payloads the caller's statement notified: this process's listeners get them when it commits."""
    sync = session.sync_session
    if _PENDING not in sync.info:
        sync.info[_PENDING] = []
        event.listen(sync, "after_commit", _dispatch_local)
        event.listen(sync, "after_rollback", _drop_pending)
    sync.info[_PENDING].extend(payloads)


def dispatch_local(payloads: list[str]) -> None:
    """Tell this process's listeners at once (after a commit that sent these notices outside a session)."""
    for listener in list(_LOCAL):
        for payload in payloads:
            listener._dispatch(payload)


def _dispatch_local(sync: Session) -> None:
    payloads: list[str] = sync.info.get(_PENDING, [])
    sync.info[_PENDING] = []
    for listener in list(_LOCAL):
        for payload in payloads:
            listener._dispatch(payload)


def _drop_pending(sync: Session) -> None:
    sync.info[_PENDING] = []


class Listener:
    """One dedicated connection per process that LISTENs and fans out to callbacks."""

    def __init__(self, dsn: str, *, retry_seconds: float = 1.0) -> None:
        self._dsn = dsn
        self._retry_seconds = retry_seconds
        self._callbacks: dict[str, list[Callback]] = defaultdict(list)
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    def subscribe(self, topic: str, callback: Callback) -> None:
        self._callbacks[topic].append(callback)

    async def start(self) -> None:
        _LOCAL.add(self)
        self._task = asyncio.create_task(self._run(), name="notify-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout=10)

    async def stop(self) -> None:
        _LOCAL.discard(self)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _dispatch(self, payload: str) -> None:
        topic, _, value = payload.partition(":")
        for callback in self._callbacks.get(topic, ()):
            try:
                callback(value)
            except Exception:
                log.exception("invalidation callback failed for %s", topic)

    def _flush_all(self) -> None:
        for topic in list(self._callbacks):
            self._dispatch(f"{topic}:{FLUSH}")

    async def _run(self) -> None:
        first = True
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, lambda _c, _pid, _ch, payload: self._dispatch(payload))
                if not first:
                    self._flush_all()
                first = False
                self._connected.set()
                await lost.wait()
                log.warning("notification connection lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("notification listener cannot connect; retrying", exc_info=True)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)
            self._flush_all()
            await asyncio.sleep(self._retry_seconds)


PROBE = "probe"


class LagProbe:
    """Measures NOTIFY delivery lag: every ``every_seconds`` it sends its own probe through PostgreSQL and
    times the probe's arrival at this process's listener (other processes ignore probes not theirs)."""

    def __init__(self, listener: Listener, sessionmaker: async_sessionmaker[AsyncSession], *,
                 observe: Callable[[float], None], every_seconds: float = 15.0) -> None:
        self._sessionmaker, self._observe, self._every = sessionmaker, observe, every_seconds
        self._token = f"{os.getpid()}.{id(self)}"
        self._task: asyncio.Task[None] | None = None
        listener.subscribe(PROBE, self._arrived)

    def _arrived(self, value: str) -> None:
        token, _, sent = value.partition("@")
        if token == self._token:
            self._observe(max(0.0, time.time() - float(sent)))

    async def send(self) -> None:
        """One probe (outside ``notify``: a probe must travel through the server, not the local shortcut)."""
        async with self._sessionmaker() as session, session.begin():
            await session.execute(text("SELECT pg_notify(:channel, :payload)"),
                                  {"channel": CHANNEL, "payload": f"{PROBE}:{self._token}@{time.time():.6f}"})

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="notify-lag-probe")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.send()
            except Exception:
                log.warning("notify lag probe failed; retrying", exc_info=True)
            await asyncio.sleep(self._every)
