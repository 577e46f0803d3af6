"""The shared side of rate limiting: atomic lease grants, batched returns, process heartbeats."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


class Grant(NamedTuple):
    """A lease handed out, with every process's hits in this window (after it) and in the window before."""

    lease: int
    hits: int
    prev_hits: int


class Return(NamedTuple):
    """Unspent hits of a lease given back to the window they were taken from."""

    bucket: str
    window_start_s: int
    hits: int


# One statement, atomic under the row lock: hand out at most ``want`` hits, never past the limit minus the
# previous window's weighted hits (``cap``), nor more than this process's share of what is left. ``last_grant``
# carries the amount back (RETURNING sees only the new row).
_GRANT = text("""
WITH p AS (
    SELECT coalesce(prev.hits, 0) AS hits,
           FLOOR(CAST(:limit AS float8) - CAST(:weight AS float8) * coalesce(prev.hits, 0)) AS cap
      FROM (SELECT 1) AS one
      LEFT JOIN rate_limit_counters prev
        ON prev.bucket = :bucket AND prev.window_start_s = CAST(:start AS bigint) - CAST(:width AS bigint)
), g AS (
    SELECT LEAST(CAST(:want AS bigint), GREATEST(0, CEIL(p.cap / CAST(:nodes AS float8))))::bigint AS first FROM p
)
INSERT INTO rate_limit_counters AS c (bucket, window_start_s, hits, last_grant, expires_at_s)
SELECT :bucket, CAST(:start AS bigint), g.first, g.first, CAST(:start AS bigint) + 3 * CAST(:width AS bigint) FROM g
ON CONFLICT (bucket, window_start_s) DO UPDATE
   SET hits = c.hits + LEAST(CAST(:want AS bigint), GREATEST(0, CEIL(((SELECT cap FROM p) - c.hits)
                                                                      / CAST(:nodes AS float8))))::bigint,
       last_grant = LEAST(CAST(:want AS bigint), GREATEST(0, CEIL(((SELECT cap FROM p) - c.hits)
                                                                   / CAST(:nodes AS float8))))::bigint
RETURNING c.last_grant, c.hits, (SELECT hits FROM p)
""")

# Rows are locked in key order so two processes returning overlapping leases cannot deadlock.
_RETURN = text("""
WITH r AS (
    SELECT * FROM unnest(CAST(:buckets AS text[]), CAST(:starts AS bigint[]), CAST(:hits AS bigint[]))
        AS r(bucket, window_start_s, back)
), locked AS (
    SELECT c.bucket, c.window_start_s FROM rate_limit_counters c
      JOIN r ON r.bucket = c.bucket AND r.window_start_s = c.window_start_s
     ORDER BY c.bucket, c.window_start_s FOR UPDATE OF c
)
UPDATE rate_limit_counters c SET hits = GREATEST(0, c.hits - r.back)
  FROM r JOIN locked ON locked.bucket = r.bucket AND locked.window_start_s = r.window_start_s
 WHERE c.bucket = r.bucket AND c.window_start_s = r.window_start_s
""")

_HEARTBEAT = text("""
WITH beat AS (
    INSERT INTO rate_limit_nodes (node_id, seen_at) VALUES (:node, now())
    ON CONFLICT (node_id) DO UPDATE SET seen_at = EXCLUDED.seen_at
)
SELECT count(*) + 1 FROM rate_limit_nodes WHERE node_id <> :node AND seen_at > now() - make_interval(secs => :alive_s)
""")

_PURGE_COUNTERS = text("DELETE FROM rate_limit_counters WHERE expires_at_s < :now_s")
_PURGE_NODES = text("DELETE FROM rate_limit_nodes WHERE seen_at < now() - interval '1 hour'")


async def grant(
    session: AsyncSession, *, bucket: str, window_start_s: int, width_s: int, limit: int, weight: float, want: int,
    nodes: int,
) -> Grant:
    """Hand out up to ``want`` hits of this bucket's window (0 when it is full)."""
    row = (await session.execute(_GRANT, {
        "bucket": bucket, "start": window_start_s, "width": width_s, "limit": float(limit), "weight": weight,
        "want": want, "nodes": max(1, nodes),
    })).one()
    return Grant(lease=int(row[0]), hits=int(row[1]), prev_hits=int(row[2]))


async def give_back(session: AsyncSession, returns: Sequence[Return]) -> None:
    """Return unspent leases in one statement."""
    if returns:
        await session.execute(_RETURN, {"buckets": [r.bucket for r in returns],
                                        "starts": [r.window_start_s for r in returns],
                                        "hits": [r.hits for r in returns]})


async def heartbeat(session: AsyncSession, *, node_id: str, alive_s: float) -> int:
    """Mark this process alive; returns how many processes asked for leases lately (itself included)."""
    return int((await session.execute(_HEARTBEAT, {"node": node_id, "alive_s": alive_s})).scalar_one())


async def purge(session: AsyncSession, *, now_s: int) -> None:
    """Forget windows nobody needs any more (a window is read until the end of the one after it)."""
    await session.execute(_PURGE_COUNTERS, {"now_s": now_s})
    await session.execute(_PURGE_NODES)
