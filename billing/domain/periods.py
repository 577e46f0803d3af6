"""Billing periods anchored on a day of the month (1-28), in UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

Interval = Literal["month", "year"]


def _at(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def _add_months(year: int, month: int, n: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + n
    return index // 12, index % 12 + 1


def period_of(at: datetime, *, interval: Interval = "month", anchor_day: int = 1, anchor_month: int = 1) -> tuple[
        datetime, datetime]:
    """The period [start, end) containing ``at``: months start on ``anchor_day``; years on it in ``anchor_month``."""
    assert 1 <= anchor_day <= 28 and 1 <= anchor_month <= 12
    assert at.tzinfo is not None
    at = at.astimezone(UTC)
    if interval == "month":
        year, month = at.year, at.month
        if at < _at(year, month, anchor_day):
            year, month = _add_months(year, month, -1)
        start = _at(year, month, anchor_day)
        end = _at(*_add_months(year, month, 1), anchor_day)
        return start, end
    year = at.year if at >= _at(at.year, anchor_month, anchor_day) else at.year - 1
    return _at(year, anchor_month, anchor_day), _at(year + 1, anchor_month, anchor_day)


def period_key(start: datetime) -> str:
    """A stable label for a monthly period, e.g. ``2026-11`` (the month it starts in)."""
    return f"{start.year:04d}-{start.month:02d}"
