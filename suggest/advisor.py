"""The cheapest-plan advisor: the cheapest set of modules that covers what a user actually used.

Needs come from usage of the last periods: a boolean feature used at all must stay granted; a limit feature
needs limits adding up to at least its peak use per period (limits of several modules add up). Costs are
monthly equivalents in minor units (yearly / 12, one-time / 12, half up). Metered modules are billed on
use: they are left out of the search and their features count as covered while owned.

Search: exact branch and bound over the modules that grant a needed feature (plus what they require),
cheapest first. A branch is cut when its cost plus a lower bound (for each need still open, the cheapest
share of a remaining module's cost split over the open needs it grants) reaches the best cost so far, or
when the modules left cannot cover every need. The greedy cover (cheapest cost per need it helps) seeds
the best. The search stops after ``max_nodes`` visits and then answers with the best found so far, flagged
not exact; with at most 30 modules it finishes well inside the bound in practice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

MAX_NODES = 50_000


@dataclass(frozen=True)
class PlanModule:
    key: str
    name: str
    monthly_minor: int | None  # None: not priced for this account (kept when owned, never added)
    features: Mapping[str, int | str | bool] = field(default_factory=dict)
    requires: tuple[str, ...] = ()
    buyable: bool = True  # the user may buy it now (availability and guardrails)
    metered: bool = False


@dataclass(frozen=True)
class Advice:
    current: tuple[str, ...]
    current_minor: int
    best: tuple[str, ...]
    best_minor: int
    add: tuple[str, ...]
    remove: tuple[str, ...]
    uncovered: tuple[str, ...]
    exact: bool

    @property
    def saving_minor(self) -> int:
        return max(0, self.current_minor - self.best_minor)


def needs_from_usage(series: Mapping[str, Sequence[int]], kinds: Mapping[str, str]) -> dict[str, int]:
    """feature -> need: 1 for a used boolean/config feature, the peak per-period use for a limit feature."""
    out: dict[str, int] = {}
    for feature, values in series.items():
        peak = max(values, default=0)
        if peak <= 0 or feature not in kinds:
            continue
        out[feature] = peak if kinds[feature] == "limit" else 1
    return out


def _grant(module: PlanModule, feature: str) -> int:
    value = module.features.get(feature)
    if value is None or value is False:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        return 1
    return value


def _covers(chosen: Sequence[PlanModule], needs: Mapping[str, int], kinds: Mapping[str, str]) -> bool:
    for feature, need in needs.items():
        granted = [_grant(m, feature) for m in chosen]
        if kinds.get(feature) == "limit":
            if sum(granted) < need:
                return False
        elif not any(granted):
            return False
    return True


def _closed(keys: set[str], modules: Mapping[str, PlanModule]) -> bool:
    return all(r in keys for k in keys for r in modules[k].requires)


def _cost(keys: Sequence[str], modules: Mapping[str, PlanModule]) -> int:
    return sum(modules[k].monthly_minor or 0 for k in keys)


def advise(modules: Sequence[PlanModule], owned: frozenset[str], needs: Mapping[str, int],
           kinds: Mapping[str, str], *, max_nodes: int = MAX_NODES, held_free: frozenset[str] = frozenset(),
           ) -> Advice:
    """The cheapest requirement-closed set covering ``needs``; owned modules (what the user pays for, every
    period) may be kept or dropped, others added only when buyable and priced. ``held_free``: modules the user
    holds without paying for them each period (a trial, an admin grant, a seat or an account-wide grant, a
    one-time purchase): what they grant is covered already, and they are never "dropped" to save money.
    Ties keep what is owned."""
    by_key = {m.key: m for m in modules}
    free = [m for m in modules if m.key in held_free and m.key not in owned]
    needs = {f: n for f, n in needs.items()
             if not (sum(_grant(m, f) for m in free) >= n if kinds.get(f) == "limit"
                     else any(_grant(m, f) for m in free))}
    owned_known = tuple(sorted(k for k in owned if k in by_key))
    current_minor = _cost(owned_known, by_key)
    metered = {k for k in owned_known if by_key[k].metered}
    needs = {f: n for f, n in needs.items()
             if not any(_grant(by_key[k], f) for k in metered)}
    usable = {m.key: m for m in modules if not m.metered and (
        m.key in owned or (m.buyable and m.monthly_minor is not None))}
    uncovered = tuple(sorted(f for f in needs if not _covers(list(usable.values()), {f: needs[f]}, kinds)))
    needs = {f: n for f, n in needs.items() if f not in uncovered}
    # Candidates: modules granting a needed feature, then everything they require (when usable).
    cand: set[str] = {k for k, m in usable.items() if any(_grant(m, f) for f in needs)}
    frontier = list(cand)
    while frontier:
        for r in usable.get(frontier.pop(), PlanModule("", "", None)).requires:
            if r in usable and r not in cand:
                cand.add(r)
                frontier.append(r)
    order = sorted(cand, key=lambda k: (usable[k].monthly_minor or 0, k not in owned, k))
    kept = tuple(sorted(metered))
    best: tuple[str, ...] = tuple(sorted(set(order) | set(kept)))
    if _covers([by_key[k] for k in owned_known], needs, kinds) and _closed(set(owned_known), by_key):
        best = owned_known
    greedy = _greedy(order, usable, needs, kinds)
    if greedy is not None and _closed(set(greedy), usable):
        keys = tuple(sorted(set(greedy) | set(kept)))
        if _cost(keys, by_key) < _cost(best, by_key):
            best = keys
    best_cost = _cost(best, by_key)
    # suffix[i]: what modules order[i:] could still add per need (prunes branches that cannot cover).
    suffix: list[dict[str, int]] = [{} for _ in range(len(order) + 1)]
    for i in range(len(order) - 1, -1, -1):
        suffix[i] = {f: suffix[i + 1].get(f, 0) + _grant(usable[order[i]], f) for f in needs}
    visits = 0
    exact = True

    def reachable(i: int, have: dict[str, int]) -> bool:
        for f, need in needs.items():
            total = have.get(f, 0) + suffix[i].get(f, 0)
            if (total < need) if kinds.get(f) == "limit" else total <= 0:
                return False
        return True

    def _bound(i: int, have: dict[str, int]) -> float:
        # Each open need must be paid by some remaining module; sharing a module's cost equally among the open
        # needs it grants, the cheapest share per need summed is a lower bound on what is still to pay.
        open_needs = [f for f, need in needs.items()
                      if not ((have.get(f, 0) >= need) if kinds.get(f) == "limit" else have.get(f, 0) > 0)]
        shares: dict[str, float] = {}
        for k in order[i:]:
            helps = [f for f in open_needs if _grant(usable[k], f)]
            for f in helps:
                share = (usable[k].monthly_minor or 0) / len(helps)
                shares[f] = min(shares.get(f, share), share)
        return sum(shares.values())

    def dfs(i: int, chosen: list[str], cost: int, have: dict[str, int]) -> None:
        nonlocal best, best_cost, visits, exact
        visits += 1
        if visits > max_nodes:
            exact = False
            return
        if cost > best_cost or not reachable(i, have):
            return
        covered = _covers([usable[k] for k in chosen], needs, kinds)
        if not covered and cost + _bound(i, have) >= best_cost:
            return  # cannot beat the best (ties keep the first found: owned modules come first on equal cost)
        if covered and _closed(set(chosen), usable):
            keys = tuple(sorted(set(chosen) | set(kept)))
            total = _cost(keys, by_key)
            # Prefer cheaper; on a tie, the set that changes less of what the user owns.
            if total < best_cost or (total == best_cost and len(set(keys) ^ set(owned_known))
                                     < len(set(best) ^ set(owned_known))):
                best, best_cost = keys, total
            return
        if i == len(order):
            return
        k = order[i]
        gained = {f: have.get(f, 0) + _grant(usable[k], f) for f in needs}
        dfs(i + 1, [*chosen, k], cost + (usable[k].monthly_minor or 0), gained)
        dfs(i + 1, chosen, cost, have)

    dfs(0, [], _cost(kept, by_key), {})
    return Advice(current=owned_known, current_minor=current_minor, best=best, best_minor=best_cost,
                  add=tuple(k for k in best if k not in owned), remove=tuple(k for k in owned_known if k not in best),
                  uncovered=uncovered, exact=exact)


def _greedy(order: Sequence[str], usable: Mapping[str, PlanModule], needs: Mapping[str, int],
            kinds: Mapping[str, str]) -> list[str] | None:
    """Repeatedly add the module (with its requirements) of least cost per remaining need it helps cover."""
    chosen: list[str] = []
    for _ in range(len(order)):
        if _covers([usable[k] for k in chosen], needs, kinds):
            return chosen
        best: tuple[float, list[str]] | None = None
        for k in order:
            if k in chosen:
                continue
            bundle = [k, *(r for r in usable[k].requires if r not in chosen)]
            helped = sum(1 for f in needs if _grant(usable[k], f) > 0)
            if helped == 0:
                continue
            ratio = sum(usable[b].monthly_minor or 0 for b in bundle if b in usable) / helped
            if best is None or ratio < best[0]:
                best = (ratio, [b for b in bundle if b in usable])
        if best is None:
            return None
        chosen += [b for b in best[1] if b not in chosen]
    return chosen if _covers([usable[k] for k in chosen], needs, kinds) else None
