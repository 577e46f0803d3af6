"""Reading a user's snapshot (grants, seats, counters) and the catalog view from the database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Account, User
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
from entitlements.models import Grant, UsageCounter
from entitlements.service._grants import held_by, trials_used


async def catalog_view(session: AsyncSession, holder: CatalogHolder | None = None) -> CatalogView:
    """The live catalog, from the process cache when warm (it is small: at most 500 modules)."""
    if holder is not None and (view := holder.current()) is not None:
        return view
    generation = holder.generation if holder is not None else 0
    view = CatalogView.build(await catalog.load_live(session))
    if holder is not None:
        holder.put(view, generation)
    return view


async def load_snapshot(session: AsyncSession, user_ref: str, *, now: datetime, view: CatalogView) -> Snapshot | None:
    """Resolve one user's snapshot from the database (None for an unknown user): three small queries."""
    found = (await session.execute(
        select(User.account_id, User.user_id, User.roles, Account.external_id, Account.segment, Account.region,
               Account.currency).join(Account, Account.account_id == User.account_id)
        .where(User.external_id == user_ref))).first()
    if found is None:
        return None
    account_id, user_id, roles, account_ref, segment, region, currency = found
    rows = (await session.execute(select(
        Grant.grant_id, Grant.module, Grant.user_id, Grant.seats, Grant.starts_at, Grant.ends_at, Grant.revoked_at,
    ).where(*held_by(account_id, user_id, now)))).all()
    held: list[HeldGrant] = []
    boundaries: list[datetime | None] = []
    for grant_id, module, g_user, seats, starts_at, ends_at, revoked_at in rows:
        boundaries += [starts_at, ends_at, revoked_at]
        if starts_at > now:
            continue
        subject: Subject = "user" if g_user is not None else ("seat" if seats is not None else "account")
        held.append(HeldGrant(grant_id=grant_id, module=module, subject=subject, starts_at=starts_at))
    features = resolve(held, view)
    counters = (await session.execute(select(UsageCounter.feature, UsageCounter.period_start,
                                             UsageCounter.period_end, UsageCounter.used).where(
        UsageCounter.account_id == account_id, UsageCounter.user_id == user_id,
        UsageCounter.period_start <= now, UsageCounter.period_end > now))).all()
    used = {f: (start, end, n) for f, start, end, n in counters}
    trials = await trials_used(session, account_id, user_id)
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
