"""When jobs are due: pure functions of a schedule and a time (no database, no clock of their own)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class Schedule(Protocol):
    """Slots are points in time; a job's run for a slot happens once, at or after the slot."""

    def latest(self, now: datetime) -> datetime:
        """The most recent slot at or before ``now``."""
        ...

    def following(self, now: datetime) -> datetime:
        """The first slot after ``now``."""
        ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class Every:
    """Every ``seconds``, aligned to the epoch plus ``offset_seconds`` (hourly runs fall on the hour)."""

    seconds: int
    offset_seconds: int = 0

    def __post_init__(self) -> None:
        assert self.seconds > 0 and 0 <= self.offset_seconds < self.seconds

    def latest(self, now: datetime) -> datetime:
        elapsed = (now - EPOCH).total_seconds() - self.offset_seconds
        return EPOCH + timedelta(seconds=(elapsed // self.seconds) * self.seconds + self.offset_seconds)

    def following(self, now: datetime) -> datetime:
        return self.latest(now) + timedelta(seconds=self.seconds)

    def describe(self) -> str:
        at = self.offset_seconds
        if self.seconds == 86_400:
            return f"daily at {at // 3600:02d}:{at % 3600 // 60:02d} UTC"
        if self.seconds == 3600:
            return f"hourly at :{at // 60:02d}"
        for size, unit in ((86_400, "days"), (3600, "hours"), (60, "minutes")):
            if self.seconds % size == 0:
                every = f"every {self.seconds // size} {unit}"
                break
        else:
            every = f"every {self.seconds} seconds"
        return every + (f" (+{at} s)" if at else "")


@dataclass(frozen=True)
class Monthly:
    """On ``day`` of each month at ``hour``:00 UTC (statement close on the 1st closes the month before)."""

    day: int = 1
    hour: int = 0

    def __post_init__(self) -> None:
        assert 1 <= self.day <= 28 and 0 <= self.hour <= 23

    def _at(self, year: int, month: int) -> datetime:
        return datetime(year, month, self.day, self.hour, tzinfo=UTC)

    def latest(self, now: datetime) -> datetime:
        now = now.astimezone(UTC)
        slot = self._at(now.year, now.month)
        if slot <= now:
            return slot
        year, month = (now.year - 1, 12) if now.month == 1 else (now.year, now.month - 1)
        return self._at(year, month)

    def following(self, now: datetime) -> datetime:
        last = self.latest(now)
        year, month = (last.year + 1, 1) if last.month == 12 else (last.year, last.month + 1)
        return self._at(year, month)

    def describe(self) -> str:
        return f"monthly on day {self.day} at {self.hour:02d}:00 UTC"


def previous_period(slot_at: datetime) -> str:
    """The ``YYYY-MM`` period that ended before the month of ``slot_at``."""
    year, month = (slot_at.year - 1, 12) if slot_at.month == 1 else (slot_at.year, slot_at.month - 1)
    return f"{year:04d}-{month:02d}"


def retry_delay(*, attempt: int, base_seconds: int, cap_seconds: int = 3600) -> timedelta:
    """Exponential backoff after failed attempt ``attempt`` (1-based): base, 2*base, 4*base ... capped."""
    return timedelta(seconds=min(cap_seconds, base_seconds * 2 ** max(0, attempt - 1)))
