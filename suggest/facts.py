"""Gathering what the engine needs about one user, as plain values. The user's facts are two statements, one
per package that owns them (``entitlements.user_activity``: demand, usage, recent grants, purchases; ``stored``:
peer statistics, frequency cap, dismissals, outcomes); the catalog and the segment's sums come from process
caches; peer statistics are precomputed aggregates, never counted on the request path."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import NamedTuple

import msgspec
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

import entitlements
from app.accounts.models import Account
from billing.domain.periods import Interval, period_of
from billing.domain.pricing import PriceModel
from catalog.domain import Audience, availability
from catalog.spec import LimitFeature, MeteredPrice, OneTimePrice, RecurringPrice
from entitlements.domain import CatalogView, Snapshot
from suggest import peers
from suggest.engine import Candidate, Respect, UserFacts
from suggest.models import SegmentPair, SegmentRole, SegmentStat
from suggest.peers import Refresher
from suggest.signals import FeatureInfo, ModuleInfo, PeerCount, median

HISTORY_MONTHS = 3
OLDER_DAYS = 90  # demand before the signal window is read back to this many days


@dataclass(frozen=True)
class PriceChoice:
    price_id: str
    model: PriceModel
    interval: Interval | None
    amount_minor: int  # per period (recurring), once (one-time), 0 (metered)
    per_seat: bool

    @property
    def monthly_minor(self) -> int | None:
        """Monthly equivalent for comparisons: yearly and one-time over 12 months (half up); metered: None."""
        if self.model == "metered":
            return None
        if self.model == "recurring" and self.interval == "month":
            return self.amount_minor
        return (self.amount_minor + 6) // 12


def pick_price(view: CatalogView, module: str, currency: str) -> PriceChoice | None:
    """The price line a purchase would use: monthly, else yearly, one-time, metered (as the quote does)."""
    best: tuple[int, str, PriceChoice] | None = None
    for (mk, _), lp in view.live.prices.items():
        p = lp.price
        if mk != module or p.currency != currency:
            continue
        if isinstance(p, RecurringPrice):
            choice = PriceChoice(lp.price_id, "recurring", p.interval, p.amount_minor, p.per_seat)
            rank = 0 if p.interval == "month" else 1
        elif isinstance(p, OneTimePrice):
            choice, rank = PriceChoice(lp.price_id, "one_time", None, p.amount_minor, False), 2
        else:
            assert isinstance(p, MeteredPrice)
            choice, rank = PriceChoice(lp.price_id, "metered", p.interval, 0, False), 3
        if best is None or (rank, lp.price_id) < best[:2]:
            best = (rank, lp.price_id, choice)
    return best[2] if best else None


def catalog_infos(view: CatalogView) -> tuple[dict[str, FeatureInfo], dict[str, ModuleInfo]]:
    features = {k: FeatureInfo(key=k, name=f.name, kind=str(f.__struct_config__.tag),
                               unit=f.unit if isinstance(f, LimitFeature) else None,
                               period=f.period if isinstance(f, LimitFeature) else None)
                for k, f in view.features.items()}
    modules = {k: ModuleInfo(key=k, name=m.name, category=m.category, features=dict(m.features),
                             requires=tuple(m.requires), trial_days=m.trial_days)
               for k, m in view.modules.items() if m.status == "active"}
    return features, modules


def candidates(view: CatalogView, snap: Snapshot, account: Account, modules: Mapping[str, ModuleInfo],
               prices: Mapping[str, PriceChoice | None], restricted: frozenset[str]) -> list[Candidate]:
    """Active modules the availability policy shows this user and the guardrails' role rules allow
    (owned ones included: they may come back as adoption nudges)."""
    who = Audience(roles=snap.roles, segment=account.segment, region=account.region, owned=snap.modules)
    out = []
    for key, info in sorted(modules.items()):
        if key in restricted and key not in snap.modules:
            continue
        has_any = any(mk == key for mk, _ in view.live.prices)
        decision = availability(view.live.doc, view.modules[key], who, has_price=prices.get(key) is not None or
                                not has_any)
        if decision.effect == "hidden":
            continue
        price = prices.get(key)
        out.append(Candidate(module=info, effect=decision.effect,
                             amount_minor=price.monthly_minor if price else None))
    return out


@dataclass(frozen=True)
class SegmentFacts:
    peers: dict[tuple[str, str], PeerCount]  # (role, module) -> owners among every user with the role
    pairs: dict[tuple[str, str], int]
    owners: dict[str, int]  # module -> owners in the segment
    role_users: dict[str, int]  # role (and peers.ALL) -> users in the segment's recounted accounts


async def segment_facts(session: AsyncSession, segment: str) -> SegmentFacts:
    """(role, module) -> peers in the segment; co-owned pairs; owners per module; users per role."""
    role_users = {r: int(n) for r, n in await session.execute(
        select(SegmentRole.role, SegmentRole.users).where(SegmentRole.segment == segment))}
    seg = {(r, m): PeerCount(owners=o, users=role_users.get(r, n)) for r, m, o, n in await session.execute(
        select(SegmentStat.role, SegmentStat.module, SegmentStat.owners, SegmentStat.role_users)
        .where(SegmentStat.segment == segment))}
    pairs: dict[tuple[str, str], int] = {}
    owners: dict[str, int] = {}
    for ma, mb, n in await session.execute(select(SegmentPair.module_a, SegmentPair.module_b, SegmentPair.users)
                                           .where(SegmentPair.segment == segment)):
        if ma == mb:
            owners[ma] = n
        else:
            pairs[(ma, mb)] = n
    return SegmentFacts(seg, pairs, owners, role_users)


class OutcomeRow(NamedTuple):
    user_id: str
    kind: str
    module: str
    amount_minor: int
    at: datetime


@dataclass(frozen=True)
class Stored:
    """This package's rows about one user and its account, read in one statement (``stored``)."""

    team: list[tuple[str, str, int, int, int]]  # (role, module, role users, owners, active owners) of its roles
    everyone: int | None  # users of the account (the recount's "*" row), None before the first recount
    owners: list[tuple[str, int]]  # (module, owners in the account)
    shown: int  # answers on this surface within the cap window
    dismissed: frozenset[str]  # modules dismissed within the cooldown
    outcomes: list[OutcomeRow]  # the account's outcomes of the last year, newest first


_STORED = text("""
    SELECT CAST((SELECT coalesce(json_agg(json_build_array(role, module, role_users, owners, active_owners)), '[]')
                   FROM sug_peer_stats WHERE account_id = :a AND role = ANY(CAST(:roles AS text[]))) AS text),
           (SELECT users FROM sug_role_stats WHERE account_id = :a AND role = :all),
           CAST((SELECT coalesce(json_agg(json_build_array(module_a, users)), '[]')
                   FROM sug_pair_stats WHERE account_id = :a AND module_a = module_b) AS text),
           (SELECT count(DISTINCT request_id) FROM sug_impressions
             WHERE :cap > 0 AND account_id = :a AND user_id = :u AND surface = :surface AND shown_at > :cap_since),
           CAST((SELECT coalesce(json_agg(DISTINCT module), '[]') FROM sug_feedback
                  WHERE account_id = :a AND user_id = :u AND action = 'dismiss' AND at > :dismiss_since) AS text),
           CAST((SELECT coalesce(json_agg(json_build_array(user_id, kind, module, amount_minor, at)), '[]')
                   FROM (SELECT user_id, kind, module, amount_minor, at FROM sug_outcomes
                          WHERE account_id = :a AND at > :outcomes_since ORDER BY at DESC LIMIT 1000) o) AS text)
""")
_TEAM = msgspec.json.Decoder(list[tuple[str, str, int, int, int]])
_OWNERS = msgspec.json.Decoder(list[tuple[str, int]])
_MODULES = msgspec.json.Decoder(list[str])
_OUTCOMES = msgspec.json.Decoder(list[OutcomeRow])


async def stored(session: AsyncSession, account_id: str, user_id: str, *, roles: tuple[str, ...], surface: str,
                 now: datetime, cap: int, cap_hours: int, cooldown_days: int) -> Stored:
    """Peer statistics of the user's roles and account, the frequency cap's count, dismissals and the account's
    outcomes: one round trip (each part bounded by its table's key)."""
    row = (await session.execute(_STORED, {
        "a": account_id, "u": user_id, "roles": list(roles), "all": peers.ALL, "surface": surface, "cap": cap,
        "cap_since": now - timedelta(hours=cap_hours), "dismiss_since": now - timedelta(days=cooldown_days),
        "outcomes_since": now - timedelta(days=365)})).one()
    return Stored(team=_TEAM.decode(row[0]), everyone=row[1], owners=_OWNERS.decode(row[2]), shown=int(row[3] or 0),
                  dismissed=frozenset(_MODULES.decode(row[4])), outcomes=_OUTCOMES.decode(row[5]))


async def user_facts(session: AsyncSession, snap: Snapshot, account: Account, *, now: datetime,
                     signal_days: int, unused_days: int, features: Mapping[str, FeatureInfo],
                     modules: Mapping[str, ModuleInfo], activity: entitlements.UserActivity, rows: Stored,
                     refresher: Refresher | None = None) -> tuple[UserFacts, dict[str, list[int]]]:
    """Everything the signals read, and the per-feature monthly series (for the advisor); the only query is
    the segment's sums when the process has none cached."""
    demand, week, older = _demand(activity.demand, now=now, signal_days=signal_days)
    raw = activity.usage
    series = {f: [n for _, _, n in rows_] for f, rows_ in raw.items()}
    recent = {f for f, rows_ in raw.items() if any(n > 0 and end > now - timedelta(days=unused_days)
                                                   for _, end, n in rows_)}
    usage = {f: (snap.used.get(f, (now, now, 0))[2], state.limit) for f, state in snap.features.items()
             if state.granted and state.limit is not None}
    roles = tuple(sorted(snap.roles))
    team: dict[tuple[str, str], PeerCount] = {}
    team_active: dict[tuple[str, str], PeerCount] = {}
    for role, module, role_users, n_owners, active in rows.team:
        if role not in roles:
            continue
        mine = 1 if module in snap.modules else 0
        team[(role, module)] = PeerCount(owners=n_owners - mine, users=max(0, role_users - 1))
        team_active[(role, module)] = PeerCount(owners=active, users=max(0, n_owners - mine))
    cached: SegmentFacts | None = refresher.cached_segment(account.segment, now) if refresher is not None else None
    if cached is None:
        cached = await segment_facts(session, account.segment)
        if refresher is not None:
            refresher.keep_segment(account.segment, now, cached)
    seg = {(r, m): cached.peers.get((r, m), PeerCount(0, cached.role_users.get(r, 0))) for r in roles for m in modules}
    everyone = {m: PeerCount(owners=n, users=cached.role_users.get(peers.ALL, 0)) for m, n in cached.owners.items()}
    account_peers = _account_peers(rows, snap.modules)
    tracked = {k for k, f in features.items() if f.kind in ("boolean", "limit")}
    unused = frozenset(m for m in snap.modules if m in modules and set(modules[m].features) & tracked
                       and not set(modules[m].features) & recent)
    facts = UserFacts(roles=roles, segment=account.segment, owned=snap.modules, usage=usage, demand=demand,
                      series=series, team=team, segment_peers=seg, team_active=team_active, pairs=cached.pairs,
                      owners=cached.owners, unused=unused, account_peers=account_peers, segment_all=everyone,
                      demand_week=week, older_demand=older)
    return facts, series


def _demand(rows: Mapping[str, list[tuple[date, int, int]]], *, now: datetime, signal_days: int,
            ) -> tuple[dict[str, tuple[int, int]], dict[str, int], dict[str, int]]:
    """Tries per feature: (denied, attempts) of the last ``signal_days`` days, the last 7 days' total, and the
    total of the days before the window back to OLDER_DAYS. Days are UTC days and "the last 30 days" are 30 of
    them, today included (not 31)."""
    today = now.date()
    recent_from = today - timedelta(days=signal_days - 1)
    week_from = today - timedelta(days=6)
    oldest = today - timedelta(days=OLDER_DAYS - 1)
    recent: dict[str, tuple[int, int]] = {}
    week: dict[str, int] = {}
    older: dict[str, int] = {}
    for feature, all_days in rows.items():
        days = [d for d in all_days if d[0] >= oldest]
        d = sum(n for day, n, _ in days if day >= recent_from)
        t = sum(n for day, _, n in days if day >= recent_from)
        if d + t:
            recent[feature] = (d, t)
        if w := sum(n + m for day, n, m in days if day >= week_from):
            week[feature] = w
        if o := sum(n + m for day, n, m in days if day < recent_from):
            older[feature] = o
    return recent, week, older


def _account_peers(rows: Stored, mine: frozenset[str]) -> dict[str, PeerCount]:
    """module -> owners among the other users of the account (any role), from the recount."""
    if not rows.everyone:
        return {}
    return {m: PeerCount(owners=max(0, int(n) - (1 if m in mine else 0)), users=int(rows.everyone) - 1)
            for m, n in rows.owners}


@dataclass(frozen=True)
class History:
    respect: Respect
    user_typical_minor: int | None
    account_typical_minor: int | None
    spent_this_month_minor: int


def history(stored_rows: Stored, user_id: str, *, now: datetime, cap: int, recent_days: int) -> History:
    """Respect rules' inputs and typical purchase amounts, from the suggestion tables' rows (``stored``)."""
    u = user_id
    rows = stored_rows.outcomes
    shown, dismissed = stored_rows.shown, stored_rows.dismissed
    mine = [r for r in rows if r.user_id == u]
    recent = now - timedelta(days=recent_days)
    month_start, _ = period_of(now)
    purchases = [r for r in rows if r.kind == "purchase" and r.amount_minor > 0]
    return History(
        respect=Respect(
            dismissed=dismissed, capped=cap > 0 and shown >= cap,
            bought=frozenset(r.module for r in mine if r.kind == "purchase" and r.at > recent),
            denied=frozenset(r.module for r in mine if r.kind == "admin_denied" and r.at > recent)),
        user_typical_minor=median([r.amount_minor for r in purchases if r.user_id == u]),
        account_typical_minor=median([r.amount_minor for r in purchases]),
        spent_this_month_minor=sum(r.amount_minor for r in mine if r.kind == "purchase" and r.at >= month_start),
    )
