"""The usage reporter: ``record`` appends to a bounded in-memory buffer and returns; a background task sends
batches (by size or time), retrying what failed. Each event carries an id, so a batch sent twice (a retry after
a lost answer, a restart of the service) is counted once: delivery is at least once, counting exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from commerce_sdk import errors
from commerce_sdk._http import AsyncHTTP
from commerce_sdk.models import UsageResult

log = logging.getLogger("commerce_sdk.usage")
MAX_BATCH = 1000  # the API's limit per request


@dataclass
class UsagePolicy:
    batch_size: int = 500
    flush_interval: float = 1.0
    max_buffer: int = 100_000  # events held (new and awaiting retry); beyond this new events are dropped
    max_backoff: float = 30.0


class UsageReporter:
    """Buffers usage events and flushes them in the background; see the module docstring."""

    def __init__(self, http: AsyncHTTP, policy: UsagePolicy, *,
                 on_record: Callable[[str, str, int], None] | None = None,
                 on_drop: Callable[[list[dict[str, Any]], Exception | None], None] | None = None) -> None:
        assert 1 <= policy.batch_size <= MAX_BATCH and policy.flush_interval > 0 and policy.max_buffer >= 1
        self._http = http
        self.policy = policy
        self._buffer: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()  # record() may run on any thread; the flusher on the loop's
        self._on_record = on_record
        self._on_drop = on_drop
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._in_flight = 0
        self._flushing: asyncio.Lock | None = None
        self.sent = 0
        self.dropped = 0
        self.failures = 0

    def __len__(self) -> int:
        """Events not yet accepted by the service: buffered, or in a batch being sent."""
        return len(self._buffer) + self._in_flight

    def record(self, *, user: str, feature: str, quantity: int = 1, event_id: str | None = None,
               occurred_at: datetime | None = None, kind: Literal["usage", "attempt"] = "usage",
               properties: dict[str, str | int | bool | None] | None = None) -> str:
        """Queue one event (never blocks on the network); returns its event id."""
        if quantity < 1:
            raise ValueError("quantity must be at least 1")
        eid = event_id or f"sdk-{uuid.uuid4().hex}"
        at = (occurred_at or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")
        event: dict[str, Any] = {"event_id": eid, "user": user, "feature": feature, "quantity": quantity,
                                 "occurred_at": at, "kind": kind}
        if properties:
            event["properties"] = properties
        due = False
        with self._lock:
            if len(self._buffer) >= self.policy.max_buffer:
                self.dropped += 1
                full = True
            else:
                self._buffer.append(event)
                full = False
                due = len(self._buffer) >= self.policy.batch_size
        if full:
            if self._on_drop is not None:
                self._on_drop([event], None)
            return eid
        if kind == "usage" and self._on_record is not None:
            self._on_record(user, feature, quantity)
        if due:
            self._poke()
        return eid

    def _poke(self) -> None:
        if self._loop is None or self._wake is None:
            return
        try:
            if self._loop is asyncio.get_running_loop():
                self._wake.set()
                return
        except RuntimeError:
            pass
        self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        """The background flusher (one per client)."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        backoff = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(backoff, self.policy.flush_interval))
            self._wake.clear()
            ok = await self.flush(max_batches=1_000)
            backoff = 0.0 if ok else min(self.policy.max_backoff, max(0.5, backoff * 2)) * (
                0.5 + random.random() / 2)  # noqa: S311

    async def flush(self, *, max_batches: int = 1_000_000) -> bool:
        """Send what is buffered, batch by batch; False when the service could not take it (kept for later)."""
        if self._flushing is None:
            self._flushing = asyncio.Lock()
        async with self._flushing:  # the background flusher and close() never send the same events at once
            return await self._flush(max_batches)

    async def _flush(self, max_batches: int) -> bool:
        for _ in range(max_batches):
            with self._lock:
                n = min(len(self._buffer), self.policy.batch_size)
                batch = [self._buffer.popleft() for _ in range(n)]
                self._in_flight = n
            if not batch:
                return True
            try:
                sent = await self._send(batch)
            except BaseException:
                sent = False
                raise
            finally:
                with self._lock:
                    if not sent:
                        self._buffer.extendleft(reversed(batch))  # first in line again, order kept
                    self._in_flight = 0
            if not sent:
                return False
        return True

    async def _send(self, batch: list[dict[str, Any]]) -> bool:
        try:
            result = await self._http.request("POST", "/v1/usage", json={"events": batch}, into=UsageResult)
        except (errors.APIConnectionError, errors.ServerError, errors.RateLimited) as exc:
            self.failures += 1
            log.warning("usage batch of %d not sent (%s); kept for retry", len(batch), exc)
            return False
        except errors.APIError as exc:
            if exc.status in (401, 403):  # credentials: keep the events, someone must fix the key
                self.failures += 1
                log.error("usage batch refused (%s); kept for retry", exc)
                return False
            if len(batch) > 1:  # one bad event must not sink the others: halve until it is alone
                mid = len(batch) // 2
                return await self._send(batch[:mid]) and await self._send(batch[mid:])
            self.dropped += 1
            log.error("usage event %s dropped: %s", batch[0]["event_id"], exc)
            if self._on_drop is not None:
                self._on_drop(batch, exc)
            return True
        self.sent += result.accepted + result.duplicates
        return True
