"""Offline evaluation of the suggestion engine on a seeded synthetic customer base (suggest/synth.py).

Time split: the engine sees the world as it was at the start of month ``split`` (ownership, the last month's
attempts and usage, three months of usage history, peers in the account and the segment, co-ownership) and
recommends 3 modules per user; the truth is what each user bought in the ``test_months`` months from
``split`` on (default 1: suggestions are about the near term). Users
who bought nothing in the test window are left out (the usual convention for precision/recall@k).

Compared: the engine with its documented weights (as served: it may say fewer than 3 when it has nothing
true to say, and those empty slots count as misses), the engine backfilled with popular modules, the engine
with weights learned by logistic regression one month earlier, the popularity baseline (most-owned modules
the user lacks) and a random baseline.

    python -m bench.suggest_eval [--seed 7] [--accounts 12] [--months 6]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

from app.demo import demo_catalog_toml
from catalog.service import parse_source
from catalog.spec import LimitFeature
from suggest import engine as e
from suggest.scoring import DEFAULT, Weights, fit_logistic
from suggest.signals import SIGNALS, FeatureInfo, ModuleInfo, PeerCount
from suggest.synth import SynthUser, World, generate

K = 3


def catalog() -> tuple[dict[str, ModuleInfo], dict[str, FeatureInfo]]:
    doc = parse_source(toml=demo_catalog_toml())
    features = {f.key: FeatureInfo(f.key, f.name, str(f.__struct_config__.tag),
                                   unit=f.unit if isinstance(f, LimitFeature) else None,
                                   period=f.period if isinstance(f, LimitFeature) else None) for f in doc.features}
    modules = {m.key: ModuleInfo(m.key, m.name, m.category, dict(m.features), tuple(m.requires), m.trial_days)
               for m in doc.modules if m.status == "active"}
    return modules, features


def owned_at(u: SynthUser, month: int) -> frozenset[str]:
    return frozenset(m for t, m in u.bought if t < month)


class Snapshot:
    """The world as the engine would see it at the start of ``month``."""

    def __init__(self, world: World, month: int) -> None:
        self.world, self.month = world, month
        self.owned = {u.user_id: owned_at(u, month) for u in world.users}
        self.team: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)  # (account, role) -> module owners
        self.role_size: Counter[tuple[str, str]] = Counter()
        self.seg: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        self.seg_size: Counter[tuple[str, str]] = Counter()
        self.pairs: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
        self.owners: dict[str, Counter[str]] = defaultdict(Counter)
        self.popular: Counter[str] = Counter()
        for u in world.users:
            held = sorted(self.owned[u.user_id])
            self.role_size[(u.account, u.role)] += 1
            self.seg_size[(u.segment, u.role)] += 1
            for m in held:
                self.team[(u.account, u.role)][m] += 1
                self.seg[(u.segment, u.role)][m] += 1
                self.owners[u.segment][m] += 1
                self.popular[m] += 1
                for b in held:
                    if m < b:
                        self.pairs[u.segment][(m, b)] += 1

    def facts(self, u: SynthUser, modules: dict[str, ModuleInfo]) -> e.UserFacts:
        owned = self.owned[u.user_id]
        last = self.month - 1
        limits: dict[str, int] = defaultdict(int)
        for m in owned:
            for f, g in modules[m].features.items():
                if isinstance(g, int) and not isinstance(g, bool):
                    limits[f] += g
        usage = {f: (u.usage[f][last], lim) for f, lim in limits.items() if f in u.usage and lim > 0}
        series = {f: v[max(0, last - 2):last + 1] for f, v in u.usage.items()}
        demand = {f: (0, n) for f, n in u.attempts.get(last, {}).items()}
        team = {(u.role, m): PeerCount(owners=self.team[(u.account, u.role)][m] - (m in owned),
                                       users=self.role_size[(u.account, u.role)] - 1) for m in modules}
        seg = {(u.role, m): PeerCount(owners=self.seg[(u.segment, u.role)][m],
                                      users=self.seg_size[(u.segment, u.role)]) for m in modules}
        return e.UserFacts(roles=(u.role,), segment=u.segment, owned=owned, usage=usage, demand=demand,
                           series=series, team=team, segment_peers=seg, pairs=self.pairs[u.segment],
                           owners=self.owners[u.segment])


def engine_recs(snap: Snapshot, u: SynthUser, modules: dict[str, ModuleInfo], features: dict[str, FeatureInfo],
                weights: Weights) -> list[str]:
    cands = [e.Candidate(module=m, effect="purchasable") for m in modules.values()]
    items = e.rank(cands, snap.facts(u, modules), None, e.Respect(), features=features,
                   opts=e.Options(limit=K, weights=weights, min_score=0.0))
    out: list[str] = []
    for i in items:
        if i.kind in ("purchase", "trial"):
            out += [*i.bundle, i.module]
    return list(dict.fromkeys(out))[:K]


def popular_recs(snap: Snapshot, u: SynthUser) -> list[str]:
    return [m for m, _ in snap.popular.most_common() if m not in snap.owned[u.user_id]][:K]


def metrics(recs: Sequence[str], truth: set[str]) -> tuple[float, float, float]:
    hits = [1.0 if r in truth else 0.0 for r in recs[:K]]
    dcg = sum(h / math.log2(i + 2) for i, h in enumerate(hits))
    ideal = sum(1 / math.log2(i + 2) for i in range(min(K, len(truth))))
    return sum(hits) / K, sum(hits) / len(truth), dcg / ideal if ideal else 0.0


def training_rows(world: World, month: int, modules: dict[str, ModuleInfo], features: dict[str, FeatureInfo],
                  ) -> tuple[list[dict[str, float]], list[int]]:
    """Signal values at the start of ``month`` for every (user, module not owned), labelled by a purchase in
    that month: what the service would learn from its recorded outcomes."""
    snap = Snapshot(world, month)
    rows, labels = [], []
    for u in world.users:
        f = snap.facts(u, modules)
        bought = {m for t, m in u.bought if t == month}
        for m in modules.values():
            if m.key in f.owned:
                continue
            sig = e.signals_for(e.Candidate(module=m, effect="purchasable"), f, None, features,
                                {k: v.name for k, v in modules.items()}, sorted(m.features), e.Options())
            rows.append({k: s.value for k, s in sig.items()})
            labels.append(1 if m.key in bought else 0)
    return rows, labels


def evaluate(seed: int, accounts: int, months: int, test_months: int = 1) -> dict[str, object]:
    modules, features = catalog()
    started = time.perf_counter()
    world = generate(modules, seed=seed, accounts_per_segment=accounts, months=months)
    generated_s = time.perf_counter() - started
    split = months - test_months
    snap = Snapshot(world, split)
    rows, labels = training_rows(world, split - 1, modules, features)
    learned = fit_logistic(rows, labels, epochs=300, rate=1.0)
    rng = random.Random(seed + 1)
    strategies: dict[str, Callable[[SynthUser], list[str]]] = {
        "engine": lambda u: engine_recs(snap, u, modules, features, DEFAULT),
        "engine+popular": lambda u: list(dict.fromkeys(
            engine_recs(snap, u, modules, features, DEFAULT) + popular_recs(snap, u)))[:K],
        "engine (learned weights)": lambda u: engine_recs(snap, u, modules, features, learned),
        "popularity": lambda u: popular_recs(snap, u),
        "random": lambda u: rng.sample(sorted(set(modules) - snap.owned[u.user_id]),
                                       min(K, len(set(modules) - snap.owned[u.user_id]))),
    }
    evaluated = [u for u in world.users if any(t >= split for t, _ in u.bought)]
    results: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    for name, recommend in strategies.items():
        p = r = n = 0.0
        for u in evaluated:
            truth = {m for t, m in u.bought if t >= split}
            a, b, c = metrics(recommend(u), truth)
            p, r, n = p + a, r + b, n + c
        results[name] = {"precision@3": round(p / len(evaluated), 4), "recall@3": round(r / len(evaluated), 4),
                         "ndcg@3": round(n / len(evaluated), 4)}
    return {
        "seed": seed, "accounts": len(world.accounts()), "users": len(world.users), "modules": len(modules),
        "months": months, "split_month": split, "test_months": test_months, "evaluated_users": len(evaluated),
        "purchases_total": sum(len(u.bought) for u in world.users), "generate_seconds": round(generated_s, 2),
        "evaluate_seconds": round(time.perf_counter() - started, 2),
        "learned_weights": {"bias": round(learned.bias, 3), **{k: round(learned.weights[k], 3) for k in SIGNALS}},
        "results": results,
        "engine_vs_popularity_precision": round(results["engine"]["precision@3"]
                                                / max(results["popularity"]["precision@3"], 1e-9), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--accounts", type=int, default=12, help="accounts per segment (3 segments)")
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--test-months", type=int, default=1, help="months after the split that hold the truth")
    args = parser.parse_args()
    report = evaluate(args.seed, args.accounts, args.months, args.test_months)
    print(json.dumps(report, indent=2))
    print(f"\n{'strategy':<26}{'P@3':>8}{'R@3':>8}{'NDCG@3':>9}")
    for name, m in report["results"].items():  # type: ignore[attr-defined]
        print(f"{name:<26}{m['precision@3']:>8.3f}{m['recall@3']:>8.3f}{m['ndcg@3']:>9.3f}")


if __name__ == "__main__":
    main()
