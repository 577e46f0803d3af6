"""Bulk writes of a vendor's past (history import): grants with past dates, usage and attempt events older
than the live backfill window. Idempotent by natural keys: a grant by (account, source, source_ref, module), an
event by (account, event id); a replayed row writes nothing. No limit is enforced (the past already happened)
and no domain event is published for the past; the process caches of the touched accounts are told at commit.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.ids import new_id
from app.notify import notify_many
from entitlements.domain import CatalogView, counter_period, period_bounds
from entitlements.models import Grant
from entitlements.service._grants import TOPIC
from entitlements.service._usage import _ADD_COUNTERS, _INSERT_EVENTS, add_signals


@dataclass(frozen=True)
class PastGrant:
    account_id: str
    user_id: str | None
    module: str
    source: str  # "import" (bought: counts as a purchase) or "admin"
    source_ref: str
    starts_at: datetime
    ends_at: datetime | None


@dataclass(frozen=True)
class PastEvent:
    account_id: str
    user_id: str
    event_id: str
    feature: str
    kind: str  # usage | attempt
    quantity: int
    occurred_at: datetime
    denied: bool = False  # an attempt that was a denied check


async def import_grants(session: AsyncSession, rows: list[PastGrant], *, now: datetime) -> set[tuple[str, str, str]]:
    """Insert the grants not yet there; returns (account, source_ref, module) of those inserted."""
    if not rows:
        return set()
    inserted = await session.execute(
        pg_insert(Grant).values([
            {"account_id": g.account_id, "grant_id": new_id("grt"), "user_id": g.user_id, "module": g.module,
             "source": g.source, "source_ref": g.source_ref, "starts_at": g.starts_at, "ends_at": g.ends_at,
             "seats": None, "seats_assigned": 0, "created_at": now, "updated_at": now} for g in rows])
        .on_conflict_do_nothing(index_elements=["account_id", "source", "source_ref", "module"])
        .returning(Grant.account_id, Grant.source_ref, Grant.module))
    out = {(a, r, m) for a, r, m in inserted}
    await notify_many(session, TOPIC, sorted({a for a, _, _ in out}))
    return out


async def import_events(session: AsyncSession, events: list[PastEvent], *, view: CatalogView, now: datetime,
                        ) -> int:
    """Record past usage and attempt events once each (counters and demand per day); returns how many were new."""
    if not events:
        return 0
    bounds: dict[tuple[str, datetime], tuple[datetime, datetime]] = {}

    def period_of(feature: str, at: datetime) -> tuple[datetime, datetime]:
        key = (feature, at)
        if key not in bounds:
            bounds[key] = period_bounds(counter_period(view.features[feature]), at)
        return bounds[key]

    unique = {(e.account_id, e.event_id): e for e in events}
    cols: dict[str, list[object]] = {c: [] for c in ("a", "e", "u", "f", "k", "q", "o", "p", "pr")}
    for (a, eid), ev in unique.items():
        for c, v in zip(cols, (a, eid, ev.user_id, ev.feature, ev.kind, ev.quantity, ev.occurred_at,
                               period_of(ev.feature, ev.occurred_at)[0], None), strict=True):
            cols[c].append(v)
    inserted = (await session.execute(_INSERT_EVENTS, {**cols, "now": now})).all()
    usage: dict[tuple[str, str, str, datetime], tuple[datetime, int]] = {}
    demand: dict[tuple[str, str, str, date], tuple[int, int]] = defaultdict(lambda: (0, 0))
    for a, eid in inserted:
        ev = unique[(a, eid)]
        if ev.kind == "attempt":
            d, t = demand[(a, ev.user_id, ev.feature, ev.occurred_at.date())]
            demand[(a, ev.user_id, ev.feature, ev.occurred_at.date())] = (
                (d + ev.quantity, t) if ev.denied else (d, t + ev.quantity))
            continue
        start, end = period_of(ev.feature, ev.occurred_at)
        key = (a, ev.user_id, ev.feature, start)
        usage[key] = (end, usage.get(key, (end, 0))[1] + ev.quantity)
    if usage:
        keys = sorted(usage)  # a fixed lock order, as live ingestion does
        await session.execute(_ADD_COUNTERS, {
            "a": [k[0] for k in keys], "u": [k[1] for k in keys], "f": [k[2] for k in keys],
            "s": [k[3] for k in keys], "e": [usage[k][0] for k in keys], "n": [usage[k][1] for k in keys],
            "now": now})
    if demand:
        await add_signals(session, dict(demand), now=now)
    await notify_many(session, TOPIC, sorted({f"{k[0]}:{k[1]}" for k in usage}))
    return len(inserted)
