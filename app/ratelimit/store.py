"""The shared side of rate limiting: one statement adds a batch of local hits and reads back the totals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


class Hits(NamedTuple):
    """Local hits of one bucket in one window, to be added to the shared counter."""

    bucket: str
    window_start_s: int
    hits: int
    width_s: int


class Totals(NamedTuple):
    """Every process's hits of one bucket in one window (after ours were added) and in the window before."""

    bucket: str
    window_start_s: int
    hits: int
    prev_hits: int


# Rows go in sorted by key so two processes flushing the same buckets lock them in the same order (no deadlock).
# The node heartbeat rides along: the number of processes writing lately sets each one's local share.
_SYNC = text("""
WITH node AS (
    INSERT INTO rate_limit_nodes (node_id, seen_at) VALUES (:node, now())
    ON CONFLICT (node_id) DO UPDATE SET seen_at = EXCLUDED.seen_at
), q AS (
    SELECT * FROM unnest(CAST(:buckets AS text[]), CAST(:starts AS bigint[]), CAST(:hits AS bigint[]),
                         CAST(:widths AS bigint[])) AS q(bucket, window_start_s, hits, width_s)
), up AS (
    INSERT INTO rate_limit_counters AS c (bucket, window_start_s, hits, expires_at_s)
    SELECT bucket, window_start_s, hits, window_start_s + 3 * width_s FROM q ORDER BY bucket, window_start_s
    ON CONFLICT (bucket, window_start_s) DO UPDATE SET hits = c.hits + EXCLUDED.hits
    RETURNING c.bucket, c.window_start_s, c.hits
)
SELECT up.bucket, up.window_start_s, up.hits, coalesce(p.hits, 0) AS prev_hits,
       (SELECT count(*) FROM rate_limit_nodes n
         WHERE n.node_id <> :node AND n.seen_at > now() - make_interval(secs => :alive_s)) + 1 AS nodes
  FROM up
  JOIN q ON q.bucket = up.bucket AND q.window_start_s = up.window_start_s
  LEFT JOIN rate_limit_counters p ON p.bucket = q.bucket AND p.window_start_s = q.window_start_s - q.width_s
""")

_PURGE_COUNTERS = text("DELETE FROM rate_limit_counters WHERE expires_at_s < :now_s")
_PURGE_NODES = text("DELETE FROM rate_limit_nodes WHERE seen_at < now() - interval '1 hour'")


async def add_hits(
    session: AsyncSession, rows: Sequence[Hits], *, node_id: str, alive_s: float,
) -> tuple[list[Totals], int]:
    """Add the hits (one row per bucket and window) and return the totals and the live process count."""
    ordered = sorted(rows)
    result = await session.execute(_SYNC, {
        "node": node_id, "alive_s": alive_s, "buckets": [r.bucket for r in ordered],
        "starts": [r.window_start_s for r in ordered], "hits": [r.hits for r in ordered],
        "widths": [r.width_s for r in ordered],
    })
    totals, nodes = [], 1
    for bucket, start, hits, prev_hits, live in result.all():
        totals.append(Totals(bucket, int(start), int(hits), int(prev_hits)))
        nodes = int(live)
    return totals, nodes


async def purge(session: AsyncSession, *, now_s: int) -> None:
    """Forget windows nobody needs any more (a window is read until the end of the one after it)."""
    await session.execute(_PURGE_COUNTERS, {"now_s": now_s})
    await session.execute(_PURGE_NODES)
