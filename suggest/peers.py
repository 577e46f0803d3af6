"""Precomputed peer statistics, so a suggestion request never scans an account's users.

Per account: for every role, how many users have it, how many of them own each module, how many of those
used it lately; and how many users own each pair of modules. Per segment: the same summed over its
accounts. Maintained, not recounted: every change to a user's grants, seats or roles applies its difference to
the account's counts in the changing transaction (``apply_changes``, from the engine's event subscribers), so a
request reads them as they are. A full recount (``refresh_account``) remains: for accounts never counted, after
bulk writes that publish no events (history import), and from the statistics job for what time changes with no
event (a grant starting or ending on its date, usage ageing out of "lately"); segment sums are re-summed then.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import Counter
from datetime import datetime, timedelta
from itertools import combinations
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import entitlements
from app.accounts.models import Account
from app.clock import Clock
from app.onestatement import Statement
from entitlements.events import EntitlementGranted
from suggest.models import StatsRefresh

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


# The difference between the users' holdings now (``holdings``, counted by entitlements' SQL) and as last counted
# (sug_user_holdings), applied to the account's aggregates in the same statement: +1 per (role), (role, module),
# active (role, module) and module pair of the new holdings, -1 per those of the old, only for users whose
# holdings changed. Role sizes are upserted first and their new values (RETURNING) copied to every peer row of a
# changed role. Rows are upserted in key order (concurrent changes lock them in the same order). Answers how many
# counts went down (then rows at zero are deleted by _DROP_ZEROS, which the recount never writes).
_APPLY = """
    WITH {holdings},
    nw AS (SELECT user_id, roles, modules, active FROM holdings),
    od AS (SELECT user_id, roles, modules, active FROM sug_user_holdings
            WHERE account_id = :a AND roles IS NOT NULL{of_users}),
    ch AS (SELECT coalesce(nw.user_id, od.user_id) AS user_id FROM nw FULL JOIN od ON od.user_id = nw.user_id
            WHERE nw.user_id IS NULL OR od.user_id IS NULL OR nw.roles <> od.roles OR nw.modules <> od.modules
               OR nw.active <> od.active),
    st AS (SELECT 1 AS s, nw.* FROM nw WHERE nw.user_id IN (SELECT user_id FROM ch)
           UNION ALL SELECT -1, od.* FROM od WHERE od.user_id IN (SELECT user_id FROM ch)),
    c AS (SELECT 'role' AS k, '*' AS a, '' AS b, s FROM st
          UNION ALL SELECT 'role', r, '', s FROM st CROSS JOIN unnest(st.roles) AS r
          UNION ALL SELECT 'owners', r, m, s FROM st CROSS JOIN unnest(st.roles) AS r CROSS JOIN unnest(st.modules) AS m
          UNION ALL SELECT 'active', r, m, s FROM st CROSS JOIN unnest(st.roles) AS r CROSS JOIN unnest(st.active) AS m
          UNION ALL SELECT 'pair', x, y, s FROM st CROSS JOIN unnest(st.modules) AS x CROSS JOIN unnest(st.modules) AS y
                     WHERE x COLLATE "C" <= y COLLATE "C"),
    d AS (SELECT k, a, b, CAST(sum(s) AS bigint) AS n FROM c GROUP BY k, a, b HAVING sum(s) <> 0),
    saved AS (
        INSERT INTO sug_user_holdings (account_id, user_id, roles, modules, active)
        SELECT :a, user_id, roles, modules, active FROM nw WHERE user_id IN (SELECT user_id FROM ch) ORDER BY user_id
        ON CONFLICT (account_id, user_id) DO UPDATE
        SET roles = EXCLUDED.roles, modules = EXCLUDED.modules, active = EXCLUDED.active
    ),
    rs AS (
        INSERT INTO sug_role_stats (account_id, role, users)
        SELECT :a, a, n FROM d WHERE k = 'role' ORDER BY a
        ON CONFLICT (account_id, role) DO UPDATE SET users = sug_role_stats.users + EXCLUDED.users
        RETURNING role, users
    ),
    sizes AS (SELECT role, users FROM rs
              UNION ALL SELECT role, users FROM sug_role_stats
               WHERE account_id = :a AND role NOT IN (SELECT role FROM rs)),
    pk AS (SELECT role, module, sum(dn) AS dn, sum(da) AS da FROM (
               SELECT a AS role, b AS module, CASE WHEN k = 'owners' THEN n ELSE 0 END AS dn,
                      CASE WHEN k = 'active' THEN n ELSE 0 END AS da FROM d WHERE k IN ('owners', 'active')
               UNION ALL
               SELECT role, module, 0, 0 FROM sug_peer_stats
                WHERE account_id = :a AND role IN (SELECT role FROM rs)) x
           GROUP BY role, module),
    ps AS (
        INSERT INTO sug_peer_stats (account_id, role, module, role_users, owners, active_owners)
        SELECT :a, pk.role, pk.module, coalesce(sizes.users, 0), pk.dn, pk.da
          FROM pk LEFT JOIN sizes ON sizes.role = pk.role ORDER BY pk.role, pk.module
        ON CONFLICT (account_id, role, module) DO UPDATE
        SET role_users = EXCLUDED.role_users, owners = sug_peer_stats.owners + EXCLUDED.owners,
            active_owners = sug_peer_stats.active_owners + EXCLUDED.active_owners
    ),
    pp AS (
        INSERT INTO sug_pair_stats (account_id, module_a, module_b, users)
        SELECT :a, a, b, n FROM d WHERE k = 'pair' ORDER BY a, b
        ON CONFLICT (account_id, module_a, module_b) DO UPDATE SET users = sug_pair_stats.users + EXCLUDED.users
    )
    SELECT count(*) FILTER (WHERE n < 0) FROM d
"""
_APPLY_USERS = text(_APPLY.format(holdings=entitlements.holdings_cte(every_user=False),
                                  of_users=" AND user_id = ANY(CAST(:users AS text[]))"))
_APPLY_ALL = text(_APPLY.format(holdings=entitlements.holdings_cte(every_user=True), of_users=""))
_DROP_ZEROS = text("""
    WITH p AS (DELETE FROM sug_peer_stats WHERE account_id = :a AND owners <= 0),
         q AS (DELETE FROM sug_pair_stats WHERE account_id = :a AND users <= 0)
    DELETE FROM sug_role_stats WHERE account_id = :a AND users <= 0 AND role <> '*'
""")
# A change to some users: shares the account's refresh row (a recount or a change to every user takes it
# exclusively), then locks the users' holdings rows in key order (a placeholder for a user never counted), so
# two changes to one user apply one after the other and each reads the other's result. Answers whether the
# account is maintained (None: never counted).
_LOCK_USERS = text("""
    WITH m AS (SELECT maintained FROM sug_stats_refresh WHERE account_id = :a FOR SHARE),
    locked AS (
        INSERT INTO sug_user_holdings (account_id, user_id, roles, modules, active)
        SELECT :a, x, NULL, '{}', '{}' FROM unnest(CAST(:users AS text[])) AS x
         WHERE coalesce((SELECT maintained FROM m), false) ORDER BY x
        ON CONFLICT (account_id, user_id) DO UPDATE SET roles = sug_user_holdings.roles
        RETURNING 1
    )
    SELECT (SELECT maintained FROM m), (SELECT count(*) FROM locked)
""")
_LOCK_ALL = text("SELECT maintained FROM sug_stats_refresh WHERE account_id = :a FOR UPDATE")
_LOCK_RECOUNT = text("""
    INSERT INTO sug_stats_refresh (account_id, users, refreshed_at, maintained) VALUES (:a, 0, :now, false)
    ON CONFLICT (account_id) DO UPDATE SET maintained = sug_stats_refresh.maintained
""")
_WIPE = text("""
    WITH h AS (DELETE FROM sug_user_holdings WHERE account_id = :a),
         p AS (DELETE FROM sug_peer_stats WHERE account_id = :a),
         q AS (DELETE FROM sug_pair_stats WHERE account_id = :a)
    DELETE FROM sug_role_stats WHERE account_id = :a
""")
_COUNTED = text("""
    WITH everyone AS (
        INSERT INTO sug_role_stats (account_id, role, users) VALUES (:a, '*', 0)
        ON CONFLICT (account_id, role) DO UPDATE SET users = sug_role_stats.users
        RETURNING users
    )
    UPDATE sug_stats_refresh SET users = (SELECT users FROM everyone), refreshed_at = :now, maintained = true
     WHERE account_id = :a
    RETURNING users
""")


async def _features_of(session: AsyncSession) -> dict[str, frozenset[str]]:
    view = await entitlements.service.catalog_view(session)
    return {k: frozenset(m.features) for k, m in view.modules.items()}


async def refresh_account(session: AsyncSession, account_id: str, *, now: datetime, unused_days: int,
                          segment: bool = True) -> int:
    """Recount one account's statistics from scratch (and, unless told not to, its segment's); returns users
    counted. From then on the account is maintained: every change to a user's holdings or roles applies its
    difference (``apply_changes``). Takes the account's refresh row first, so changes wait for it."""
    await session.execute(_LOCK_RECOUNT, {"a": account_id, "now": now})
    await session.execute(_WIPE, {"a": account_id})
    await session.execute(_APPLY_ALL, entitlements.holdings_params(
        account_id, None, now=now, active_since=now - timedelta(days=unused_days),
        features_of=await _features_of(session)))
    users = int(await session.scalar(_COUNTED, {"a": account_id, "now": now}) or 0)
    name = await session.scalar(select(Account.segment).where(Account.account_id == account_id)) if segment else None
    if name is not None:
        await refresh_segment(session, name)
    return users


async def apply_changes(session: AsyncSession, account_id: str, user_ids: list[str] | None, *, now: datetime,
                        unused_days: int) -> None:
    """Bring the account's statistics up to date for these users' holdings and roles (None: every user, e.g.
    an account-wide grant), in the caller's transaction: no recount. An account never counted is counted now
    (new accounts are small); one counted before statistics were maintained waits for the statistics job."""
    if user_ids is None:
        maintained = await session.scalar(_LOCK_ALL, {"a": account_id})
    else:
        user_ids = sorted(set(user_ids))
        maintained = (await session.execute(_LOCK_USERS, {"a": account_id, "users": user_ids})).one()[0]
    if maintained is None:
        await refresh_account(session, account_id, now=now, unused_days=unused_days, segment=False)
        return
    if not maintained:
        return
    params = entitlements.holdings_params(account_id, user_ids, now=now,
                                          active_since=now - timedelta(days=unused_days),
                                          features_of=await _features_of(session))
    went_down = await session.scalar(_APPLY_ALL if user_ids is None else _APPLY_USERS, params)
    if went_down:
        await session.execute(_DROP_ZEROS, {"a": account_id})


# Per fast-path statement and user: the modules (and their features) its grants add, as the very lists bound to
# the statement's parameters, so a later grant of the same statement joins the CTEs the first one added.
_PENDING: weakref.WeakKeyDictionary[Statement, dict[tuple[str, str], tuple[list[str], list[str], list[str]]]] = (
    weakref.WeakKeyDictionary())


def granted_in(statement: Statement, event: EntitlementGranted, features: object, *, now: datetime,
               unused_days: int) -> None:
    """``apply_changes`` for grants made by a fast path's one statement (``features``: the granted module's
    features). The grants' own rows are not visible to the statement's other parts, so the difference is taken
    from the user's counted holdings: the modules the user did not hold yet add one owner per role of the user
    (an active owner too when it used one of the module's features lately) and one co-owner per new module pair,
    and join the user's holdings; nothing when the account is not maintained. Every grant of one user in the
    statement is one set of CTEs (a row is updated once per statement). An account-wide grant (every user
    changes) is not done in one statement: the fast path declines it."""
    assert isinstance(features, tuple), "a grant's facts are its module's features"
    if event.user_id is None:
        if event.seats is None:
            statement.guard("false", "peer_statistics_of_every_user")
        return  # a seat pool: nobody holds it until a seat is assigned
    if event.starts_at > now:
        return  # held by nobody yet: the statistics job counts it from its date
    pending = _PENDING.setdefault(statement, {})
    known = pending.get((event.account_id, event.user_id))
    if known is not None:
        modules, fm, ff = known
        modules.append(event.module)
        fm.extend(event.module for _ in features)
        ff.extend(str(f) for f in features)
        return
    modules, fm, ff = [event.module], [event.module for _ in features], [str(f) for f in features]
    pending[(event.account_id, event.user_id)] = (modules, fm, ff)
    p = statement.param
    a, u = p(event.account_id, "VARCHAR"), p(event.user_id, "VARCHAR")
    ms, fms, ffs = p(modules, "TEXT[]"), p(fm, "TEXT[]"), p(ff, "TEXT[]")
    refresh = statement.cte("sug_refresh", f"SELECT 1 FROM sug_stats_refresh WHERE account_id = {a} AND maintained "
                                           "FOR SHARE", materialized=True)
    held = statement.cte("sug_held", (
        f"SELECT roles, modules, active FROM sug_user_holdings WHERE account_id = {a} AND user_id = {u} "
        f"AND roles IS NOT NULL AND EXISTS (SELECT 1 FROM {refresh}) FOR UPDATE"), materialized=True)
    used = entitlements.used_lately_sql(
        account_id=a, user_id=u, since=p(now - timedelta(days=unused_days), "TIMESTAMPTZ"),
        features=f"ARRAY(SELECT f.feature FROM unnest({fms}, {ffs}) AS f(module, feature) WHERE f.module = x)")
    new = statement.cte("sug_new", (
        f"SELECT DISTINCT x AS module, {used} AS used FROM {held} h CROSS JOIN unnest({ms}) AS x "
        "WHERE NOT (x = ANY(h.modules))"), materialized=True)
    statement.cte("sug_holdings", (
        "UPDATE sug_user_holdings s SET "
        "modules = ARRAY(SELECT y FROM unnest(h.modules || ARRAY(SELECT module FROM "
        f"{new})) AS y ORDER BY y COLLATE \"C\"), "
        "active = ARRAY(SELECT y FROM unnest(h.active || ARRAY(SELECT module FROM "
        f"{new} WHERE used)) AS y ORDER BY y COLLATE \"C\") "
        f"FROM {held} h WHERE s.account_id = {a} AND s.user_id = {u} AND EXISTS (SELECT 1 FROM {new})"))
    statement.cte("sug_owners", (
        "INSERT INTO sug_peer_stats (account_id, role, module, role_users, owners, active_owners) "
        f"SELECT {a}, r.role, n.module, coalesce((SELECT users FROM sug_role_stats WHERE account_id = {a} "
        "AND role = r.role), 0), 1, CASE WHEN n.used THEN 1 ELSE 0 END "
        f"FROM {held} h CROSS JOIN unnest(h.roles) AS r(role) CROSS JOIN {new} n ORDER BY r.role, n.module "
        "ON CONFLICT (account_id, role, module) DO UPDATE SET role_users = EXCLUDED.role_users, "
        "owners = sug_peer_stats.owners + 1, active_owners = sug_peer_stats.active_owners + EXCLUDED.active_owners"))
    statement.cte("sug_pairs", (
        "INSERT INTO sug_pair_stats (account_id, module_a, module_b, users) "
        f"SELECT {a}, x, y, 1 FROM {held} h, unnest(h.modules || ARRAY(SELECT module FROM {new})) AS x, "
        f"unnest(h.modules || ARRAY(SELECT module FROM {new})) AS y "
        f"WHERE x COLLATE \"C\" <= y COLLATE \"C\" AND (x IN (SELECT module FROM {new}) "
        f"OR y IN (SELECT module FROM {new})) ORDER BY 2, 3 "
        "ON CONFLICT (account_id, module_a, module_b) DO UPDATE SET users = sug_pair_stats.users + 1"))


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


async def refreshed_at(session: AsyncSession, account_id: str) -> datetime | None:
    return await session.scalar(select(StatsRefresh.refreshed_at).where(StatsRefresh.account_id == account_id))


class Refresher:
    """Background counts of accounts never counted, at most one at a time per account (per process)."""

    def __init__(self, clock: Clock, unused_days: int) -> None:
        self.clock, self.unused_days = clock, unused_days
        self.running: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()
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
