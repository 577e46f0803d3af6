"""Account health and adoption: a pure formula over plain counts, and the use case that gathers them.

Inputs (all for one account, now): per module the users who hold it and those who used one of its features in
the last ``days``; the seats of seat pools and how many are assigned; usage in the last ``days`` against the
``days`` before; purchase spend in the same two windows; paid modules (from orders or imports) and when their
grants end.

    breadth      = modules used by anyone / modules held by anyone                   (0..1)
    depth        = mean over held modules of (active users / holders)                (0..1)
    seats        = seats assigned / seats bought (1 when no seat pools)              (0..1)
    usage_trend  = (usage now - usage before) / max(usage before, 1)                 (-1..)
    spend_trend  = (spend now - spend before) / max(spend before, 1)
    score        = round(100 * (0.35 breadth + 0.25 depth + 0.20 seats + 0.20 clamp(0.5 + usage_trend / 2)))

Risk flags: ``unused_paid_module`` (a paid module none of its holders used in ``days``), ``falling_usage_before_
renewal`` (usage down by a fifth or more while a paid grant ends within ``days``), ``idle_seats`` (under half of
the bought seats assigned).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

import entitlements
from app.accounts import resolve_account
from app.accounts.models import User
from app.auth import Principal
from entitlements.domain import CatalogView
from suggest.models import SuggestionOutcome
from suggest.schemas import HealthRead, ModuleAdoptionRead, RiskCode, RiskRead

PAID_SOURCES = ("order", "import")
MAX_USERS = 50_000


@dataclass(frozen=True)
class Counts:
    holders: Mapping[str, int]  # module -> users holding it
    active: Mapping[str, int]  # module -> holders who used one of its features lately
    seats: int
    seats_assigned: int
    usage_now: int
    usage_before: int
    spend_now_minor: int
    spend_before_minor: int
    paid: Sequence[tuple[str, datetime | None]]  # (module, grant end) of paid grants


def _clamp(x: float) -> float:
    return max(0.0, min(1.0, x))


Risk = tuple[RiskCode, str, str | None]


def score(c: Counts, *, now: datetime, days: int) -> tuple[dict[str, float], int, list[Risk]]:
    """(figures, score 0..100, risk flags as (code, message, module)). Pure."""
    held = [m for m, n in c.holders.items() if n > 0]
    breadth = sum(1 for m in held if c.active.get(m, 0) > 0) / len(held) if held else 0.0
    depth = sum(c.active.get(m, 0) / c.holders[m] for m in held) / len(held) if held else 0.0
    seats = c.seats_assigned / c.seats if c.seats else 1.0
    usage_trend = (c.usage_now - c.usage_before) / max(c.usage_before, 1)
    spend_trend = (c.spend_now_minor - c.spend_before_minor) / max(c.spend_before_minor, 1)
    value = round(100 * (0.35 * breadth + 0.25 * depth + 0.20 * seats + 0.20 * _clamp(0.5 + usage_trend / 2)))
    risks: list[Risk] = []
    for module in sorted({m for m, _ in c.paid}):
        if c.holders.get(module, 0) > 0 and c.active.get(module, 0) == 0:
            risks.append(("unused_paid_module", f"Nobody used {module} in the last {days} days, and it is paid for.",
                          module))
    renewing = sorted({m for m, end in c.paid if end is not None and now < end <= now + timedelta(days=days)})
    if renewing and usage_trend <= -0.2:
        risks.append(("falling_usage_before_renewal", f"Usage fell by {round(-100 * usage_trend)}% while "
                      f"{', '.join(renewing)} {'ends' if len(renewing) == 1 else 'end'} within {days} days.", None))
    if c.seats and seats < 0.5:
        risks.append(("idle_seats", f"{c.seats_assigned} of {c.seats} bought seats are assigned.", None))
    figures = {"breadth": round(breadth, 4), "depth": round(depth, 4), "seat_utilisation": round(seats, 4),
               "usage_trend": round(usage_trend, 4), "spend_trend": round(spend_trend, 4)}
    return figures, value, risks


async def account_health(session: AsyncSession, principal: Principal, account_ref: str, *, view: CatalogView,
                         now: datetime, days: int = 30) -> HealthRead:
    """Adoption breadth and depth, seats, usage and spend trends, risk flags and the score of one account."""
    account = await resolve_account(session, principal, account_ref)
    a = account.account_id
    users = list(await session.scalars(select(User.user_id).where(User.account_id == a).limit(MAX_USERS)))
    holdings = await entitlements.account_holdings(session, a, users, now=now)
    used = await entitlements.active_features(session, a, since=now - timedelta(days=days))
    holders: dict[str, int] = {}
    active: dict[str, int] = {}
    for u, mods in holdings.items():
        for m in mods:
            holders[m] = holders.get(m, 0) + 1
            feats = frozenset(view.modules[m].features) if m in view.modules else frozenset()
            if used.get(u, frozenset()) & feats:
                active[m] = active.get(m, 0) + 1
    grants = await entitlements.service.list_grants(session, a, user_id=None, after=None, limit=10_000)
    live = [g for g in grants if g.starts_at <= now and (g.ends_at is None or g.ends_at > now) and g.revoked_at is None]
    series = await entitlements.account_usage_series(session, a, since=now - timedelta(days=2 * days),
                                                     max_users=MAX_USERS)
    now_total = sum(v[-1] for f in series.values() for v in f.values() if v)
    before_total = sum(v[-2] for f in series.values() for v in f.values() if len(v) >= 2)
    spend = {w: int(await session.scalar(select(func.coalesce(func.sum(SuggestionOutcome.amount_minor), 0)).where(
        SuggestionOutcome.account_id == a, SuggestionOutcome.kind == "purchase",
        SuggestionOutcome.at > now - timedelta(days=days * (w + 1)),
        SuggestionOutcome.at <= now - timedelta(days=days * w))) or 0) for w in (0, 1)}
    counts = Counts(holders=holders, active=active, seats=sum(g.seats or 0 for g in live),
                    seats_assigned=sum(g.seats_assigned for g in live if g.seats), usage_now=now_total,
                    usage_before=before_total, spend_now_minor=spend[0], spend_before_minor=spend[1],
                    paid=[(g.module, g.ends_at) for g in live if g.source in PAID_SOURCES])
    figures, value, risks = score(counts, now=now, days=days)
    return HealthRead(
        account=account.external_id, days=days, score=value, **figures, users=len(users),
        usage_now=now_total, usage_before=before_total, spend_now_minor=spend[0], spend_before_minor=spend[1],
        currency=account.currency,
        modules=[ModuleAdoptionRead(module=m, holders=holders[m], active_users=active.get(m, 0))
                 for m in sorted(holders)],
        risks=[RiskRead(code=c, message=msg, module=m) for c, msg, m in risks])
