"""Reads for the suggestion engine (suggest): a user's demand signals and usage history across
features, and an account's holdings and recent activity in bulk (for precomputed peer statistics).

Plain values out, so the engine stays testable without this package. Every query is bounded by account (and
user or time window) and served by the tables' primary keys or indexes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime

import msgspec
from sqlalchemy import func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from entitlements.models import DemandSignal, Grant, UsageCounter


async def demand_signals(session: AsyncSession, account_id: str, user_id: str, *, since: date,
                         ) -> dict[str, tuple[int, int]]:
    """feature -> (denied checks, attempt events) of the user from ``since`` (a UTC day) on."""
    rows = await session.execute(
        select(DemandSignal.feature, func.sum(DemandSignal.denied_checks), func.sum(DemandSignal.attempts))
        .where(DemandSignal.account_id == account_id, DemandSignal.user_id == user_id, DemandSignal.day >= since)
        .group_by(DemandSignal.feature))
    return {f: (int(d or 0), int(a or 0)) for f, d, a in rows}


async def demand_by_day(session: AsyncSession, account_id: str, user_id: str, *, since: date,
                        ) -> dict[str, list[tuple[date, int, int]]]:
    """feature -> [(UTC day, denied checks, attempts)] of the user from ``since`` on, oldest first."""
    rows = await session.execute(
        select(DemandSignal.feature, DemandSignal.day, DemandSignal.denied_checks, DemandSignal.attempts)
        .where(DemandSignal.account_id == account_id, DemandSignal.user_id == user_id, DemandSignal.day >= since)
        .order_by(DemandSignal.feature, DemandSignal.day))
    out: dict[str, list[tuple[date, int, int]]] = defaultdict(list)
    for feature, day, denied, attempts in rows:
        out[feature].append((day, int(denied), int(attempts)))
    return dict(out)


async def usage_series(session: AsyncSession, account_id: str, user_id: str, *, since: datetime,
                       ) -> dict[str, list[tuple[datetime, datetime, int]]]:
    """feature -> [(period start, period end, used)] of the user's counters starting from ``since``, oldest first."""
    rows = await session.execute(
        select(UsageCounter.feature, UsageCounter.period_start, UsageCounter.period_end, UsageCounter.used)
        .where(UsageCounter.account_id == account_id, UsageCounter.user_id == user_id,
               UsageCounter.period_end > since)
        .order_by(UsageCounter.feature, UsageCounter.period_start))
    out: dict[str, list[tuple[datetime, datetime, int]]] = defaultdict(list)
    for feature, start, end, used in rows:
        out[feature].append((start, end, int(used)))
    return dict(out)


# Core statements aggregated per user in the database: an account of thousands of users is a few thousand
# small rows, not tens of thousands of ORM rows (the suggestion engine's recounts read whole accounts).
_HOLDINGS = text("""
    SELECT user_id, array_agg(DISTINCT module) FROM (
        SELECT g.user_id, g.module FROM ent_grants g
         WHERE g.account_id = :a AND g.starts_at <= :now AND (g.ends_at IS NULL OR g.ends_at > :now)
           AND (g.revoked_at IS NULL OR g.revoked_at > :now)
           AND (CAST(:sources AS text[]) IS NULL OR g.source = ANY(CAST(:sources AS text[])))
           AND ((g.user_id IS NOT NULL AND (NOT :own_only OR g.user_id = ANY(CAST(:users AS text[]))))
                OR (NOT :own_only AND g.user_id IS NULL AND g.seats IS NULL))
        UNION ALL
        SELECT s.user_id, g.module FROM ent_seat_assignments s
          JOIN ent_grants g ON g.account_id = s.account_id AND g.grant_id = s.grant_id
         WHERE NOT :own_only AND s.account_id = :a AND g.starts_at <= :now
           AND (g.ends_at IS NULL OR g.ends_at > :now) AND (g.revoked_at IS NULL OR g.revoked_at > :now)
           AND (CAST(:sources AS text[]) IS NULL OR g.source = ANY(CAST(:sources AS text[])))
    ) held GROUP BY user_id
""")

_ACTIVE = text("""
    SELECT user_id, array_agg(DISTINCT feature) FROM ent_usage_counters
     WHERE account_id = :a AND period_end > :since AND used > 0 GROUP BY user_id
""")


async def account_holdings(session: AsyncSession, account_id: str, user_ids: list[str], *, now: datetime,
                           own_only: bool = False, sources: tuple[str, ...] | None = None,
                           ) -> dict[str, frozenset[str]]:
    """user id -> modules held now (own grants, account-wide grants, assigned seats), for the given users;
    with ``own_only``, only the users' own grants; with ``sources``, only grants of those sources (``order``:
    what the user bought, e.g. for the cheapest-plan advisor)."""
    rows = await session.execute(_HOLDINGS, {"a": account_id, "now": now, "own_only": own_only,
                                             "users": user_ids if own_only else [],
                                             "sources": list(sources) if sources is not None else None})
    held: dict[str | None, frozenset[str]] = {user_id: frozenset(modules) for user_id, modules in rows}
    everyone = held.pop(None, frozenset())  # the account-wide grants: the row of no user
    return {u: held.get(u, frozenset()) | everyone for u in user_ids}


async def active_features(session: AsyncSession, account_id: str, *, since: datetime) -> dict[str, frozenset[str]]:
    """user id -> features the user used (a counter above zero) in periods ending after ``since``."""
    return {u: frozenset(f) for u, f in await session.execute(_ACTIVE, {"a": account_id, "since": since})}


async def account_usage_series(session: AsyncSession, account_id: str, *, since: datetime, max_users: int,
                               ) -> dict[str, dict[str, list[int]]]:
    """user id -> feature -> used per period (oldest first) since ``since``, for at most ``max_users`` users
    (those with usage, in user id order)."""
    users = select(UsageCounter.user_id).where(
        UsageCounter.account_id == account_id, UsageCounter.period_end > since).distinct().order_by(
        UsageCounter.user_id).limit(max_users).scalar_subquery()
    rows = await session.execute(
        select(UsageCounter.user_id, UsageCounter.feature, UsageCounter.used)
        .where(UsageCounter.account_id == account_id, UsageCounter.period_end > since,
               UsageCounter.user_id.in_(users))
        .order_by(UsageCounter.user_id, UsageCounter.feature, UsageCounter.period_start))
    out: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for user_id, feature, used in rows:
        out[user_id][feature].append(int(used))
    return {u: dict(f) for u, f in out.items()}


async def grant_history(session: AsyncSession, *, until: datetime, limit: int,
                        ) -> list[tuple[str, str | None, str, str, datetime, datetime | None]]:
    """Every grant started before ``until`` as (account, user or None, module, source, starts_at, held until):
    the history a backtest replays (seat pools are left out: who held a seat when is not kept). At most
    ``limit`` rows, oldest first."""
    rows = await session.execute(
        select(Grant.account_id, Grant.user_id, Grant.module, Grant.source, Grant.starts_at, Grant.ends_at,
               Grant.revoked_at)
        .where(Grant.starts_at < until, Grant.seats.is_(None)).order_by(Grant.starts_at, Grant.grant_id).limit(limit))
    out = []
    for a, u, m, source, starts, ends, revoked in rows:
        end = min((t for t in (ends, revoked) if t is not None), default=None)
        out.append((a, u, m, source, starts, end))
    return out


async def demand_history(session: AsyncSession, *, since: date, until: date, limit: int,
                         ) -> list[tuple[str, str, str, date, int]]:
    """(account, user, feature, UTC day, denied checks + attempts) for days in [since, until), at most ``limit``."""
    rows = await session.execute(
        select(DemandSignal.account_id, DemandSignal.user_id, DemandSignal.feature, DemandSignal.day,
               DemandSignal.denied_checks + DemandSignal.attempts)
        .where(DemandSignal.day >= since, DemandSignal.day < until).order_by(DemandSignal.day).limit(limit))
    return [(a, u, f, d, int(n)) for a, u, f, d, n in rows]


async def usage_history_rows(session: AsyncSession, *, since: datetime, until: datetime, limit: int,
                             ) -> list[tuple[str, str, str, datetime, datetime, int]]:
    """(account, user, feature, period start, period end, used) of counters begun in [since, until)."""
    rows = await session.execute(
        select(UsageCounter.account_id, UsageCounter.user_id, UsageCounter.feature, UsageCounter.period_start,
               UsageCounter.period_end, UsageCounter.used)
        .where(UsageCounter.period_start >= since, UsageCounter.period_start < until)
        .order_by(UsageCounter.period_start).limit(limit))
    return [(a, u, f, s, e, int(n)) for a, u, f, s, e, n in rows]


async def recent_grants(session: AsyncSession, account_id: str, user_id: str, *, since: datetime, now: datetime,
                        ) -> frozenset[str]:
    """Modules the user (or the whole account) was granted from ``since`` on, whatever the source (orders,
    imports, admins, trials): what "just got it" means for suggestions."""
    rows = await session.scalars(select(Grant.module).where(
        Grant.account_id == account_id, or_(Grant.user_id == user_id, Grant.user_id.is_(None)),
        Grant.starts_at >= since, Grant.starts_at <= now))
    return frozenset(rows)


@dataclass(frozen=True)
class UserActivity:
    """What the suggestion engine reads of one user here, in one round trip (see ``user_activity``)."""

    demand: dict[str, list[tuple[date, int, int]]]  # feature -> [(UTC day, denied checks, attempts)], oldest first
    usage: dict[str, list[tuple[datetime, datetime, int]]]  # feature -> [(period start, end, used)], oldest first
    recent: frozenset[str]  # modules granted to the user or the account from ``recent_since`` on (any source)
    bought: frozenset[str]  # modules of the user's own active grants of the given sources


# One statement, four bounded reads (each by its table's primary key prefix), answered as JSON arrays: the
# request pays one round trip instead of four, and no ORM row building.
_ACTIVITY = text("""
    SELECT CAST((SELECT coalesce(json_agg(json_build_array(feature, day, denied_checks, attempts)
                                          ORDER BY feature, day), '[]')
                   FROM ent_demand_signals WHERE account_id = :a AND user_id = :u AND day >= :demand_since) AS text),
           CAST((SELECT coalesce(json_agg(json_build_array(feature, period_start, period_end, used)
                                          ORDER BY feature, period_start), '[]')
                   FROM ent_usage_counters WHERE account_id = :a AND user_id = :u AND period_end > :usage_since)
                AS text),
           CAST((SELECT coalesce(json_agg(DISTINCT module), '[]') FROM ent_grants
                  WHERE account_id = :a AND (user_id = :u OR user_id IS NULL) AND starts_at >= :recent_since
                    AND starts_at <= :now) AS text),
           CAST((SELECT coalesce(json_agg(DISTINCT module), '[]') FROM ent_grants
                  WHERE account_id = :a AND user_id = :u AND source = ANY(CAST(:sources AS text[]))
                    AND starts_at <= :now AND (ends_at IS NULL OR ends_at > :now)
                    AND (revoked_at IS NULL OR revoked_at > :now)) AS text)
""")
_DEMAND = msgspec.json.Decoder(list[tuple[str, date, int, int]])
_USAGE = msgspec.json.Decoder(list[tuple[str, datetime, datetime, int]])
_MODULES = msgspec.json.Decoder(list[str])


async def user_activity(session: AsyncSession, account_id: str, user_id: str, *, now: datetime, demand_since: date,
                        usage_since: datetime, recent_since: datetime, sources: tuple[str, ...],
                        ) -> UserActivity:
    """``demand_by_day``, ``usage_series``, ``recent_grants`` and ``account_holdings(own_only, sources)`` of one
    user, read in one statement."""
    row = (await session.execute(_ACTIVITY, {
        "a": account_id, "u": user_id, "now": now, "demand_since": demand_since, "usage_since": usage_since,
        "recent_since": recent_since, "sources": list(sources)})).one()
    demand: dict[str, list[tuple[date, int, int]]] = defaultdict(list)
    for feature, day, denied, attempts in _DEMAND.decode(row[0]):
        demand[feature].append((day, denied, attempts))
    usage: dict[str, list[tuple[datetime, datetime, int]]] = defaultdict(list)
    for feature, start, end, used in _USAGE.decode(row[1]):
        usage[feature].append((start, end, used))
    return UserActivity(demand=dict(demand), usage=dict(usage), recent=frozenset(_MODULES.decode(row[2])),
                        bought=frozenset(_MODULES.decode(row[3])))


def holdings_cte(*, every_user: bool) -> str:
    """SQL for the start of a WITH list that ends in ``holdings(user_id, roles, modules, active)``: per user of
    account ``:a`` (every user, or those in ``:users``, a text array) its distinct roles, the modules it holds at
    ``:now`` (own, account-wide and seat grants, as ``account_holdings``) and those of them it used since
    ``:since`` (a feature of the module in ``:fm``/``:ff`` counted since then), each array sorted in byte
    order. For higher packages that keep counts of holdings in the same statement as they read them; the names
    ``h_*`` are taken."""
    of_users = "" if every_user else " AND user_id = ANY(CAST(:users AS text[]))"
    grants_of = "" if every_user else " AND (user_id IS NULL OR user_id = ANY(CAST(:users AS text[])))"
    return f"""
    h_u AS (SELECT user_id, roles FROM users WHERE account_id = :a{of_users}),
    h_g AS (SELECT grant_id, user_id, module, seats FROM ent_grants
             WHERE account_id = :a{grants_of} AND starts_at <= :now AND (ends_at IS NULL OR ends_at > :now)
               AND (revoked_at IS NULL OR revoked_at > :now)),
    h_held AS (
        SELECT DISTINCT x.user_id, x.module FROM (
            SELECT g.user_id, g.module FROM h_g g WHERE g.user_id IS NOT NULL
            UNION ALL
            SELECT s.user_id, g.module FROM ent_seat_assignments s JOIN h_g g ON g.grant_id = s.grant_id
             WHERE s.account_id = :a
            UNION ALL
            SELECT u.user_id, g.module FROM h_g g CROSS JOIN h_u u WHERE g.user_id IS NULL AND g.seats IS NULL
        ) x JOIN h_u u ON u.user_id = x.user_id
    ),
    h_mf AS (SELECT * FROM unnest(CAST(:fm AS text[]), CAST(:ff AS text[])) AS t(module, feature)),
    h_used AS (SELECT DISTINCT user_id, feature FROM ent_usage_counters
                WHERE account_id = :a{of_users} AND period_end > :since AND used > 0),
    h_active AS (SELECT DISTINCT h.user_id, h.module FROM h_held h JOIN h_mf ON h_mf.module = h.module
                   JOIN h_used ON h_used.user_id = h.user_id AND h_used.feature = h_mf.feature),
    h_hm AS (SELECT user_id, CAST(array_agg(module ORDER BY module COLLATE "C") AS text[]) AS m
               FROM h_held GROUP BY user_id),
    h_am AS (SELECT user_id, CAST(array_agg(module ORDER BY module COLLATE "C") AS text[]) AS m
               FROM h_active GROUP BY user_id),
    holdings AS (
        SELECT u.user_id,
               ARRAY(SELECT r FROM unnest(u.roles) AS r GROUP BY r ORDER BY r COLLATE "C") AS roles,
               coalesce(h_hm.m, CAST('{{}}' AS text[])) AS modules, coalesce(h_am.m, CAST('{{}}' AS text[])) AS active
          FROM h_u u LEFT JOIN h_hm ON h_hm.user_id = u.user_id LEFT JOIN h_am ON h_am.user_id = u.user_id
    )"""  # noqa: S608  (no input in it: one of two fixed variants)


def holdings_params(account_id: str, user_ids: list[str] | None, *, now: datetime, active_since: datetime,
                    features_of: dict[str, frozenset[str]]) -> dict[str, object]:
    """The parameters of ``holdings_cte``."""
    params: dict[str, object] = {
        "a": account_id, "now": now, "since": active_since,
        "fm": [m for m, fs in features_of.items() for _ in fs], "ff": [f for fs in features_of.values() for f in fs]}
    if user_ids is not None:
        params["users"] = user_ids
    return params
