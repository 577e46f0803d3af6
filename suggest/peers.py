"""Precomputed peer statistics, so a suggestion request never scans an account's users.

Per account: for every role, how many users have it, how many of them own each module, how many of those
used it lately; and how many users own each pair of modules. Per segment: the same summed over its
accounts. Recounted per account when older than ``suggest_stats_ttl_seconds`` (in the background after
the first time; the first request of an account waits for it), and bumped on every recorded purchase.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import datetime, timedelta
from itertools import combinations
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import entitlements
from app.accounts.models import Account
from app.clock import Clock
from suggest.models import PairStat, PeerStat, RoleStat, StatsRefresh

log = logging.getLogger("commerce.suggest")
Pairs = Counter[tuple[str, str]]
SEGMENT_TTL = timedelta(seconds=60)
RECOUNT_DELAY_SECONDS = 0.5  # a background recount starts after the request that noticed it has been answered
ALL = "*"  # the role row that counts every user of an account (or segment)


def count_peers(users: dict[str, list[str]], holdings: dict[str, frozenset[str]],
                active: dict[str, frozenset[str]], features_of: dict[str, frozenset[str]],
                ) -> tuple[dict[str, int], Pairs, Pairs, Pairs]:
    """Pure recount: role sizes, (role, module) owners and active owners, (a, b) co-owners (a <= b)."""
    role_users: Counter[str] = Counter()
    owners: Counter[tuple[str, str]] = Counter()
    active_owners: Counter[tuple[str, str]] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    for user_id, roles in users.items():
        held = sorted(holdings.get(user_id, frozenset()))
        used = active.get(user_id, frozenset())
        for role in set(roles):
            role_users[role] += 1
            for m in held:
                owners[(role, m)] += 1
                if used & features_of.get(m, frozenset()):
                    active_owners[(role, m)] += 1
        for m in held:
            pairs[(m, m)] += 1
        for a, b in combinations(held, 2):
            pairs[(a, b)] += 1
    return dict(role_users), owners, active_owners, pairs


async def refresh_account(session: AsyncSession, account_id: str, *, now: datetime, unused_days: int,
                          segment: bool = True) -> int:
    """Recount one account's statistics (and, unless told not to, its segment's); returns users counted."""
    view = await entitlements.service.catalog_view(session)
    features_of = {k: frozenset(m.features) for k, m in view.modules.items()}
    counted = await entitlements.holdings_by_role(session, account_id, now=now,
                                                  active_since=now - timedelta(days=unused_days),
                                                  features_of=features_of)
    role_users, owners, active_owners, pairs = counted.role_users, counted.owners, counted.active_owners, counted.pairs
    users = counted.users
    await session.execute(delete(PeerStat).where(PeerStat.account_id == account_id))
    await session.execute(delete(RoleStat).where(RoleStat.account_id == account_id))
    role_rows = [{"account_id": account_id, "role": role, "users": n} for role, n in sorted(role_users.items())]
    await session.execute(insert(RoleStat), [*role_rows, {"account_id": account_id, "role": ALL, "users": users}])
    await session.execute(delete(PairStat).where(PairStat.account_id == account_id))
    peer_rows = [{"account_id": account_id, "role": role, "module": m, "role_users": role_users[role], "owners": n,
                  "active_owners": active_owners.get((role, m), 0)} for (role, m), n in sorted(owners.items())]
    if peer_rows:
        await session.execute(insert(PeerStat), peer_rows)
    pair_rows = [{"account_id": account_id, "module_a": a, "module_b": b, "users": n}
                 for (a, b), n in sorted(pairs.items())]
    if pair_rows:
        await session.execute(insert(PairStat), pair_rows)
    await session.execute(insert(StatsRefresh).values(account_id=account_id, users=users, refreshed_at=now)
                          .on_conflict_do_update(index_elements=["account_id"],
                                                 set_={"users": users, "refreshed_at": now}))
    name = await session.scalar(select(Account.segment).where(Account.account_id == account_id)) if segment else None
    if name is not None:
        await refresh_segment(session, name)
    return users


# Shares in a segment are over every user with the role in the segment's recounted accounts (sug_segment_roles),
# not only over the accounts where someone with the role owns the module (issue 19: that inflated them).
_SEGMENT_ROLES = text("""
    INSERT INTO sug_segment_roles (segment, role, users)
    SELECT a.segment, r.role, sum(r.users)
      FROM sug_role_stats r JOIN accounts a ON a.account_id = r.account_id
     WHERE a.segment = :segment GROUP BY a.segment, r.role
""")
_SEGMENT_STATS = text("""
    INSERT INTO sug_segment_stats (segment, role, module, accounts, role_users, owners)
    SELECT a.segment, p.role, p.module, count(*), max(sr.users), sum(p.owners)
      FROM sug_peer_stats p JOIN accounts a ON a.account_id = p.account_id
      JOIN sug_segment_roles sr ON sr.segment = a.segment AND sr.role = p.role
     WHERE a.segment = :segment GROUP BY a.segment, p.role, p.module
""")
_SEGMENT_PAIRS = text("""
    INSERT INTO sug_segment_pairs (segment, module_a, module_b, users)
    SELECT a.segment, p.module_a, p.module_b, sum(p.users)
      FROM sug_pair_stats p JOIN accounts a ON a.account_id = p.account_id
     WHERE a.segment = :segment GROUP BY a.segment, p.module_a, p.module_b
""")


async def refresh_segment(session: AsyncSession, segment: str) -> None:
    """Re-sum one segment from its accounts' rows (bounded: roles x modules per account)."""
    await session.execute(text("DELETE FROM sug_segment_stats WHERE segment = :segment"), {"segment": segment})
    await session.execute(text("DELETE FROM sug_segment_pairs WHERE segment = :segment"), {"segment": segment})
    await session.execute(text("DELETE FROM sug_segment_roles WHERE segment = :segment"), {"segment": segment})
    await session.execute(_SEGMENT_ROLES, {"segment": segment})
    await session.execute(_SEGMENT_STATS, {"segment": segment})
    await session.execute(_SEGMENT_PAIRS, {"segment": segment})


_BUMP = text("""
    INSERT INTO sug_peer_stats (account_id, role, module, role_users, owners, active_owners)
    SELECT CAST(:a AS varchar), CAST(:r AS varchar), CAST(:m AS varchar), coalesce(max(role_users), 1), 1, 0
      FROM sug_peer_stats WHERE account_id = CAST(:a AS varchar) AND role = CAST(:r AS varchar)
    ON CONFLICT (account_id, role, module) DO UPDATE SET owners = LEAST(sug_peer_stats.owners + 1,
                                                                       sug_peer_stats.role_users)
""")


async def bump_owner(session: AsyncSession, account_id: str, roles: list[str], module: str) -> None:
    """A purchase: one more owner of ``module`` for each of the buyer's roles, until the next recount."""
    for role in sorted(set(roles)):
        await session.execute(_BUMP, {"a": account_id, "r": role, "m": module})


async def refreshed_at(session: AsyncSession, account_id: str) -> datetime | None:
    return await session.scalar(select(StatsRefresh.refreshed_at).where(StatsRefresh.account_id == account_id))


class Refresher:
    """Background recounts of stale accounts, at most one at a time per account (per process)."""

    def __init__(self, clock: Clock, unused_days: int) -> None:
        self.clock, self.unused_days = clock, unused_days
        self.running: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.fresh_until: dict[str, datetime] = {}  # per account: no need to look before then (bounded below)
        # Derived, read-mostly values shared by requests: per (catalog revision, currency) the catalog as the
        # engine sees it; per segment its aggregates (re-read after SEGMENT_TTL). Both small and bounded.
        self.catalog: dict[tuple[int, str], Any] = {}
        self.segments: dict[str, tuple[datetime, Any]] = {}
        self.weights: tuple[datetime, Any] | None = None

    def cached_weights(self, now: datetime) -> Any | None:
        return self.weights[1] if self.weights is not None and now < self.weights[0] else None

    def keep_weights(self, now: datetime, value: Any) -> None:
        self.weights = (now + SEGMENT_TTL, value)

    def cached_segment(self, segment: str, now: datetime) -> Any | None:
        hit = self.segments.get(segment)
        return hit[1] if hit is not None and now < hit[0] else None

    def keep_segment(self, segment: str, now: datetime, value: Any) -> None:
        if len(self.segments) >= 1_000:
            self.segments.clear()
        self.segments[segment] = (now + SEGMENT_TTL, value)

    def fresh(self, account_id: str, now: datetime) -> bool:
        until = self.fresh_until.get(account_id)
        return until is not None and now < until

    def seen(self, account_id: str, until: datetime) -> None:
        if len(self.fresh_until) >= 10_000:
            self.fresh_until.clear()
        self.fresh_until[account_id] = until

    def schedule(self, sessionmaker: async_sessionmaker[AsyncSession], account_id: str) -> bool:
        if account_id in self.running:
            return False
        self.running.add(account_id)
        task = asyncio.create_task(self._run(sessionmaker, account_id), name=f"suggest-refresh-{account_id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def _run(self, sessionmaker: async_sessionmaker[AsyncSession], account_id: str) -> None:
        try:
            await asyncio.sleep(RECOUNT_DELAY_SECONDS)
            async with sessionmaker() as session, session.begin():
                await refresh_account(session, account_id, now=self.clock.now(), unused_days=self.unused_days)
            self.segments.clear()  # this process re-reads its segments' sums after a recount
        except Exception:
            log.warning("refreshing suggestion statistics of %s failed; the next request retries", account_id,
                        exc_info=True)
        finally:
            self.running.discard(account_id)

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def stale_accounts(session: AsyncSession, *, before: datetime, limit: int) -> list[str]:
    """Accounts whose statistics were never counted or last counted before ``before`` (oldest first)."""
    rows = await session.scalars(
        select(Account.account_id)
        .outerjoin(StatsRefresh, StatsRefresh.account_id == Account.account_id)
        .where((StatsRefresh.refreshed_at.is_(None)) | (StatsRefresh.refreshed_at < before))
        .order_by(StatsRefresh.refreshed_at.asc().nulls_first(), Account.account_id).limit(limit))
    return list(rows)
