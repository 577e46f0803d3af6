"""Set-based usage writes: one statement merges a batch of events (one JSON text, or arrays): it claims the
event ids, stores the new events, adds their usage to the period counters and their attempts to the daily demand
signals, and answers which rows were not new. One round trip per batch, atomic and idempotent per event id (the
key table decides what is new). Counter and signal rows are upserted in key order, so concurrent batches touching
the same counters lock them in the same order and never deadlock.

A COPY into a temporary staging table was tried first (the issue's suggestion): for batches of 500 it cost more
than it saved (the staging table's own statement and the COPY round trip against arrays bound to one statement),
see docs/performance.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import notify
from entitlements.domain import CatalogView, counter_period, period_bounds
from entitlements.service._changes import TOPIC

# The batch as one jsonb text (a live usage batch: the driver would check each element of twelve arrays in Python)
# or as arrays (a history import, which builds its batches as columns).
_FROM_JSON = """
        SELECT (r->>0)::int AS n, r->>1 AS a, r->>2 AS e, r->>3 AS u, r->>4 AS f, r->>5 AS k, (r->>6)::bigint AS q,
               (r->>7)::timestamptz AS o, (r->>8)::timestamptz AS p, (r->>9)::timestamptz AS pe,
               NULLIF(r->10, 'null') AS pr, (r->>11)::boolean AS dn
          FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS r"""
_FROM_ARRAYS = """
        SELECT n, a, e, u, f, k, q, o, p, pe, CAST(pr AS jsonb) AS pr, dn
          FROM unnest(CAST(:n AS int[]), CAST(:a AS text[]), CAST(:e AS text[]), CAST(:u AS text[]),
                      CAST(:f AS text[]), CAST(:k AS text[]), CAST(:q AS bigint[]), CAST(:o AS timestamptz[]),
                      CAST(:p AS timestamptz[]), CAST(:pe AS timestamptz[]), CAST(:pr AS text[]),
                      CAST(:dn AS boolean[])) AS t(n, a, e, u, f, k, q, o, p, pe, pr, dn)"""
_SIGNALS = """    ), signalled AS (
        INSERT INTO ent_demand_signals (account_id, user_id, feature, day, denied_checks, attempts, last_at)
        SELECT a, u, f, CAST(o AT TIME ZONE 'UTC' AS date), CAST(sum(CASE WHEN dn THEN q ELSE 0 END) AS bigint),
               CAST(sum(CASE WHEN dn THEN 0 ELSE q END) AS bigint), :now
          FROM new WHERE k = 'attempt'
         GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (account_id, user_id, feature, day)
        DO UPDATE SET denied_checks = ent_demand_signals.denied_checks + EXCLUDED.denied_checks,
                      attempts = ent_demand_signals.attempts + EXCLUDED.attempts,
                      last_at = GREATEST(ent_demand_signals.last_at, EXCLUDED.last_at)
"""
# Order matters: PostgreSQL runs the data-modifying CTEs the main query does not read after it, in reverse order of
# their text, so the counters (locked until the commit, and what concurrent batches on the same counters queue on)
# are updated last, after the events, demand and change rows are written, not before.
_MERGE_SQL = """
    WITH s AS ({source}
    ){claim}, counted AS (
        INSERT INTO ent_usage_counters (account_id, user_id, feature, period_start, period_end, used, updated_at)
        SELECT a, u, f, p, max(pe), CAST(sum(q) AS bigint), :now FROM new WHERE k = 'usage'
         GROUP BY a, u, f, p ORDER BY a, u, f, p
        ON CONFLICT (account_id, user_id, feature, period_start)
        DO UPDATE SET used = ent_usage_counters.used + EXCLUDED.used, updated_at = EXCLUDED.updated_at
{signals}    ), stored AS (
        INSERT INTO ent_usage_events (account_id, event_id, user_id, feature, kind, quantity, occurred_at,
                                      period_start, properties, recorded_at)
        SELECT a, e, u, f, k, q, o, p, pr, :now FROM new
    ){changes}
    {answer}
"""
# The careful claim: ids seen before are skipped (``ON CONFLICT DO NOTHING``), and the answer names those rows.
_CLAIM = """, fresh AS (
        INSERT INTO ent_usage_event_keys (account_id, event_id, recorded_at)
        SELECT a, e, :now FROM s ORDER BY a, e
        ON CONFLICT (account_id, event_id) DO NOTHING
        RETURNING account_id, event_id
    ), new AS (
        SELECT s.* FROM s JOIN fresh ON fresh.account_id = s.a AND fresh.event_id = s.e
    )"""
_OLD_ROWS = """SELECT s.n, CAST(NULL AS text) AS p FROM s
     WHERE NOT EXISTS (SELECT 1 FROM fresh WHERE fresh.account_id = s.a AND fresh.event_id = s.e)"""
# The optimistic claim (the fast path, D104): every id is taken to be new and inserted plainly; an id seen before
# (or being stored by a concurrent batch) makes the whole statement fail with a unique violation, writing nothing,
# and the careful statement runs instead. Without the speculative insertion of ``ON CONFLICT`` and the join back
# to the claimed keys, PostgreSQL spends about a quarter less CPU on a batch of 500 new events.
_CLAIM_ALL = """, fresh AS (
        INSERT INTO ent_usage_event_keys (account_id, event_id, recorded_at)
        SELECT a, e, :now FROM s ORDER BY a, e
    ), new AS (
        SELECT * FROM s
    )"""
_ALL_NEW_TOLD = "SELECT CAST(NULL AS int) AS n, p FROM told"  # no row was old: the answer is the notices
# With ``changes_wide_after``: the change rows and notices of the users whose usage the batch added (the whole
# account when it names more than that many of its users), in the same statement, so nothing runs between the
# counters' row locks and the commit but the answer (concurrent batches on the same counters queue on them).
_CHANGES = """, touched AS (
        SELECT DISTINCT a, u FROM new WHERE k = 'usage'
    ), targets AS (
        SELECT a, CASE WHEN count(*) OVER (PARTITION BY a) > :wide THEN NULL ELSE u END AS u FROM touched
    ), logged AS (
        INSERT INTO ent_changes (account_id, user_id)
        SELECT DISTINCT a, u FROM targets
        RETURNING account_id, user_id
    ), told AS (
        SELECT p, pg_notify(:channel, p) FROM (
            SELECT :topic || ':' || account_id || coalesce(':' || user_id, '') AS p FROM logged) AS x
    )"""
_TOLD = "\n    UNION ALL SELECT NULL, p FROM told"
_MERGE = text(_MERGE_SQL.format(source=_FROM_ARRAYS, claim=_CLAIM, signals=_SIGNALS, changes="", answer=_OLD_ROWS))
_MERGE_JSON = text(_MERGE_SQL.format(source=_FROM_JSON, claim=_CLAIM, signals=_SIGNALS, changes="",
                                     answer=_OLD_ROWS))
_MERGE_TELLING = text(_MERGE_SQL.format(source=_FROM_JSON, claim=_CLAIM, signals=_SIGNALS, changes=_CHANGES,
                                        answer=_OLD_ROWS + _TOLD))
_MERGE_TELLING_USAGE = text(_MERGE_SQL.format(source=_FROM_JSON, claim=_CLAIM, signals="",  # no attempts
                                              changes=_CHANGES, answer=_OLD_ROWS + _TOLD))


_ENCODE = msgspec.json.Encoder().encode


# The first half of _MERGE, for a history import: claim the ids and store the new events; the import sums their
# counters and demand across all its batches and adds them once at its end (_ADD_USAGE, _ADD_DEMAND): every batch
# would otherwise update the same counter rows again.
_MERGE_EVENTS_ONLY = text("""
    WITH s AS (
        SELECT * FROM unnest(CAST(:a AS text[]), CAST(:e AS text[]), CAST(:u AS text[]), CAST(:f AS text[]),
                             CAST(:k AS text[]), CAST(:q AS bigint[]), CAST(:o AS timestamptz[]),
                             CAST(:p AS timestamptz[])) WITH ORDINALITY AS t(a, e, u, f, k, q, o, p, n)
    ), fresh AS (
        INSERT INTO ent_usage_event_keys (account_id, event_id, recorded_at)
        SELECT a, e, :now FROM s ORDER BY a, e
        ON CONFLICT (account_id, event_id) DO NOTHING
        RETURNING account_id, event_id
    ), stored AS (
        INSERT INTO ent_usage_events (account_id, event_id, user_id, feature, kind, quantity, occurred_at,
                                      period_start, properties, recorded_at)
        SELECT s.a, s.e, s.u, s.f, s.k, s.q, s.o, s.p, NULL, :now
          FROM s JOIN fresh ON fresh.account_id = s.a AND fresh.event_id = s.e
    )
    SELECT CAST(s.n - 1 AS int) FROM s
     WHERE NOT EXISTS (SELECT 1 FROM fresh WHERE fresh.account_id = s.a AND fresh.event_id = s.e)
""")
_ADD_USAGE = text("""
    INSERT INTO ent_usage_counters (account_id, user_id, feature, period_start, period_end, used, updated_at)
    SELECT a, u, f, p, pe, q, :now
      FROM unnest(CAST(:a AS text[]), CAST(:u AS text[]), CAST(:f AS text[]), CAST(:p AS timestamptz[]),
                  CAST(:pe AS timestamptz[]), CAST(:q AS bigint[])) AS t(a, u, f, p, pe, q)
     ORDER BY a, u, f, p
    ON CONFLICT (account_id, user_id, feature, period_start)
    DO UPDATE SET used = ent_usage_counters.used + EXCLUDED.used, updated_at = EXCLUDED.updated_at
""")
_ADD_DEMAND = text("""
    INSERT INTO ent_demand_signals (account_id, user_id, feature, day, denied_checks, attempts, last_at)
    SELECT a, u, f, d, dn, n, :now
      FROM unnest(CAST(:a AS text[]), CAST(:u AS text[]), CAST(:f AS text[]), CAST(:d AS date[]),
                  CAST(:dn AS bigint[]), CAST(:n AS bigint[])) AS t(a, u, f, d, dn, n)
     ORDER BY a, u, f, d
    ON CONFLICT (account_id, user_id, feature, day)
    DO UPDATE SET denied_checks = ent_demand_signals.denied_checks + EXCLUDED.denied_checks,
                  attempts = ent_demand_signals.attempts + EXCLUDED.attempts,
                  last_at = GREATEST(ent_demand_signals.last_at, EXCLUDED.last_at)
""")


# One row of a merge: index in the batch, account, event id, user (internal ids), feature, kind (usage | attempt),
# quantity, occurred_at, the counter period's start and end, properties (or None) and whether an attempt was a
# denied check. Plain tuples, built in one pass over the batch and encoded as one JSON text.
MergeRow = tuple[int, str, str, str, str, str, int, datetime, datetime, datetime, dict[str, Any] | None, bool]


class Periods:
    """Counter period bounds per (feature, UTC day): a batch computes each a few times, not once per event."""

    def __init__(self, view: CatalogView) -> None:
        self.view = view
        self._memo: dict[tuple[str, date], tuple[datetime, datetime]] = {}

    def of(self, feature: str, at: datetime) -> tuple[datetime, datetime]:
        key = (feature, at.astimezone(UTC).date())  # a period always starts on a UTC day boundary
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = period_bounds(counter_period(self.view.features[feature]), at)
        return hit


async def merge_rows(session: AsyncSession, rows: list[MergeRow], *, now: datetime,
                     changes_wide_after: int | None = None, attempts: bool = True) -> set[int]:
    """Merge ``rows`` (unique per (account, event id)); returns the indexes (``row[0]``) of those not new.

    With ``changes_wide_after`` the statement also records the entitlement changes of the usage it added (per
    user, or per account past that many users) and tells every process, as ``record_changes`` would.
    ``attempts=False`` (the batch has none) leaves the demand signals out of the statement."""
    if not rows:
        return set()
    # One JSON text, not twelve arrays: the driver would check every array element's type in Python (a quarter
    # of a batch's CPU for 500 events); PostgreSQL splits the rows again in C.
    text_rows = _ENCODE(rows).decode()
    if changes_wide_after is None:
        return {n for n, _ in (await session.execute(_MERGE_JSON, {"rows": text_rows, "now": now})).all()}
    out = (await session.execute(_MERGE_TELLING if attempts else _MERGE_TELLING_USAGE, {
        "rows": text_rows, "now": now, "wide": changes_wide_after, "channel": notify.CHANNEL, "topic": TOPIC})).all()
    notify.sent(session, sorted(p for n, p in out if n is None))
    return {n for n, _ in out if n is not None}


_NAMED = re.compile(r"(?<![:\w]):(?!:)(\w+)")


def positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """A statement written with ``:name`` parameters (as for ``text``) in asyncpg's ``$n`` form, and the names in
    the order of their numbers (``::type`` casts are left alone)."""
    names: dict[str, int] = {}

    def number(m: re.Match[str]) -> str:
        return f"${names.setdefault(m.group(1), len(names) + 1)}"

    return _NAMED.sub(number, sql), tuple(names)


_FAST_MERGE = {attempts: positional(str(statement.text))
               for attempts, statement in ((True, _MERGE_TELLING), (False, _MERGE_TELLING_USAGE))}
_FAST_MERGE_ALL_NEW = {attempts: positional(_MERGE_SQL.format(
    source=_FROM_JSON, claim=_CLAIM_ALL, signals=_SIGNALS if attempts else "", changes=_CHANGES,
    answer=_ALL_NEW_TOLD)) for attempts in (True, False)}


async def merge_fast(conn: asyncpg.Connection, rows: list[MergeRow], *, now: datetime, changes_wide_after: int,
                     attempts: bool = True) -> tuple[set[int], list[str]]:
    """``merge_rows`` with its change rows and notices, as one statement on a plain asyncpg connection outside
    any transaction (the statement is its own); returns the indexes of the rows not new and the notices sent
    (for ``notify.dispatch_local`` once it returned).

    It first tries the statement that takes every id to be new (D104); when one was not, that statement fails as a
    whole with a unique violation and the careful one runs: two statements for a batch with a replayed id, one
    for the common batch of new events."""
    values = {"rows": _ENCODE(rows).decode(), "now": now, "wide": changes_wide_after, "channel": notify.CHANNEL,
              "topic": TOPIC}
    sql, names = _FAST_MERGE_ALL_NEW[attempts]
    try:
        out = await conn.fetch(sql, *(values[n] for n in names))
    except asyncpg.UniqueViolationError:  # an id seen before: nothing was written, the careful statement sorts it
        sql, names = _FAST_MERGE[attempts]
        out = await conn.fetch(sql, *(values[n] for n in names))
    return {n for n, _ in out if n is not None}, sorted(p for n, p in out if n is None)


async def merge_columns(session: AsyncSession, columns: Mapping[str, Sequence[object]], *, now: datetime,
                        events_only: bool = False) -> set[int]:
    """``merge_events`` of events given as columns ``a e u f k q o pr dn p pe`` (unique per (a, e); ``p``/``pe``
    the counter period's bounds). ``events_only``: claim and store the events but leave their counters and demand
    to the caller (``add_usage``)."""
    if events_only:  # only what the key and event rows need
        return set((await session.scalars(_MERGE_EVENTS_ONLY, {
            **{k: columns[k] for k in ("a", "e", "u", "f", "k", "q", "o", "p")}, "now": now})).all())
    params: dict[str, object] = {**columns, "n": list(range(len(columns["a"]))), "now": now}
    return set((await session.scalars(_MERGE, params)).all())


async def add_usage(session: AsyncSession, usage: dict[tuple[str, str, str, datetime], tuple[datetime, int]],
                    demand: dict[tuple[str, str, str, date], tuple[int, int]], *, now: datetime) -> None:
    """Add summed usage ((account, user, feature, period start) -> (period end, quantity)) to the counters and
    summed tries ((account, user, feature, day) -> (denied checks, attempts)) to the demand signals: two
    statements, rows in key order."""
    if usage:
        keys = sorted(usage)
        await session.execute(_ADD_USAGE, {
            "a": [k[0] for k in keys], "u": [k[1] for k in keys], "f": [k[2] for k in keys], "p": [k[3] for k in keys],
            "pe": [usage[k][0] for k in keys], "q": [usage[k][1] for k in keys], "now": now})
    if demand:
        days = sorted(demand)
        await session.execute(_ADD_DEMAND, {
            "a": [k[0] for k in days], "u": [k[1] for k in days], "f": [k[2] for k in days], "d": [k[3] for k in days],
            "dn": [demand[k][0] for k in days], "n": [demand[k][1] for k in days], "now": now})
