"""The ranking: candidates, signals, score, the respect rules and the final short list. Pure.

Candidates are the modules the caller found visible (availability policy) and not forbidden by the
customer's guardrail role rules. Owned modules are never offered for purchase; owned-but-unused ones may
come back as adoption nudges; a cheaper plan from the advisor may come as a plan change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from suggest import signals as sig
from suggest.advisor import Advice
from suggest.scoring import ADOPTION_WEIGHT, DEFAULT, Weights, score, sigmoid
from suggest.signals import FeatureInfo, ModuleInfo, PeerCount, Signal, Trigger

Kind = Literal["purchase", "trial", "adoption", "plan_change"]
Effect = Literal["visible", "purchasable", "approval_required"]
BUYABLE = ("purchasable", "approval_required")
OWN_NEED = ("trigger", "demand", "limit")  # the user's own behaviour, as opposed to evidence from others


@dataclass(frozen=True)
class Candidate:
    """A module the user may see, with its availability effect and its headline price (monthly minor units)."""

    module: ModuleInfo
    effect: Effect
    amount_minor: int | None = None
    price_text: str | None = None


@dataclass(frozen=True)
class UserFacts:
    """What is known about the user, as plain values (gathered by the service, or made up by tests)."""

    roles: tuple[str, ...]
    segment: str
    owned: frozenset[str]
    usage: Mapping[str, tuple[int, int | None]] = field(default_factory=dict)  # feature -> (used now, limit)
    demand: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # feature -> (denied, attempts)
    series: Mapping[str, Sequence[int]] = field(default_factory=dict)  # feature -> use per month, oldest first
    team: Mapping[tuple[str, str], PeerCount] = field(default_factory=dict)  # (role, module), user excluded
    segment_peers: Mapping[tuple[str, str], PeerCount] = field(default_factory=dict)
    team_active: Mapping[tuple[str, str], PeerCount] = field(default_factory=dict)  # owners who use it
    pairs: Mapping[tuple[str, str], int] = field(default_factory=dict)
    owners: Mapping[str, int] = field(default_factory=dict)
    user_typical_minor: int | None = None
    account_typical_minor: int | None = None
    unused: frozenset[str] = frozenset()  # owned modules none of whose features the user used lately
    account_peers: Mapping[str, PeerCount] = field(default_factory=dict)  # module -> anyone in the account
    segment_all: Mapping[str, PeerCount] = field(default_factory=dict)  # module -> anyone in the segment
    older_demand: Mapping[str, int] = field(default_factory=dict)  # feature -> tries before the recent window
    demand_week: Mapping[str, int] = field(default_factory=dict)  # feature -> tries in the last 7 days


@dataclass(frozen=True)
class Respect:
    """What the user told us or just did: dismissed, bought, denied by an admin; and whether the surface's
    frequency cap is reached."""

    dismissed: frozenset[str] = frozenset()
    bought: frozenset[str] = frozenset()
    denied: frozenset[str] = frozenset()
    capped: bool = False


@dataclass(frozen=True)
class Options:
    limit: int = 3
    weights: Weights = DEFAULT
    demand_days: int = 30
    older_days: int = 90
    unused_days: int = 30
    min_score: float = 0.02


@dataclass(frozen=True)
class Item:
    module: str
    kind: Kind
    score: float
    breakdown: dict[str, float]
    reasons: tuple[str, ...]
    bundle: tuple[str, ...] = ()  # unmet prerequisites quoted together with the module, prerequisites first
    trigger_hit: bool = False
    leads_to: str | None = None  # the module this first step is on the way to ("start with X")
    advice: Advice | None = None


def _unmet(key: str, by_key: Mapping[str, Candidate], owned: frozenset[str]) -> tuple[str, ...] | None:
    """Prerequisites not owned, deepest first; None when one of them cannot be bought by this user."""
    out: list[str] = []
    seen: set[str] = set()

    def visit(k: str) -> bool:
        c = by_key.get(k)
        if c is None:
            return False
        for r in c.module.requires:
            if r in owned or r in seen:
                continue
            seen.add(r)
            rc = by_key.get(r)
            if rc is None or rc.effect not in BUYABLE or not visit(r):
                return False
            out.append(r)
        return True

    return tuple(out) if visit(key) else None


def signals_for(c: Candidate, facts: UserFacts, context: Trigger | None, features: Mapping[str, FeatureInfo],
                names: Mapping[str, str], related: Sequence[str], opts: Options, *, next_step: bool = False,
                ) -> dict[str, Signal]:
    """Every signal of one candidate (each a separately tested function of signals.py)."""
    m = c.module
    team = [sig.peer_adoption(m, role, facts.team.get((role, m.key)), facts.segment_peers.get((role, m.key)),
                              segment_name=facts.segment) for role in facts.roles] or [sig.NONE]
    segment = [sig.segment_adoption(m, role, facts.segment_peers.get((role, m.key)), segment_name=facts.segment)
               for role in facts.roles] or [sig.NONE]
    everyone = facts.segment_all.get(m.key)
    return {
        "trigger": sig.trigger(m, context, features),
        "demand": sig.recorded_demand(m, facts.demand, features, days=opts.demand_days),
        "demand_week": sig.week_demand(m, facts.demand_week),
        "demand_older": sig.older_demand(m, facts.older_demand, features, recent_days=opts.demand_days,
                                         older_days=opts.older_days),
        "limit": sig.limit_pressure(m, facts.usage, features),
        "peers": max(team, key=lambda s: s.value),
        "account_peers": sig.account_adoption(m, facts.account_peers.get(m.key), sig.segment_prior(everyone)),
        "segment": max(segment, key=lambda s: s.value),
        "co_ownership": sig.co_ownership(m, facts.owned, facts.pairs, facts.owners, names),
        "trajectory": sig.usage_trajectory(m, facts.series, related, features),
        "price": sig.price_fit(c.amount_minor, user_typical_minor=facts.user_typical_minor,
                               account_typical_minor=facts.account_typical_minor, formatted=c.price_text),
        "next_step": Signal(1.0) if next_step else sig.NONE,
    }


def _related(candidates: Sequence[Candidate]) -> dict[str, list[str]]:
    """Per module: its features and those of its prerequisites and of its category (for the trajectory)."""
    by_category: dict[str, set[str]] = {}
    for c in candidates:
        by_category.setdefault(c.module.category, set()).update(c.module.features)
    feats = {c.module.key: set(c.module.features) for c in candidates}
    return {c.module.key: sorted(by_category[c.module.category].union(
        *(feats.get(r, set()) for r in c.module.requires))) for c in candidates}


def _purchase_item(c: Candidate, facts: UserFacts, context: Trigger | None, by_key: Mapping[str, Candidate],
                   features: Mapping[str, FeatureInfo], names: Mapping[str, str], opts: Options,
                   related: Sequence[str]) -> Item | None:
    """One purchase (or trial) item for a candidate. A candidate whose prerequisites the user lacks becomes, at
    the user's own moment (its feature just denied), a bundle quoted together; otherwise its first step: the
    item is the deepest missing prerequisite, scored by the evidence for the module it leads to ("start with
    X"), since that is what users then buy."""
    m = c.module
    bundle = _unmet(m.key, by_key, facts.owned)
    if bundle is None:
        return None
    first = by_key[bundle[0]] if bundle else c
    signals = signals_for(c, facts, context, features, names, related, opts, next_step=bool(bundle))
    hit = signals["trigger"].value > 0 and context is not None and context.kind != "browse"
    if c.effect not in BUYABLE and not hit:
        return None
    if bundle and not hit:
        price = sig.price_fit(first.amount_minor, user_typical_minor=facts.user_typical_minor,
                              account_typical_minor=facts.account_typical_minor, formatted=first.price_text)
        signals = {**signals, "price": price}
    propensity, breakdown = score({k: s.value for k, s in signals.items()}, opts.weights)
    reasons = [s.fact for k, s in signals.items() if s.fact and s.value > 0 and k != "price"]
    if not reasons or (propensity < opts.min_score and not hit):
        return None  # nothing true and specific to say: say nothing
    if signals["price"].fact:
        reasons.append(signals["price"].fact)
    if bundle and hit:
        reasons.append(f"{m.name} needs {', '.join(names.get(b, b) for b in bundle)} first; the quote includes "
                       f"{'both' if len(bundle) == 1 else 'all of them'}.")
    elif bundle:
        reasons.append(f"Start with {names.get(first.module.key, first.module.key)}: {m.name} needs it first.")
    if c.effect not in BUYABLE:
        reasons.append(f"{m.name} is not offered to your role for purchase; ask your admin.")
    own_need = max(signals[k].value for k in OWN_NEED)
    target = first.module if bundle and not hit else m
    kind: Kind = "trial" if target.trial_days and first.effect in BUYABLE and own_need < 0.5 else "purchase"
    if bundle and not hit:
        return Item(module=target.key, kind=kind, score=round(propensity, 4), breakdown=breakdown,
                    reasons=tuple(reasons), leads_to=m.key)
    return Item(module=m.key, kind=kind, score=round(propensity, 4), breakdown=breakdown, reasons=tuple(reasons),
                bundle=bundle, trigger_hit=hit)


def _adoption_item(c: Candidate, facts: UserFacts, opts: Options) -> Item | None:
    """An owned module the user has not used lately, when peers with the same role do use theirs."""
    m = c.module
    best: tuple[float, str, PeerCount] | None = None
    for role in facts.roles:
        active = facts.team_active.get((role, m.key))
        if active is None or active.users < sig.TEAM_MIN_PEERS or active.owners <= 0:
            continue
        share = active.owners / active.users
        if best is None or share > best[0]:
            best = (share, role, active)
    if best is None:
        return None
    share, role, active = best
    contribution = round(ADOPTION_WEIGHT * share, 4)
    reasons = (f"You have {m.name} but have not used it in the last {opts.unused_days} days.",
               f"{active.owners} of the {active.users} other {sig.role_label(role)} in your team who have it used "
               "it lately.")
    return Item(module=m.key, kind="adoption", score=round(sigmoid(opts.weights.bias + contribution), 4),
                breakdown={"adoption": contribution}, reasons=reasons)


def _plan_item(advice: Advice, names: Mapping[str, str], money: Mapping[int, str], opts: Options) -> Item | None:
    if advice.saving_minor <= 0 or not (advice.add or advice.remove):
        return None
    fraction = advice.saving_minor / max(advice.current_minor, 1)
    contribution = round(ADOPTION_WEIGHT * min(1.0, 2 * fraction), 4)
    parts = [f"drop {', '.join(names.get(k, k) for k in advice.remove)}" if advice.remove else "",
             f"add {', '.join(names.get(k, k) for k in advice.add)}" if advice.add else ""]
    change = " and ".join(p for p in parts if p)
    reasons = (f"What you used lately is covered for {money.get(advice.best_minor, str(advice.best_minor))} a month "
               f"instead of {money.get(advice.current_minor, str(advice.current_minor))} if you {change}.",)
    return Item(module=(advice.remove or advice.add)[0], kind="plan_change",
                score=round(sigmoid(opts.weights.bias + contribution), 4), breakdown={"saving": contribution},
                reasons=reasons, advice=advice)


def rank(candidates: Sequence[Candidate], facts: UserFacts, context: Trigger | None, respect: Respect, *,
         features: Mapping[str, FeatureInfo], opts: Options = Options(), advice: Advice | None = None,
         money: Mapping[int, str] | None = None, all_names: Mapping[str, str] | None = None) -> list[Item]:
    """At most ``opts.limit`` items, best first; a module the trigger points at comes before everything else."""
    assert 0 <= opts.limit <= 10
    by_key = {c.module.key: c for c in candidates}
    names = {**(all_names or {}), **{c.module.key: c.module.name for c in candidates}}
    explicit = context is not None and context.kind in ("feature_denied", "limit_reached")
    items: list[Item] = []
    related = _related(candidates)
    for c in candidates:
        key = c.module.key
        if key in respect.dismissed or key in respect.bought or key in respect.denied:
            continue
        if key in facts.owned:
            if key in facts.unused and not respect.capped:
                item = _adoption_item(c, facts, opts)
                if item is not None:
                    items.append(item)
            continue
        item = _purchase_item(c, facts, context, by_key, features, names, opts, related[key])
        if item is not None:
            items.append(item)
    if advice is not None and not respect.capped:
        plan = _plan_item(advice, names, money or {}, opts)
        just_got = respect.bought & frozenset(advice.remove)  # never "drop X" days after X was granted
        if plan is not None and plan.module not in respect.dismissed and not just_got:
            items.append(plan)
    if respect.capped:
        # The surface has shown enough today; only the user's own explicit moment still gets an answer.
        items = [i for i in items if i.trigger_hit and explicit]
    items.sort(key=lambda i: (not i.trigger_hit, -i.score, i.module))
    # One item per module (an adoption nudge and "drop it" never both), and a module quoted inside a
    # higher-ranked bundle is not offered again on its own.
    out: list[Item] = []
    bundled: set[str] = set()
    for item in items:
        if item.module in bundled or any(o.module == item.module for o in out):
            continue
        out.append(item)
        bundled |= set(item.bundle)
        if len(out) == opts.limit:
            break
    return out
