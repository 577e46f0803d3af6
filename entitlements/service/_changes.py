"""The entitlement change log: written with every change to what checks answer, read by the change stream.

Ordering without a global lock: each row carries the id of the transaction that wrote it (``xid``). The
oldest transaction still running bounds what is final (``pg_snapshot_xmin``, the *horizon*): every row with
``xid`` below it belongs to a transaction that has ended, so it is visible now or never will be. A reader
that emitted everything below horizon H and resumes from H misses nothing, even when a transaction with a
lower id commits after one with a higher id.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app import notify

TOPIC = "ent"
MAX_CHANGES_PER_READ = 1000  # beyond this a reader is told to reset (drop everything) instead


# The change rows and their notices in one statement (one round trip per changing request).
_LOG_AND_TELL = text("""
    WITH logged AS (
        INSERT INTO ent_changes (account_id, user_id)
        SELECT a, u FROM unnest(CAST(:a AS text[]), CAST(:u AS text[])) WITH ORDINALITY AS t(a, u, i) ORDER BY i
    )
    SELECT pg_notify(:channel, p) FROM unnest(CAST(:payloads AS text[])) AS p
""")


async def record_changes(session: AsyncSession, targets: list[tuple[str, str | None]]) -> None:
    """Log (account, user or None) changes and tell every process at commit (rows and notices commit together)."""
    if not targets:
        return
    unique = list(dict.fromkeys(targets))
    payloads = notify.payloads_of(TOPIC, [a if u is None else f"{a}:{u}" for a, u in unique])
    await session.execute(_LOG_AND_TELL, {"a": [a for a, _ in unique], "u": [u for _, u in unique],
                                          "channel": notify.CHANNEL, "payloads": payloads})
    notify.sent(session, payloads)


@dataclass(frozen=True)
class Change:
    """A change as the stream shows it: external ids; ``user`` None means every user of the account."""

    account: str
    user: str | None


@dataclass(frozen=True)
class ChangeRead:
    """What one read found: the changes (None: too many, reset), the new horizon, whether later ones wait."""

    changes: list[Change] | None
    horizon: int
    now_epoch: int
    pending: bool


_HORIZON = text("SELECT (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint, "
                "CAST(extract(epoch FROM now()) AS bigint)")
_CHANGES = """
SELECT DISTINCT a.external_id, u.external_id
FROM ent_changes c
JOIN accounts a ON a.account_id = c.account_id
LEFT JOIN users u ON u.account_id = c.account_id AND u.user_id = c.user_id
WHERE c.xid >= :start AND c.xid < :horizon {filters}
LIMIT :limit
"""
_PRUNE = text("DELETE FROM ent_changes WHERE created_at < now() - make_interval(secs => :age)")
_PENDING = "SELECT EXISTS (SELECT 1 FROM ent_changes c WHERE c.xid >= :horizon {filters})"


async def current_horizon(conn: AsyncConnection) -> tuple[int, int]:
    """(horizon, database time in epoch seconds): where a new reader starts."""
    row = (await conn.execute(_HORIZON)).one()
    return int(row[0]), int(row[1])


async def read_changes(
    conn: AsyncConnection, *, start: int, account_ids: frozenset[str] | None, user_id: str | None,
) -> ChangeRead:
    """Distinct changes with ``start <= xid < horizon`` visible to the caller, in one REPEATABLE READ snapshot.

    ``account_ids`` narrows to those accounts (None: all); ``user_id`` narrows further to account-wide changes
    and that user's own (an end user's session).
    """
    filters = ""
    params: dict[str, object] = {"start": start, "limit": MAX_CHANGES_PER_READ + 1}
    if account_ids is not None:
        filters += " AND c.account_id = ANY(CAST(:accounts AS text[]))"
        params["accounts"] = sorted(account_ids)
    if user_id is not None:
        filters += " AND (c.user_id IS NULL OR c.user_id = :user_id)"
        params["user_id"] = user_id
    horizon, now_epoch = await current_horizon(conn)
    rows = (await conn.execute(text(_CHANGES.format(filters=filters)), {**params, "horizon": horizon})).all()
    pending = bool(await conn.scalar(text(_PENDING.format(filters=filters)), {**params, "horizon": horizon}))
    changes = None if len(rows) > MAX_CHANGES_PER_READ else [Change(account=a, user=u) for a, u in rows]
    return ChangeRead(changes=changes, horizon=horizon, now_epoch=now_epoch, pending=pending)


async def prune_changes(session: AsyncSession, *, older_than_seconds: int) -> int:
    """Delete log rows older than the retention (by the database clock, which also stamps cursors)."""
    result = await session.execute(_PRUNE, {"age": older_than_seconds})
    return int(getattr(result, "rowcount", 0) or 0)
