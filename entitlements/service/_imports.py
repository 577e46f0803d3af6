"""Bulk writes of a vendor's past (history import): grants with past dates, usage and attempt events older
than the live backfill window. Idempotent by natural keys: a grant by (account, source, source_ref, module), an
event by (account, event id); a replayed row writes nothing. No limit is enforced (the past already happened)
and no domain event is published for the past; the process caches of the touched accounts are told at commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.ids import new_id
from entitlements.domain import CatalogView
from entitlements.service._changes import record_changes
from entitlements.service._staging import Periods, StagedEvent, merge_events


@dataclass(frozen=True)
class PastGrant:
    account_id: str
    user_id: str | None
    module: str
    source: str  # "import" (bought: counts as a purchase) or "admin"
    source_ref: str
    starts_at: datetime
    ends_at: datetime | None


class PastEvent(NamedTuple):
    account_id: str
    user_id: str
    event_id: str
    feature: str
    kind: str  # usage | attempt
    quantity: int
    occurred_at: datetime
    denied: bool = False  # an attempt that was a denied check


_INSERT_GRANTS = text("""
    INSERT INTO ent_grants (account_id, grant_id, user_id, module, source, source_ref, starts_at, ends_at, seats,
                            seats_assigned, created_at, updated_at)
    SELECT a, g, u, m, s, r, st, en, NULL, 0, :now, :now
      FROM unnest(CAST(:a AS text[]), CAST(:g AS text[]), CAST(:u AS text[]), CAST(:m AS text[]),
                  CAST(:s AS text[]), CAST(:r AS text[]), CAST(:st AS timestamptz[]), CAST(:en AS timestamptz[]))
           AS t(a, g, u, m, s, r, st, en)
    ON CONFLICT (account_id, source, source_ref, module) DO NOTHING
    RETURNING account_id, source_ref, module
""")


async def import_grants(session: AsyncSession, rows: list[PastGrant], *, now: datetime) -> set[tuple[str, str, str]]:
    """Insert the grants not yet there (one statement); returns (account, source_ref, module) of those inserted."""
    if not rows:
        return set()
    inserted = await session.execute(_INSERT_GRANTS, {
        "a": [g.account_id for g in rows], "g": [new_id("grt") for _ in rows], "u": [g.user_id for g in rows],
        "m": [g.module for g in rows], "s": [g.source for g in rows], "r": [g.source_ref for g in rows],
        "st": [g.starts_at for g in rows], "en": [g.ends_at for g in rows], "now": now})
    out = {(a, r, m) for a, r, m in inserted}
    await record_changes(session, [(a, None) for a in sorted({a for a, _, _ in out})])
    return out


async def import_events(session: AsyncSession, events: list[PastEvent], *, view: CatalogView, now: datetime,
                        ) -> set[str]:
    """Record past usage and attempt events once each (counters and demand per day, one COPY and one merge);
    returns the accounts that got a new event."""
    if not events:
        return set()
    unique = {(e.account_id, e.event_id): e for e in events}
    staged = [StagedEvent(a, eid, ev.user_id, ev.feature, ev.kind, ev.quantity, ev.occurred_at.astimezone(UTC),
                          None, ev.denied) for (a, eid), ev in unique.items()]
    old = await merge_events(session, staged, periods=Periods(view), now=now)
    accounts = {st.account_id for i, st in enumerate(staged) if i not in old}
    # one change per account, not per user: an import touches most users of the accounts it names
    await record_changes(session, [(a, None) for a in sorted(accounts)])
    return accounts
