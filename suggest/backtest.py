"""Offline backtest: what the engine would have suggested at a past moment against what users then bought.

Time split at ``at``: every recommender sees only events before ``at`` (``history.facts_at``) and names ``k``
modules per user; the truth is each user's purchases in the ``window_days`` after it. Users who bought nothing
in the window are left out (the usual convention for recall@k). Reported per recommender: recall@k (share of
a user's purchases that were among its k, averaged over users), precision@k (hits over k), hit rate (users
with at least one hit), and the lift of recall over the popularity baseline. Pure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from suggest import engine as e
from suggest.history import History, facts_at
from suggest.scoring import DEFAULT, Weights
from suggest.signals import ModuleInfo

Recommender = Callable[[str, e.UserFacts], list[str]]


@dataclass(frozen=True)
class Score:
    users: int
    recall: float
    precision: float
    hit_rate: float


@dataclass(frozen=True)
class Report:
    at: datetime
    window_days: int
    k: int
    users: int  # users with facts at ``at``
    buyers: int  # of them, users who bought something in the window
    purchases: int
    scores: dict[str, Score]
    lift_over_popularity: dict[str, float | None]  # recall / popularity's recall


def next_step(modules: Mapping[str, ModuleInfo], key: str, owned: frozenset[str]) -> str | None:
    """What a user buys first on the way to ``key``: its deepest prerequisite not owned, else ``key``; None
    when a prerequisite is unknown (inactive) so the chain cannot be bought."""
    m = modules.get(key)
    if m is None:
        return None
    for r in m.requires:
        if r not in owned:
            return next_step(modules, r, owned)
    return key


def popularity(history: History, at: datetime, *, k: int) -> Recommender:
    """Most-owned modules at ``at`` the user lacks (and can buy now: prerequisites owned)."""
    facts = facts_at(history, at)
    counts: Counter[str] = Counter()
    for f in facts.values():
        counts.update(f.owned)
    order = [m for m, _ in counts.most_common()] + sorted(set(history.modules) - set(counts))

    def recommend(_: str, f: e.UserFacts) -> list[str]:
        return [m for m in order if m not in f.owned and next_step(history.modules, m, f.owned) == m][:k]
    return recommend


def engine_rules(history: History, *, k: int, weights: Weights = DEFAULT, next_steps: bool = False) -> Recommender:
    """The engine as served with the given weights, on a browse (no trigger); with ``next_steps`` an item is
    counted as what it asks the user to buy first (its ``start_with``), else as its headline module."""
    cands = [e.Candidate(module=m, effect="purchasable", amount_minor=history.prices.get(m.key))
             for m in history.modules.values()]
    features = history.features

    def recommend(_: str, f: e.UserFacts) -> list[str]:
        items = e.rank(cands, f, None, e.Respect(), features=features,
                       opts=e.Options(limit=k, weights=weights, min_score=0.0))
        out = [(i.bundle[0] if i.bundle and next_steps else i.module) for i in items
               if i.kind in ("purchase", "trial")]
        return list(dict.fromkeys(out))[:k]
    return recommend


def evaluate(history: History, at: datetime, recommenders: Mapping[str, Recommender], *, k: int = 3,
             window_days: int = 30) -> Report:
    """Score each recommender on the purchases of the window after ``at``."""
    assert 1 <= k <= 10 and 1 <= window_days <= 365
    facts = facts_at(history, at)
    truth = history.purchases(at, at + timedelta(days=window_days))
    buyers = [u for u in sorted(truth) if u in facts]
    scores: dict[str, Score] = {}
    for name, recommend in recommenders.items():
        recall = precision = hits_any = 0.0
        for u in buyers:
            recs = recommend(u, facts[u])[:k]
            hits = len(set(recs) & truth[u])
            recall += hits / len(truth[u])
            precision += hits / k
            hits_any += hits > 0
        n = max(len(buyers), 1)
        scores[name] = Score(users=len(buyers), recall=round(recall / n, 4), precision=round(precision / n, 4),
                             hit_rate=round(hits_any / n, 4))
    base = scores.get("popularity")
    lift = {name: (round(s.recall / base.recall, 3) if base and base.recall > 0 else None)
            for name, s in scores.items()}
    return Report(at=at, window_days=window_days, k=k, users=len(facts), buyers=len(buyers),
                  purchases=sum(len(truth[u]) for u in buyers), scores=scores, lift_over_popularity=lift)


def engine_learned(history: History, at: datetime, *, k: int, window_days: int = 30) -> Recommender:
    """The engine with weights fitted on the history before ``at`` (suggest.learn), as a vendor would run it."""
    from suggest.learn import fit  # the fit needs scikit-learn; the rest of the backtest does not

    return engine_rules(history, k=k, weights=fit(history, at, window_days=window_days).weights)
