"""Rate-limit arithmetic over plain values: rates, sliding-window estimates and local budgets. No I/O.

Each process counts hits per bucket (a route class and a caller) in fixed windows aligned to the epoch and
estimates the sliding window as ``prev * (1 - elapsed) + current``. ``shared`` is the count of every
process as of the last sync with PostgreSQL; hits since then are ``inflight`` (being written) and
``pending`` (not yet written). Between syncs a process admits at most ``budget`` hits, its share of what
was left at the last sync (the remainder divided by the processes seen), so all processes together stay
within the limit although none of them asks the database per request.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import NamedTuple

WINDOW_SECONDS = {"second": 1, "minute": 60, "hour": 3600}
MAX_LIMIT = 1_000_000_000
_RATE = re.compile(r"^\s*(\d{1,10})\s*/\s*(second|minute|hour)\s*$")


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``limit`` requests per sliding window of ``window_s`` seconds."""

    limit: int
    window_s: int

    @property
    def policy(self) -> str:
        """The ``RateLimit-Policy`` value (IETF draft: quota and window in seconds)."""
        return f"{self.limit};w={self.window_s}"


def parse_rate(text: str) -> Rate:
    """``"600/minute"`` -> Rate(600, 60); units second, minute, hour; ValueError when malformed."""
    match = _RATE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a rate like 600/minute (units: second, minute, hour)")
    limit = int(match[1])
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"{text!r}: the count must be between 1 and {MAX_LIMIT}")
    return Rate(limit=limit, window_s=WINDOW_SECONDS[match[2]])


@dataclass(slots=True)
class Bucket:
    """One caller's counts in one process (mutable; only touched on the event loop)."""

    window: int = -1
    prev: int = 0
    shared: int = 0
    inflight: int = 0
    pending: int = 0
    used: int = 0
    budget: int = 0
    nodes: int = 1
    synced: bool = False


class Decision(NamedTuple):
    """What to do with one request: admit it, refuse it, or sync first (the local budget is spent)."""

    allowed: bool
    sync: bool
    remaining: int
    reset_s: int
    retry_after_s: int


def _elapsed(bucket: Bucket, rate: Rate, now: float) -> float:
    return min(1.0, max(0.0, now / rate.window_s - bucket.window))


def estimate(bucket: Bucket, rate: Rate, now: float) -> float:
    """Hits in the sliding window ending now, as far as this process knows."""
    return bucket.prev * (1.0 - _elapsed(bucket, rate, now)) + bucket.shared + bucket.inflight + bucket.pending


def _share(bucket: Bucket, rate: Rate, now: float) -> int:
    left = rate.limit - estimate(bucket, rate, now)
    return math.ceil(left / max(1, bucket.nodes)) if left > 0 else 0


def roll(bucket: Bucket, rate: Rate, now: float) -> tuple[int, int] | None:
    """Move to the window containing ``now``; returns (closed window start, its unwritten hits) to carry."""
    window = int(now // rate.window_s)
    if window <= bucket.window:
        return None
    carry = (bucket.window * rate.window_s, bucket.pending) if bucket.pending and bucket.window >= 0 else None
    adjacent = window == bucket.window + 1
    bucket.prev = bucket.shared + bucket.inflight + bucket.pending if adjacent else 0
    bucket.window, bucket.shared, bucket.inflight, bucket.pending, bucket.used = window, 0, 0, 0, 0
    bucket.budget = _share(bucket, rate, now)
    return carry


def decide(bucket: Bucket, rate: Rate, now: float) -> Decision:
    """Admit, refuse or ask for a sync; the caller rolls the bucket first and counts the hit if admitted."""
    reset = max(1, math.ceil((bucket.window + 1) * rate.window_s - now))
    left = rate.limit - estimate(bucket, rate, now)
    if left < 1:
        return Decision(False, False, 0, reset, retry_after(bucket, rate, now))
    if not bucket.synced or bucket.used >= bucket.budget:
        return Decision(False, True, int(left), reset, 0)
    return Decision(True, False, int(left - 1), reset, 0)


def count(bucket: Bucket) -> None:
    """Record one admitted hit."""
    bucket.pending += 1
    bucket.used += 1


def retry_after(bucket: Bucket, rate: Rate, now: float) -> int:
    """Whole seconds until one more request fits, if nobody else calls meanwhile (at least 1)."""
    width, limit = rate.window_s, rate.limit
    elapsed = _elapsed(bucket, rate, now)
    current = bucket.shared + bucket.inflight + bucket.pending
    if current + 1 <= limit and bucket.prev > 0:
        # prev * (1 - f) + current + 1 <= limit once f reaches this point of the current window
        at = 1.0 - (limit - current - 1) / bucket.prev
        return max(1, math.ceil((at - elapsed) * width))
    # the current window alone is full: wait into the next one, where it weighs as prev
    at_next = max(0.0, 1.0 - (limit - 1) / current) if current else 0.0
    return max(1, math.ceil((1.0 - elapsed + at_next) * width))


def take_pending(bucket: Bucket) -> int:
    """Hand the unwritten hits to a sync; they count as in flight until its answer is applied."""
    hits, bucket.pending = bucket.pending, 0
    bucket.inflight += hits
    return hits


def give_back(bucket: Bucket, window_start: int, rate: Rate, hits: int) -> tuple[int, int] | None:
    """A sync failed: its hits are unwritten again (or carried, if the window closed meanwhile)."""
    if window_start == bucket.window * rate.window_s:
        bucket.inflight = max(0, bucket.inflight - hits)
        bucket.pending += hits
        return None
    return (window_start, hits) if hits else None


def apply_sync(
    bucket: Bucket, rate: Rate, now: float, *, window_start: int, flushed: int, shared: int, prev: int, nodes: int,
) -> None:
    """Take in the totals of every process after our hits were written; recompute the local budget."""
    if window_start == (bucket.window - 1) * rate.window_s:
        bucket.prev = max(bucket.prev, shared)
        return
    if window_start != bucket.window * rate.window_s:
        return
    bucket.inflight = max(0, bucket.inflight - flushed)
    bucket.shared = max(bucket.shared, shared)  # totals only grow within a window; answers may cross
    bucket.prev = max(bucket.prev, prev)
    bucket.nodes = max(1, nodes)
    bucket.used = bucket.pending
    bucket.synced = True
    bucket.budget = _share(bucket, rate, now) + bucket.pending


def fail_open(bucket: Bucket, rate: Rate, now: float) -> None:
    """The database did not answer: go on with what this process knows, and sync again later."""
    bucket.synced = True
    bucket.budget = bucket.used + _share(bucket, rate, now)
