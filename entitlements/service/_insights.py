"""Reads for the suggestion engine (suggest): a user's demand signals and usage history across
features, and an account's holdings and recent activity in bulk (for precomputed peer statistics).

Plain values out, so the engine stays testable without this package. Every query is bounded by account (and
user or time window) and served by the tables' primary keys or indexes.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from entitlements.models import DemandSignal, Grant, SeatAssignment, UsageCounter


async def demand_signals(session: AsyncSession, account_id: str, user_id: str, *, since: date,
                         ) -> dict[str, tuple[int, int]]:
    """feature -> (denied checks, attempt events) of the user from ``since`` (a UTC day) on."""
    rows = await session.execute(
        select(DemandSignal.feature, func.sum(DemandSignal.denied_checks), func.sum(DemandSignal.attempts))
        .where(DemandSignal.account_id == account_id, DemandSignal.user_id == user_id, DemandSignal.day >= since)
        .group_by(DemandSignal.feature))
    return {f: (int(d or 0), int(a or 0)) for f, d, a in rows}


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


async def account_holdings(session: AsyncSession, account_id: str, user_ids: list[str], *, now: datetime,
                           own_only: bool = False, sources: tuple[str, ...] | None = None,
                           ) -> dict[str, frozenset[str]]:
    """user id -> modules held now (own grants, account-wide grants, assigned seats), for the given users;
    with ``own_only``, only the users' own grants; with ``sources``, only grants of those sources (``order``:
    what the user bought, e.g. for the cheapest-plan advisor)."""
    active = [Grant.account_id == account_id, Grant.starts_at <= now,
              or_(Grant.ends_at.is_(None), Grant.ends_at > now),
              or_(Grant.revoked_at.is_(None), Grant.revoked_at > now)]
    everyone: set[str] = set()
    held: dict[str, set[str]] = defaultdict(set)
    if sources is not None:
        active.append(Grant.source.in_(sources))
    query = select(Grant.user_id, Grant.module, Grant.seats).where(*active)
    if own_only:
        query = query.where(Grant.user_id.in_(user_ids))
    for user_id, module, seats in await session.execute(query):
        if user_id is not None:
            held[user_id].add(module)
        elif seats is None:
            everyone.add(module)
    if own_only:
        return {u: frozenset(held.get(u, set())) for u in user_ids}
    seated = await session.execute(
        select(SeatAssignment.user_id, Grant.module).join(
            Grant, and_(Grant.account_id == SeatAssignment.account_id, Grant.grant_id == SeatAssignment.grant_id))
        .where(SeatAssignment.account_id == account_id, *active[1:]))
    for user_id, module in seated:
        held[user_id].add(module)
    return {u: frozenset(held.get(u, set()) | everyone) for u in user_ids}


async def active_features(session: AsyncSession, account_id: str, *, since: datetime) -> dict[str, frozenset[str]]:
    """user id -> features the user used (a counter above zero) in periods ending after ``since``."""
    rows = await session.execute(
        select(UsageCounter.user_id, UsageCounter.feature).where(
            UsageCounter.account_id == account_id, UsageCounter.period_end > since, UsageCounter.used > 0)
        .distinct())
    out: dict[str, set[str]] = defaultdict(set)
    for user_id, feature in rows:
        out[user_id].add(feature)
    return {u: frozenset(f) for u, f in out.items()}


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
