"""Names of monthly partitions (the kernel's part: migrations and the schema tools must know them apart)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

# Tables partitioned by month: their children are made by jobs, so schema comparisons look at the parents only.
PARTITIONED = ("ent_usage_events",)
_MONTHLY = re.compile(r"^(?P<parent>[a-z_]+)_y(?P<year>\d{4})m(?P<month>\d{2})$")


def monthly_name(parent: str, month: datetime) -> str:
    return f"{parent}_y{month.year:04d}m{month.month:02d}"


def default_name(parent: str) -> str:
    return f"{parent}_default"


def month_of(parent: str, name: str) -> datetime | None:
    """The month a partition of ``parent`` holds, from its name (None for the default and anything else)."""
    m = _MONTHLY.match(name)
    if m is None or m.group("parent") != parent:
        return None
    return datetime(int(m.group("year")), int(m.group("month")), 1, tzinfo=UTC)


def is_partition(name: str) -> bool:
    """A child table of one of the partitioned tables."""
    return any(name == default_name(p) or month_of(p, name) is not None for p in PARTITIONED)
