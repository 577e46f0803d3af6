"""Monthly partitions of the usage events table: made ahead of time, retired whole after the retention.

Dropping a month is one catalog operation instead of a delete of millions of rows, and a check or an
ingestion never touches old months. A default partition catches any event outside the prepared months
(clock skew, a long backfill setting); preparing such a month later moves its rows out of the default.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import partitions as names
from app.partitions import is_partition

PARENT = "ent_usage_events"
DEFAULT = names.default_name(PARENT)
MONTHS_AHEAD = 3

_PARTITIONS = text("""
    SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = CAST(:parent AS regclass) ORDER BY c.relname
""")


def month_start(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def add_months(month: datetime, n: int) -> datetime:
    index = month.year * 12 + month.month - 1 + n
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_name(month: datetime) -> str:
    return names.monthly_name(PARENT, month)


def partition_month(name: str) -> datetime | None:
    return names.month_of(PARENT, name)


__all__ = ["drop_expired", "ensure_partitions", "is_partition", "partitions"]


async def partitions(session: AsyncSession) -> list[str]:
    return list((await session.scalars(_PARTITIONS, {"parent": PARENT})).all())


async def ensure_partitions(session: AsyncSession, *, now: datetime, months_back: int = 1,
                            months_ahead: int = MONTHS_AHEAD) -> list[str]:
    """Create the partitions of the months around ``now`` that do not exist yet; returns their names."""
    existing = set(await partitions(session))
    created = []
    first = add_months(month_start(now), -months_back)
    for n in range(months_back + months_ahead + 1):
        month = add_months(first, n)
        name = partition_name(month)
        if name not in existing:
            await _create(session, name, month)
            created.append(name)
    return created


async def _create(session: AsyncSession, name: str, month: datetime) -> None:
    # Names and bounds come from datetimes we computed, never from input: DDL cannot take bind parameters.
    lo, hi = month.isoformat(), add_months(month, 1).isoformat()
    bounds = f"FOR VALUES FROM ('{lo}') TO ('{hi}')"
    stray = await session.scalar(text(
        f"SELECT 1 FROM {DEFAULT} WHERE occurred_at >= '{lo}' AND occurred_at < '{hi}' LIMIT 1"))  # noqa: S608
    if stray is None:
        await session.execute(text(f"CREATE TABLE {name} PARTITION OF {PARENT} {bounds}"))
        return
    # Rows of this month sit in the default partition: move them into the new table, then attach it.
    await session.execute(text(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
    where = f"occurred_at >= '{lo}' AND occurred_at < '{hi}'"
    await session.execute(text(f"INSERT INTO {name} SELECT * FROM {DEFAULT} WHERE {where}"))  # noqa: S608
    await session.execute(text(f"DELETE FROM {DEFAULT} WHERE {where}"))  # noqa: S608
    await session.execute(text(f"ALTER TABLE {PARENT} ATTACH PARTITION {name} {bounds}"))


async def drop_expired(session: AsyncSession, *, now: datetime, retention_months: int) -> list[str]:
    """Drop the months older than the retention, and their events' keys; 0 keeps everything."""
    if retention_months <= 0:
        return []
    cutoff = add_months(month_start(now), -retention_months)
    dropped = []
    for name in await partitions(session):
        month = partition_month(name)
        if month is not None and month < cutoff:
            await session.execute(text(f"DROP TABLE {name}"))
            dropped.append(name)
    await session.execute(text(f"DELETE FROM {DEFAULT} WHERE occurred_at < :cutoff"), {"cutoff": cutoff})  # noqa: S608
    await session.execute(text("DELETE FROM ent_usage_event_keys WHERE recorded_at < :cutoff"), {"cutoff": cutoff})
    return dropped
