"""Reading a user's snapshot (grants, seats, counters) and the catalog view from the database."""

from __future__ import annotations

from datetime import datetime

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from catalog import service as catalog
from entitlements.cache import CatalogHolder
from entitlements.domain import (
    CatalogView,
    HeldGrant,
    Snapshot,
    Subject,
    next_boundary,
    period_bounds,
    resolve,
    snapshot_version,
)


async def catalog_view(session: AsyncSession, holder: CatalogHolder | None = None) -> CatalogView:
    """The live catalog, from the process cache when warm (it is small: at most 500 modules)."""
    if holder is not None and (view := holder.current()) is not None:
        return view
    generation = holder.generation if holder is not None else 0
    view = CatalogView.build(await catalog.load_live(session))
    if holder is not None:
        holder.put(view, generation)
    return view


# One round trip: the user and its account, the grants reaching it (own, account-wide, assigned seat; not ended,
# as ``held_by``, whose note says why the condition reads as it does), its current counters and the trials it (or
# its account) had, the lists as JSON arrays.
_SNAPSHOT = text("""
    SELECT u.account_id, u.user_id, u.roles, a.external_id, a.segment, a.region, a.currency,
           CAST((SELECT coalesce(json_agg(json_build_array(g.grant_id, g.module, g.user_id, g.seats, g.starts_at,
                                                           g.ends_at, g.revoked_at) ORDER BY g.grant_id), '[]')
                   FROM ent_grants g
                  WHERE g.account_id = u.account_id AND (g.ends_at IS NULL OR g.ends_at > :now)
                    AND (g.revoked_at IS NULL OR g.revoked_at > :now)
                    AND (g.user_id = u.user_id OR g.user_id IS NULL)
                    AND (g.seats IS NULL OR EXISTS (
                             SELECT 1 FROM ent_seat_assignments s WHERE s.account_id = u.account_id
                                AND s.grant_id = g.grant_id AND s.user_id = u.user_id))) AS text),
           CAST((SELECT coalesce(json_agg(json_build_array(c.feature, c.period_start, c.period_end, c.used)), '[]')
                   FROM ent_usage_counters c
                  WHERE c.account_id = u.account_id AND c.user_id = u.user_id AND c.period_start <= :now
                    AND c.period_end > :now) AS text),
           CAST((SELECT coalesce(json_agg(DISTINCT t.module), '[]') FROM ent_trials t
                  WHERE t.account_id = u.account_id AND t.subject IN (u.user_id, '*')) AS text)
      FROM users u JOIN accounts a ON a.account_id = u.account_id
     WHERE u.external_id = :ref
""")
_GRANTS = msgspec.json.Decoder(list[tuple[str, str, str | None, int | None, datetime, datetime | None,
                                          datetime | None]])
_COUNTERS = msgspec.json.Decoder(list[tuple[str, datetime, datetime, int]])
_MODULES = msgspec.json.Decoder(list[str])


async def load_snapshot(session: AsyncSession, user_ref: str, *, now: datetime, view: CatalogView) -> Snapshot | None:
    """Resolve one user's snapshot from the database (None for an unknown user): one statement."""
    found = (await session.execute(_SNAPSHOT, {"ref": user_ref, "now": now})).first()
    if found is None:
        return None
    account_id, user_id, roles, account_ref, segment, region, currency, grants_json, counters_json, trials_json = found
    rows = _GRANTS.decode(grants_json)
    held: list[HeldGrant] = []
    boundaries: list[datetime | None] = []
    for grant_id, module, g_user, seats, starts_at, ends_at, revoked_at in rows:
        boundaries += [starts_at, ends_at, revoked_at]
        if starts_at > now:
            continue
        subject: Subject = "user" if g_user is not None else ("seat" if seats is not None else "account")
        held.append(HeldGrant(grant_id=grant_id, module=module, subject=subject, starts_at=starts_at))
    features = resolve(held, view)
    used = {f: (start, end, n) for f, start, end, n in _COUNTERS.decode(counters_json)}
    trials = frozenset(_MODULES.decode(trials_json))
    for state in features.values():
        if state.period is not None:
            boundaries.append(period_bounds(state.period, now)[1])
    boundaries += [end for _, end, _ in used.values()]
    # Every period starts on a UTC midnight: reloading then keeps the period of ungranted features right too.
    boundaries.append(period_bounds("day", now)[1])
    snap = Snapshot(
        user_ref=user_ref, account_ref=account_ref, account_id=account_id, user_id=user_id,
        roles=frozenset(roles), segment=segment, region=region, currency=currency,
        catalog_revision=view.revision, computed_at=now, valid_until=next_boundary(now, boundaries),
        modules=frozenset(g.module for g in held), features=features, used=used, trials_used=trials,
    )
    snap.version = snapshot_version(snap)
    return snap
