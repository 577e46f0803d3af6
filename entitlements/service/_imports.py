"""Bulk writes of a vendor's past (history import): grants with past dates, usage and attempt events older
than the live backfill window. Idempotent by natural keys: a grant by (account, source, source_ref, module), an
event by (account, event id); a replayed row writes nothing. No limit is enforced (the past already happened)
and no domain event is published for the past; the process caches of the touched accounts are told at commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.ids import new_id
from entitlements.domain import CatalogView
from entitlements.service._changes import record_changes
from entitlements.service._staging import Periods, merge_columns


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
        self.columns: dict[str, list[object]] = {k: [] for k in ("a", "e", "u", "f", "k", "q", "o", "pr", "dn", "p",
                                                                   "pe")}
        c = self.columns
        self._append = (c["a"].append, c["e"].append, c["u"].append, c["f"].append, c["k"].append, c["q"].append,
                        c["o"].append, c["pr"].append, c["dn"].append, c["p"].append, c["pe"].append)

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, account_id: str, user_id: str, event_id: str, feature: str, kind: str, quantity: int,
            occurred_at: datetime, *, denied: bool = False) -> None:
        """``kind``: usage | attempt; ``denied``: an attempt that was a denied check."""
        key = (account_id, event_id)
        if key in self._keys:
            return
        self._keys.add(key)
        at = occurred_at.astimezone(UTC)
        start, end = self._periods.of(feature, at)
        a, e, u, f, k, q, o, pr, dn, p, pe = self._append
        a(account_id)
        e(event_id)
        u(user_id)
        f(feature)
        k(kind)
        q(quantity)
        o(at)
        pr(None)
        dn(denied)
        p(start)
        pe(end)


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


async def import_events(session: AsyncSession, events: PastEvents, *, now: datetime) -> set[str]:
    """Record past usage and attempt events once each (counters and demand per day, one merge statement);
    returns the accounts that got a new event."""
    if not len(events):
        return set()
    accounts = events.columns["a"]
    old = await merge_columns(session, events.columns, now=now)
    new = {a for i, a in enumerate(accounts) if i not in old}
    # one change per account, not per user: an import touches most users of the accounts it names
    await record_changes(session, [(str(a), None) for a in sorted(str(a) for a in new)])
    return {str(a) for a in new}
