"""Usage alerts, told once per episode: ``usage.limit_near`` (a user has used 80 % of a limit this period) and
``entitlement.unused`` (a paid module not used by its holder for N days).

Found by a sweep (a job of the app, ``commerce entitlements sweep``), never on the ingestion path: a batch of
usage stays one statement, and an alert needs the user's summed limit, which the sweep computes in SQL for all
candidates at once. Each episode is a row of ``ent_usage_alerts``; the partial unique index on open episodes
decides which of two concurrent sweeps tells it, so an alert is published once whatever runs in parallel.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import Clock
from app.events import publish
from app.ids import new_id
from catalog.spec import LimitFeature
from entitlements.domain import CatalogView
from entitlements.events import EntitlementUnused, UsageLimitNear

LIMIT_NEAR_PCT = 80
LIMIT_NEAR = "usage.limit_near"
UNUSED = "entitlement.unused"
PAID_SOURCES = ("order", "import")
ALERT_BATCH = 1000
# A counter is looked at while it changed within this window (and its period is current): a sweep that was
# down longer than this misses the episodes that began meanwhile.
LOOKBACK = timedelta(days=1)

# Summed limits per candidate in SQL, as ``resolve`` sums them: every active grant reaching the user (its own,
# account-wide, an assigned seat) adds its module's limit for the feature once. The batch bounds what is told,
# not what is looked at: users far from their own (larger) limits never crowd out those near theirs.
_NEAR = text("""
    WITH ml AS (
        SELECT * FROM unnest(CAST(:mm AS text[]), CAST(:mf AS text[]), CAST(:ml AS bigint[])) AS t(module, feature, lim)
    ), cand AS (
        SELECT c.account_id, c.user_id, c.feature, c.period_start, c.period_end, c.used,
               c.user_id || ' ' || c.feature || ' ' || to_char(c.period_start AT TIME ZONE 'UTC',
                                                                'YYYY-MM-DD"T"HH24:MI:SS') AS subject
          FROM ent_usage_counters c
          JOIN unnest(CAST(:ff AS text[]), CAST(:fl AS bigint[])) AS fl(feature, floor_used) ON fl.feature = c.feature
         WHERE c.period_start <= :now AND c.period_end > :now AND c.updated_at >= :since AND c.used >= fl.floor_used
    ), fresh AS (
        SELECT cand.* FROM cand
         WHERE NOT EXISTS (SELECT 1 FROM ent_usage_alerts a WHERE a.account_id = cand.account_id
                              AND a.kind = 'usage.limit_near' AND a.subject = cand.subject AND a.closed_at IS NULL)
    ), lim AS (
        SELECT f.account_id, f.subject, sum(ml.lim) AS lim
          FROM fresh f
          JOIN ent_grants g ON g.account_id = f.account_id AND g.starts_at <= :now
               AND (g.ends_at IS NULL OR g.ends_at > :now) AND (g.revoked_at IS NULL OR g.revoked_at > :now)
               AND (g.user_id = f.user_id OR g.user_id IS NULL)
               AND (g.seats IS NULL OR EXISTS (
                        SELECT 1 FROM ent_seat_assignments s WHERE s.account_id = f.account_id
                           AND s.grant_id = g.grant_id AND s.user_id = f.user_id))
          JOIN ml ON ml.module = g.module AND ml.feature = f.feature
         GROUP BY f.account_id, f.subject
    )
    SELECT f.account_id, f.user_id, f.feature, f.period_start, f.period_end, f.used, CAST(lim.lim AS bigint), f.subject
      FROM fresh f JOIN lim ON lim.account_id = f.account_id AND lim.subject = f.subject
     WHERE lim.lim > 0 AND f.used * 100 >= :pct * lim.lim
     ORDER BY f.account_id, f.subject LIMIT :batch
""")

_OPEN = text("""
    INSERT INTO ent_usage_alerts (account_id, alert_id, kind, subject, opened_at)
    SELECT a, i, :kind, s, :now FROM unnest(CAST(:a AS text[]), CAST(:i AS text[]), CAST(:s AS text[])) AS t(a, i, s)
    ON CONFLICT (account_id, kind, subject) WHERE closed_at IS NULL DO NOTHING
    RETURNING account_id, subject
""")

# Used = a counter of one of the module's features with some use, by the holder (anyone in the account for an
# account-wide grant or seat pool), in a period that overlaps the last N days.
_UNUSED = text("""
    WITH mf AS (SELECT * FROM unnest(CAST(:um AS text[]), CAST(:uf AS text[])) AS t(module, feature))
    SELECT g.account_id, g.grant_id, g.user_id, g.module, g.source, g.starts_at FROM ent_grants g
     WHERE g.source = ANY(CAST(:sources AS text[])) AND g.starts_at <= :cutoff
       AND (g.ends_at IS NULL OR g.ends_at > :now) AND (g.revoked_at IS NULL OR g.revoked_at > :now)
       AND EXISTS (SELECT 1 FROM mf WHERE mf.module = g.module)
       AND NOT EXISTS (SELECT 1 FROM ent_usage_alerts a WHERE a.account_id = g.account_id
                          AND a.kind = 'entitlement.unused' AND a.subject = g.grant_id AND a.closed_at IS NULL)
       AND NOT EXISTS (SELECT 1 FROM ent_usage_counters c JOIN mf ON mf.feature = c.feature AND mf.module = g.module
                        WHERE c.account_id = g.account_id AND (g.user_id IS NULL OR c.user_id = g.user_id)
                          AND c.period_end > :cutoff AND c.used > 0)
     ORDER BY g.account_id, g.grant_id LIMIT :batch
""")

# An idle spell ends when the grant does, or when one of its features is used after the alert was sent.
_CLOSE = text("""
    WITH mf AS (SELECT * FROM unnest(CAST(:um AS text[]), CAST(:uf AS text[])) AS t(module, feature))
    UPDATE ent_usage_alerts a SET closed_at = :now
      FROM ent_grants g
     WHERE a.kind = 'entitlement.unused' AND a.closed_at IS NULL
       AND g.account_id = a.account_id AND g.grant_id = a.subject
       AND ((g.ends_at IS NOT NULL AND g.ends_at <= :now) OR (g.revoked_at IS NOT NULL AND g.revoked_at <= :now)
            OR EXISTS (SELECT 1 FROM ent_usage_counters c JOIN mf ON mf.feature = c.feature AND mf.module = g.module
                        WHERE c.account_id = g.account_id AND (g.user_id IS NULL OR c.user_id = g.user_id)
                          AND c.updated_at > a.opened_at AND c.used > 0))
""")


def _limit_tables(view: CatalogView) -> tuple[dict[str, list[object]], dict[str, list[object]]]:
    """(module, feature, limit) of every limit a module grants, and per limit feature the least usage that can
    be 80 % of some holding (80 % of its smallest grantable limit): counters below it are not looked at."""
    mm: list[object] = []
    mf: list[object] = []
    ml: list[object] = []
    smallest: dict[str, int] = {}
    for module in view.modules.values():
        for key, value in module.features.items():
            feature = view.features.get(key)
            granted = isinstance(value, int) and not isinstance(value, bool) and value > 0
            if isinstance(feature, LimitFeature) and granted and isinstance(value, int):
                mm.append(module.key)
                mf.append(key)
                ml.append(value)
                smallest[key] = min(value, smallest.get(key, value))
    least: list[object] = [-(-v * LIMIT_NEAR_PCT // 100) for v in smallest.values()]  # 80 % rounded up
    floors: dict[str, list[object]] = {"ff": list(smallest), "fl": least}
    return {"mm": mm, "mf": mf, "ml": ml}, floors


def _module_features(view: CatalogView) -> dict[str, list[object]]:
    um: list[object] = []
    uf: list[object] = []
    for module in view.modules.values():
        for key in module.features:
            if key in view.features:
                um.append(module.key)
                uf.append(key)
    return {"um": um, "uf": uf}


async def _open(session: AsyncSession, kind: str, rows: list[tuple[str, str]], now: datetime) -> set[tuple[str, str]]:
    """Open an episode per (account, subject) not open yet; returns those this call opened."""
    if not rows:
        return set()
    opened = await session.execute(_OPEN, {"kind": kind, "now": now, "a": [a for a, _ in rows],
                                           "i": [new_id("ual") for _ in rows], "s": [s for _, s in rows]})
    return {(a, s) for a, s in opened}


async def alert_limits_near(session: AsyncSession, *, view: CatalogView, clock: Clock) -> int:
    """One bounded pass: ``usage.limit_near`` for each current counter at 80 % of the user's summed limit."""
    now = clock.now()
    limits, floors = _limit_tables(view)
    if not floors["ff"]:
        return 0
    rows = (await session.execute(_NEAR, {**limits, **floors, "now": now, "since": now - LOOKBACK,
                                          "batch": ALERT_BATCH, "pct": LIMIT_NEAR_PCT})).all()
    opened = await _open(session, LIMIT_NEAR, [(r[0], r[7]) for r in rows], now)
    for account_id, user_id, feature, start, end, used, limit, subject in rows:
        if (account_id, subject) in opened:
            await publish(session, UsageLimitNear(user_id=user_id, feature=feature, used=used, limit=limit,
                                                  threshold_pct=LIMIT_NEAR_PCT, period_start=start, period_end=end),
                          clock=clock, account_id=account_id)
    return len(opened)


async def alert_unused(session: AsyncSession, *, view: CatalogView, clock: Clock, unused_days: int,
                       ) -> tuple[int, int]:
    """One bounded pass: close idle spells that ended, then ``entitlement.unused`` for paid grants newly idle
    for ``unused_days``; returns (opened, closed)."""
    now = clock.now()
    features = _module_features(view)
    result = await session.execute(_CLOSE, {**features, "now": now})
    closed = int(getattr(result, "rowcount", 0) or 0)
    rows = (await session.execute(_UNUSED, {**features, "now": now, "cutoff": now - timedelta(days=unused_days),
                                            "sources": list(PAID_SOURCES), "batch": ALERT_BATCH})).all()
    opened = await _open(session, UNUSED, [(r[0], r[1]) for r in rows], now)
    for account_id, grant_id, user_id, module, source, starts_at in rows:
        if (account_id, grant_id) in opened:
            await publish(session, EntitlementUnused(grant_id=grant_id, user_id=user_id, module=module, source=source,
                                                     starts_at=starts_at, unused_days=unused_days, detected_at=now),
                          clock=clock, account_id=account_id)
    return len(opened), closed


async def sweep_alerts(session: AsyncSession, *, view: CatalogView, clock: Clock, unused_days: int,
                       ) -> dict[str, int]:
    """One bounded pass of both alerts (repeat while it finds something: each pass handles a batch)."""
    near = await alert_limits_near(session, view=view, clock=clock)
    unused, _ = await alert_unused(session, view=view, clock=clock, unused_days=unused_days)
    return {LIMIT_NEAR: near, UNUSED: unused}
