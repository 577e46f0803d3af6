"""Bulk writes of a vendor's past (history import): grants with past dates, usage and attempt events older
than the live backfill window. Idempotent by natural keys: a grant by (account, source, source_ref, module), an
event by (account, event id); a replayed row writes nothing. No limit is enforced (the past already happened)
and no domain event is published for the past; the process caches of the touched accounts are told at commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.ids import new_id
from entitlements.domain import CatalogView
from entitlements.service._changes import record_changes
from entitlements.service._staging import Periods, add_usage, merge_columns


@dataclass(frozen=True)
class PastGrant:
    account_id: str
    user_id: str | None
    module: str
    source: str  # "import" (bought: counts as a purchase) or "admin"
    source_ref: str
    starts_at: datetime
    ends_at: datetime | None


class PastEvents:
    """A batch of past usage and attempt events as columns (thousands a batch: no object per event); an event
    id the batch already holds for the account is skipped."""

    def __init__(self, view: CatalogView) -> None:
        self._periods = Periods(view)
        self._keys: set[tuple[str, str]] = set()
        self.a: list[str] = []
        self.e: list[str] = []
        self.u: list[str] = []
        self.f: list[str] = []
        self.k: list[str] = []
        self.q: list[int] = []
        self.o: list[datetime] = []
        self.dn: list[bool] = []
        self.p: list[datetime] = []
        self.pe: list[datetime] = []

    def __len__(self) -> int:
        return len(self.a)

    def add(self, account_id: str, user_id: str, event_id: str, feature: str, kind: str, quantity: int,
            occurred_at: datetime, *, denied: bool = False) -> None:
        """``kind``: usage | attempt; ``denied``: an attempt that was a denied check."""
        key = (account_id, event_id)
        if key in self._keys:
            return
        self._keys.add(key)
        at = occurred_at.astimezone(UTC)
        start, end = self._periods.of(feature, at)
        self.a.append(account_id)
        self.e.append(event_id)
        self.u.append(user_id)
        self.f.append(feature)
        self.k.append(kind)
        self.q.append(quantity)
        self.o.append(at)
        self.dn.append(denied)
        self.p.append(start)
        self.pe.append(end)

    def columns(self) -> dict[str, Sequence[object]]:
        return {"a": self.a, "e": self.e, "u": self.u, "f": self.f, "k": self.k, "q": self.q, "o": self.o,
                "pr": [None] * len(self.a), "dn": self.dn, "p": self.p, "pe": self.pe}


class ImportedUsage:
    """The counters and daily demand of an import's new events, summed across its batches in the process and
    written once at its end (``write``): batch by batch, every batch would update the same counter rows again."""

    def __init__(self) -> None:
        self.usage: dict[tuple[str, str, str, datetime], tuple[datetime, int]] = {}
        self.demand: dict[tuple[str, str, str, date], tuple[int, int]] = {}

    def add(self, ev: PastEvents, old: set[int]) -> None:
        usage, demand = self.usage, self.demand
        for i, (a, u, f, k, q, o, dn, p, pe) in enumerate(zip(ev.a, ev.u, ev.f, ev.k, ev.q, ev.o, ev.dn, ev.p, ev.pe,
                                                               strict=True)):
            if i in old:
                continue
            if k == "usage":
                key = (a, u, f, p)
                hit = usage.get(key)
                usage[key] = (pe, q if hit is None else hit[1] + q)
            else:
                day = (a, u, f, o.date())
                d, n = demand.get(day, (0, 0))
                demand[day] = (d + q, n) if dn else (d, n + q)

    async def write(self, session: AsyncSession, *, now: datetime) -> None:
        await add_usage(session, self.usage, self.demand, now=now)
        self.usage, self.demand = {}, {}


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


async def import_events(session: AsyncSession, events: PastEvents, *, now: datetime,
                        sums: ImportedUsage | None = None) -> set[str]:
    """Record past usage and attempt events once each (one merge statement); their counters and demand per day
    are added at once, or with ``sums`` summed there for one write at the import's end. Returns the accounts that
    got a new event."""
    if not len(events):
        return set()
    old = await merge_columns(session, events.columns(), now=now, events_only=sums is not None)
    if sums is not None:
        sums.add(events, old)
    new = {a for i, a in enumerate(events.a) if i not in old}
    # one change per account, not per user: an import touches most users of the accounts it names
    await record_changes(session, [(a, None) for a in sorted(new)])
    return new
