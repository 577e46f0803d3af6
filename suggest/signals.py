"""The engine's signals: each a small pure function from plain facts to a value in [0, 1] and, when it has
something true to say, one plain-language sentence built from those facts (never urgency, never a guess).

Every signal is computed for one candidate module; the engine combines them with the weights of scoring.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

TriggerKind = Literal["feature_denied", "limit_near", "limit_reached", "browse"]

SIGNALS = ("trigger", "demand", "demand_week", "demand_older", "limit", "peers", "account_peers", "segment",
           "co_ownership", "trajectory", "price", "next_step")

TEAM_MIN_PEERS = 3  # below this a team share is noise (and would single people out)
SEGMENT_MIN_USERS = 20  # same role in similar accounts: only with enough users behind the share
CO_OWNERSHIP_MIN_SUPPORT = 10  # owners of the antecedent module needed before "most users who have A" means much
EVIDENCE_FLOOR = 0.10  # a share below this is not evidence for anything: it is never said as a reason
PRIOR_STRENGTH = 4.0  # pseudo-users of the wider group's share added to a small group's count (smoothing)
# Roles that are fields rather than people: no plural "s" ("7 of the 9 other people in finance").
MASS_ROLES = frozenset({"finance", "sales", "support", "legal", "marketing", "operations", "ops", "hr", "it",
                        "engineering", "security", "design", "procurement", "research", "admin_staff"})


@dataclass(frozen=True)
class Signal:
    value: float
    fact: str | None = None

    def __post_init__(self) -> None:
        assert 0.0 <= self.value <= 1.0, self.value


NONE = Signal(0.0)


@dataclass(frozen=True)
class FeatureInfo:
    key: str
    name: str
    kind: str  # boolean | limit | config
    unit: str | None = None
    period: str | None = None  # limit period: day, week, month, year, lifetime


@dataclass(frozen=True)
class ModuleInfo:
    key: str
    name: str
    category: str
    features: Mapping[str, int | str | bool] = field(default_factory=dict)
    requires: tuple[str, ...] = ()
    trial_days: int | None = None


@dataclass(frozen=True)
class Trigger:
    kind: TriggerKind
    feature: str | None = None


@dataclass(frozen=True)
class PeerCount:
    """Of ``users`` people with the role (the asking user excluded), ``owners`` have the module."""

    owners: int
    users: int


_PERIOD_WORDS = {"day": "today", "week": "this week", "month": "this month", "year": "this year",
                 "lifetime": "so far"}


def role_label(role: str) -> str:
    """The plural a sentence uses for a role: "analysts", "people in finance"."""
    word = role.replace("_", " ")
    if role.casefold() in MASS_ROLES:
        return f"people in {word}"
    return word if word.endswith("s") else word + "s"


def smoothed(owners: int, users: int, prior: float, strength: float = PRIOR_STRENGTH) -> float:
    """A share shrunk toward a wider group's share: (owners + k * prior) / (users + k). Small groups say little
    on their own; large ones speak for themselves."""
    assert 0 <= owners <= max(users, 0) or users <= 0, (owners, users)
    if users <= 0:
        return prior
    return (owners + strength * prior) / (users + strength)


def _plural(n: int, unit: str | None) -> str:
    word = (unit or "use").replace("_", " ")
    return f"{n:,} {word}" + ("" if n == 1 or word.endswith("s") else "s")


def _grants_more(module: ModuleInfo, feature: str, current_limit: int | None) -> int | None:
    """The limit the module grants for ``feature`` when it raises the user's current one (else None)."""
    value = module.features.get(feature)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if current_limit is None or value > 0 else None


def trigger(module: ModuleInfo, context: Trigger | None, features: Mapping[str, FeatureInfo]) -> Signal:
    """The moment in the workflow: a denied feature makes the module that grants it the top candidate;
    a limit nearly or fully reached favours modules that add to that limit."""
    if context is None or context.feature is None or context.feature not in module.features:
        return NONE
    f = features.get(context.feature)
    name = f.name if f else context.feature
    if context.kind == "feature_denied":
        if name.casefold() == module.name.casefold():
            return Signal(1.0, f"{module.name} is what you just tried to use.")
        return Signal(1.0, f"{module.name} includes {name}, which you just tried to use.")
    if context.kind in ("limit_near", "limit_reached"):
        extra = module.features[context.feature]
        value = 1.0 if context.kind == "limit_reached" else 0.8
        if isinstance(extra, int) and not isinstance(extra, bool) and f is not None and f.unit:
            return Signal(value, f"{module.name} adds {_plural(extra, f.unit)} to your {name} limit.")
        return Signal(value, f"{module.name} raises your {name} limit.")
    return NONE


def recorded_demand(module: ModuleInfo, demand: Mapping[str, tuple[int, int]], features: Mapping[str, FeatureInfo],
                    *, days: int) -> Signal:
    """Denied checks and attempt events of the recent past for features the module grants (saturating: 3 tries
    are a clear signal, more adds little)."""
    best_feature, best = None, 0
    total = 0
    for key in module.features:
        denied, attempts = demand.get(key, (0, 0))
        n = denied + attempts
        total += n
        if n > best:
            best_feature, best = key, n
    if total <= 0 or best_feature is None:
        return NONE
    f = features.get(best_feature)
    name = f.name if f else best_feature
    times = "once" if best == 1 else "twice" if best == 2 else f"{best} times"
    return Signal(1.0 - math.exp(-total / 3.0),
                  f"You tried to use {name} {times} in the last {days} days without having it.")


def week_demand(module: ModuleInfo, week: Mapping[str, int]) -> Signal:
    """Tries of the last 7 days for the module's features: the freshest need. It weighs the recent demand
    toward this week; the 30-day sentence of ``recorded_demand`` already states these tries, so it says nothing."""
    total = sum(week.get(k, 0) for k in module.features)
    return Signal(1.0 - math.exp(-total / 2.0)) if total > 0 else NONE


def older_demand(module: ModuleInfo, older: Mapping[str, int], features: Mapping[str, FeatureInfo], *,
                 recent_days: int, older_days: int) -> Signal:
    """Denied checks and attempts before the recent window (a need the user may still have)."""
    total = sum(older.get(k, 0) for k in module.features)
    if total <= 0:
        return NONE
    best = max(module.features, key=lambda k: (older.get(k, 0), k))
    f = features.get(best)
    name = f.name if f else best
    n = older.get(best, 0)
    times = "once" if n == 1 else "twice" if n == 2 else f"{n} times"
    return Signal(1.0 - math.exp(-total / 3.0), f"You tried to use {name} {times} between {older_days} and "
                                                 f"{recent_days} days ago without having it.")


def limit_pressure(module: ModuleInfo, usage: Mapping[str, tuple[int, int | None]],
                   features: Mapping[str, FeatureInfo]) -> Signal:
    """How close the user is to a limit the module raises: 0 below half the limit, 1 at the limit."""
    best: tuple[float, str, int, int] | None = None
    for key, (used, limit) in usage.items():
        if limit is None or limit <= 0 or key not in module.features or _grants_more(module, key, limit) is None:
            continue
        ratio = used / limit
        if best is None or ratio > best[0]:
            best = (ratio, key, used, limit)
    if best is None:
        return NONE
    ratio, key, used, limit = best
    value = min(1.0, max(0.0, (ratio - 0.5) / 0.5))
    if value == 0.0:
        return NONE
    f = features.get(key)
    unit = f.unit if f else None
    when = _PERIOD_WORDS.get(f.period or "", "this period") if f else "this period"
    return Signal(value, f"You used {used:,} of {_plural(limit, unit)} {when}.")


def segment_prior(segment: PeerCount | None) -> float:
    """The share of the role owning the module across the segment (0 when unknown): every smoothed share's prior."""
    if segment is None or segment.users <= 0:
        return 0.0
    return segment.owners / segment.users


def peer_adoption(module: ModuleInfo, role: str | None, team: PeerCount | None, segment: PeerCount | None,
                  *, segment_name: str) -> Signal:
    """Adoption among the other users with the same role in the user's account, smoothed toward the role's
    share in the segment. Said only with at least TEAM_MIN_PEERS peers and a share at the evidence floor."""
    if role is None or team is None or team.users <= 0:
        return NONE
    value = smoothed(team.owners, team.users, segment_prior(segment))
    share = team.owners / team.users
    fact = None
    if team.users >= TEAM_MIN_PEERS and team.owners > 0 and share >= EVIDENCE_FLOOR:
        fact = f"{team.owners} of the {team.users} other {role_label(role)} in your team use {module.name}."
    return Signal(min(1.0, max(0.0, value)), fact)


def account_adoption(module: ModuleInfo, account: PeerCount | None, prior: float) -> Signal:
    """Adoption across the whole account, whatever the role, smoothed toward the segment's share."""
    if account is None or account.users <= 0:
        return NONE
    value = smoothed(account.owners, account.users, prior)
    share = account.owners / account.users
    fact = None
    if account.users >= TEAM_MIN_PEERS and account.owners > 0 and share >= EVIDENCE_FLOOR:
        fact = f"{account.owners} of the {account.users} other people in your account use {module.name}."
    return Signal(min(1.0, max(0.0, value)), fact)


def segment_adoption(module: ModuleInfo, role: str | None, segment: PeerCount | None, *,
                     segment_name: str) -> Signal:
    """The share of users with the role, across all accounts of the segment, who own the module (the user's own
    account included: the segment is the population). Said with at least SEGMENT_MIN_USERS users behind it."""
    if role is None or segment is None or segment.users <= 0:
        return NONE
    share = segment.owners / segment.users
    fact = None
    if segment.users >= SEGMENT_MIN_USERS and share >= EVIDENCE_FLOOR:
        fact = (f"{round(100 * share)}% of {role_label(role)} at {segment_name.replace('_', ' ')} companies like "
                f"yours use {module.name}.")
    return Signal(min(1.0, share), fact)


def co_ownership(module: ModuleInfo, owned: frozenset[str], pairs: Mapping[tuple[str, str], int],
                 owners: Mapping[str, int], names: Mapping[str, str]) -> Signal:
    """Users who own A often own C: the best confidence P(C | A) over the user's modules A, with support."""
    best: tuple[float, str] | None = None
    for a in sorted(owned):
        n = owners.get(a, 0)
        if n < CO_OWNERSHIP_MIN_SUPPORT or a == module.key:
            continue
        both = pairs.get((a, module.key), pairs.get((module.key, a), 0))
        conf = both / n
        if best is None or conf > best[0]:
            best = (conf, a)
    if best is None or best[0] <= 0:
        return NONE
    conf, a = best
    if conf < EVIDENCE_FLOOR:
        return Signal(min(1.0, conf))  # counts a little, says nothing: under the floor it is not evidence
    pct = round(100 * conf)
    share = "Most" if conf >= 0.5 else f"{pct}% of"
    return Signal(min(1.0, conf), f"{share} users who have {names.get(a, a)} also have {module.name}"
                                  + (f" ({pct}%)." if conf >= 0.5 else "."))


def usage_trajectory(module: ModuleInfo, series: Mapping[str, Sequence[int]], related: Sequence[str],
                     features: Mapping[str, FeatureInfo]) -> Signal:
    """Growing use of related features (the module's own, and those of its prerequisites and category)
    over the last periods: doubling or more is a full signal; flat or falling is none."""
    best: tuple[float, str, int, int, int] | None = None
    for key in related:
        values = [v for v in series.get(key, ())][-3:]
        if len(values) < 2 or values[-1] <= 0:
            continue
        first, last = values[0], values[-1]
        growth = (last - first) / max(first, 1)
        if growth > 0 and (best is None or growth > best[0]):
            best = (growth, key, first, last, len(values))
    if best is None:
        return NONE
    growth, key, first, last, n = best
    f = features.get(key)
    name = f.name if f else key
    unit = f.unit if f else None
    return Signal(min(1.0, growth), f"Your use of {name} grew from {_plural(first, unit)} to {last:,} a month "
                                    f"over the last {n} months.")


def price_fit(amount_minor: int | None, *, user_typical_minor: int | None, account_typical_minor: int | None,
              formatted: str | None = None) -> Signal:
    """The price against what this user (else this account) typically buys: at or below it is a good fit;
    each doubling above it takes a third of the fit away. No history, no price: neutral, and nothing said."""
    typical = user_typical_minor or account_typical_minor
    if amount_minor is None:
        return NONE
    if not typical:
        return Signal(0.5)
    ratio = amount_minor / typical
    if ratio <= 1:
        whose = "you usually spend" if user_typical_minor else "your team usually spends"
        return Signal(1.0, f"At {formatted} it costs no more than {whose} on a module." if formatted else None)
    return Signal(max(0.0, 1.0 - math.log2(ratio) / 3.0))


def median(values: Sequence[int]) -> int | None:
    """The median (lower middle for even counts), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]
