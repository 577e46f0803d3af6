"""Rate-limit arithmetic over plain values: rates, the sliding-window estimate, leases. No I/O.

Counts are kept per bucket (a route class and a caller) in fixed windows aligned to the epoch; the limit
applies to the sliding estimate ``prev * (1 - elapsed) + current``. The shared counter in PostgreSQL holds
every hit *handed out* in a window: a process asks it for a **lease** of a few hits at a time (granted
atomically, never past the limit), admits that many requests from memory, and asks again when the lease is
spent. Unused leases go back when the caller goes idle or the window closes. So all processes together
never exceed the limit, and most requests never wait for the database.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import NamedTuple

WINDOW_SECONDS = {"second": 1, "minute": 60, "hour": 3600}
MAX_LIMIT = 1_000_000_000
LEASE_FRACTION = 10  # a lease is at most a tenth of the limit, so no single process holds the quota
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

    @property
    def max_lease(self) -> int:
        return max(1, self.limit // LEASE_FRACTION)


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
    """One caller's state in one process (mutable; only touched on the event loop)."""

    window: int = -1  # index of the current window (epoch seconds // window_s)
    prev: int = 0  # hits of the previous window, every process (as last seen)
    shared: int = 0  # hits handed out in this window, every process, leases included (as last seen)
    lease: int = 0  # hits this process may still admit in this window without asking
    denied_until: float = 0.0  # the last ask found the window full: refuse locally until then
    used: int = 0  # hits admitted since the last ask (sizes the next lease)
    asked_at: float = 0.0  # monotonic time of the last ask (0: never asked)
    touched: bool = False  # admitted a hit since the last idle check
    idle_ticks: int = 0  # idle checks in a row without a hit


class Decision(NamedTuple):
    """What to do with one request: admit it, refuse it, or ask for a lease first."""

    allowed: bool
    ask: bool
    remaining: int
    reset_s: int
    retry_after_s: int


def _elapsed(bucket: Bucket, rate: Rate, now: float) -> float:
    return min(1.0, max(0.0, now / rate.window_s - bucket.window))


def prev_weight(bucket: Bucket, rate: Rate, now: float) -> float:
    """How much the previous window still counts now (1 at the start of this window, 0 at its end)."""
    return 1.0 - _elapsed(bucket, rate, now)


def estimate(bucket: Bucket, rate: Rate, now: float) -> float:
    """Hits in the sliding window ending now as far as this process knows (its unspent lease not counted)."""
    return bucket.prev * prev_weight(bucket, rate, now) + bucket.shared - bucket.lease


def roll(bucket: Bucket, rate: Rate, now: float) -> tuple[int, int] | None:
    """Move to the window containing ``now``; returns (closed window start, unused lease to give back)."""
    window = int(now // rate.window_s)
    if window <= bucket.window:
        return None
    back = (bucket.window * rate.window_s, bucket.lease) if bucket.lease and bucket.window >= 0 else None
    bucket.prev = bucket.shared - bucket.lease if window == bucket.window + 1 else 0
    bucket.window, bucket.shared, bucket.lease, bucket.denied_until = window, 0, 0, 0.0
    return back


def decide(bucket: Bucket, rate: Rate, now: float) -> Decision:
    """Admit from the lease, refuse while the window is known to be full, else ask for a lease."""
    reset = max(1, math.ceil((bucket.window + 1) * rate.window_s - now))
    if bucket.lease > 0:
        remaining = max(0, math.floor(rate.limit - estimate(bucket, rate, now)) - 1)
        return Decision(True, False, remaining, reset, 0)
    if now < bucket.denied_until:
        return Decision(False, False, 0, reset, retry_after(bucket, rate, now))
    return Decision(False, True, 0, reset, 0)


def count(bucket: Bucket) -> None:
    """Spend one hit of the lease on an admitted request."""
    bucket.lease -= 1
    bucket.used += 1
    bucket.touched = True


def release(bucket: Bucket) -> int:
    """Give the unspent lease back (the caller went idle); returns how many hits to return."""
    back, bucket.lease = bucket.lease, 0
    bucket.shared -= back
    return back


def granted(bucket: Bucket, rate: Rate, now: float, *, lease: int, shared: int, prev: int, hold_s: float) -> None:
    """Take in a grant: the lease and what every process has been handed in this window and the last."""
    bucket.lease += lease
    bucket.shared = max(bucket.shared, shared)  # totals seen by concurrent asks may arrive out of order
    bucket.prev = max(bucket.prev, prev)
    if lease == 0:
        bucket.denied_until = now + min(hold_s, retry_after(bucket, rate, now))


def retry_after(bucket: Bucket, rate: Rate, now: float) -> int:
    """Whole seconds until one more request fits, if nobody else calls meanwhile (at least 1)."""
    width, limit = rate.window_s, rate.limit
    elapsed = _elapsed(bucket, rate, now)
    current = bucket.shared
    if current + 1 <= limit and bucket.prev > 0:
        # prev * (1 - f) + current + 1 <= limit once f reaches this point of the current window
        at = 1.0 - (limit - current - 1) / bucket.prev
        return max(1, math.ceil((at - elapsed) * width))
    # the current window alone is full: wait into the next one, where it weighs as prev
    at_next = max(0.0, 1.0 - (limit - 1) / current) if current else 0.0
    return max(1, math.ceil((1.0 - elapsed + at_next) * width))


def lease_size(rate: Rate, bucket: Bucket, mono_now: float, hold_s: float) -> int:
    """How many hits to ask for, within 1..max_lease: the limit's own pace over one sync interval (so a
    caller well within its limit rarely asks), or more when this caller went faster lately (two intervals
    of its recent pace)."""
    floor = math.ceil(rate.limit / rate.window_s * hold_s)
    if bucket.asked_at:
        pace_per_s = bucket.used / max(mono_now - bucket.asked_at, 1e-3)
        floor = max(floor, math.ceil(pace_per_s * 2 * hold_s))
    return max(1, min(rate.max_lease, floor))
