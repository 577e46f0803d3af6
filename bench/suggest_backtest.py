"""Backtest of the suggestion engine on synthetic worlds with different hidden buying patterns.

For each structure of bench/suggest_worlds.py and each seed: train on days 0-90 (the learned weights see
signals at day 60 and purchases of days 60-90), suggest 3 modules per user at day 90, score against the
purchases of days 90-120. Compared with popularity, a short heuristic (recent denials, then role and account
peer adoption), the engine's default rules, and an oracle that ranks by the true hidden needs (the best a
recommender could do without seeing the future's dice), and that oracle without each user's own taste (what role,
account, segment and ownership predict). The ratio the issue asks for is engine / oracle. ``--structures``
also takes the worlds written after the engine's defaults were fixed (sequence, quiet, newcomers).

    python -m bench.suggest_backtest [--seeds 1 2 3] [--structures role account ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable

from bench.suggest_worlds import STRUCTURES, UNSEEN, World, generate
from suggest import backtest as bt
from suggest import engine as e
from suggest.history import facts_at
from suggest.signals import PeerCount

K = 3


def oracle(world: World, *, personal: bool = True) -> bt.Recommender:
    """Rank what each user would buy first by the true need behind it (max over the modules it leads to);
    without ``personal``, by the need role, account, segment and ownership predict (the user's own taste left
    out: the best any recommender could do for a user with no history of their own)."""
    modules = world.history.modules
    needs = world.true_need if personal else world.shared_need

    def recommend(user: str, f: e.UserFacts) -> list[str]:
        best: dict[str, float] = {}
        for m, n in needs[user].items():
            if m in f.owned:
                continue
            step = bt.next_step(modules, m, f.owned)
            if step is not None:
                best[step] = max(best.get(step, 0.0), n)
        return sorted(best, key=lambda m: (-best[m], m))[:K]
    return recommend


def heuristic(world: World) -> bt.Recommender:
    """Recent denials first, then the share of the account (same role, then anyone) owning the module."""
    modules = world.history.modules
    granting: dict[str, list[str]] = {}
    for k, m in modules.items():
        for feat in m.features:
            granting.setdefault(feat, []).append(k)

    def recommend(_: str, f: e.UserFacts) -> list[str]:
        score: dict[str, float] = {}
        for feat, (denied, attempts) in f.demand.items():
            for m in granting.get(feat, []):
                if m not in f.owned and (step := bt.next_step(modules, m, f.owned)) is not None:
                    score[step] = score.get(step, 0.0) + 10 + denied + attempts
        for m in modules:
            if m in f.owned or bt.next_step(modules, m, f.owned) != m:
                continue
            role = max((f.team.get((r, m), PeerCount(0, 0)) for r in f.roles), key=lambda c: c.owners)
            acct = f.account_peers.get(m, PeerCount(0, 0))
            score[m] = score.get(m, 0.0) + (role.owners / role.users if role.users else 0.0) + (
                acct.owners / acct.users if acct.users else 0.0)
        return sorted(score, key=lambda m: (-score[m], m))[:K]
    return recommend


def before(world: World) -> bt.Recommender:
    """The engine's default rules on the facts as the engine counted them before issue 19 (its segment share)."""
    legacy = facts_at(world.history, world.split, legacy_segment_share=True)
    rules = bt.engine_rules(world.history, k=K)
    return lambda user, _: rules(user, legacy[user])


def strategies(world: World) -> dict[str, bt.Recommender]:
    h = world.history
    out: dict[str, bt.Recommender] = {
        "popularity": bt.popularity(h, world.split, k=K),
        "heuristic": heuristic(world),
        # An engine from before issue 19 (no learned weights) is judged on the facts it counted then.
        "engine (default weights)": bt.engine_rules(h, k=K) if hasattr(bt, "engine_learned") else before(world),
    }
    out.update(extra_strategies(world))
    out["oracle (no own taste)"] = oracle(world, personal=False)
    out["oracle (true needs)"] = oracle(world)
    return out


def extra_strategies(world: World) -> dict[str, bt.Recommender]:
    """The learned engine, when the engine has one (kept apart so the runner works on older engines)."""
    fit: Callable[..., bt.Recommender] | None = getattr(bt, "engine_learned", None)
    return {"engine (learned weights)": fit(world.history, world.split, k=K)} if fit else {}


def run(structures: list[str], seeds: list[int]) -> list[dict[str, object]]:
    rows = []
    for structure in structures:
        for seed in seeds:
            started = time.perf_counter()
            world = generate(structure, seed=seed)
            report = bt.evaluate(world.history, world.split, strategies(world), k=K, window_days=30)
            best = report.scores["oracle (true needs)"].recall
            rows.append({
                "structure": structure, "seed": seed, "users": report.users, "buyers": report.buyers,
                "purchases": report.purchases, "seconds": round(time.perf_counter() - started, 1),
                "recall@3": {n: s.recall for n, s in report.scores.items()},
                "precision@3": {n: s.precision for n, s in report.scores.items()},
                "of_oracle": {n: round(s.recall / best, 3) if best else math.nan for n, s in report.scores.items()},
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--structures", nargs="+", default=list(STRUCTURES), choices=STRUCTURES + UNSEEN)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = run(args.structures, args.seeds)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    names = list(rows[0]["recall@3"])  # type: ignore[call-overload]
    print(f"{'world':<14}{'buyers':>7}  " + "".join(f"{n[:24]:>26}" for n in names))
    for r in rows:
        rec, of = r["recall@3"], r["of_oracle"]
        print(f"{r['structure']}/{r['seed']:<10}{r['buyers']:>7}  "
              + "".join(f"{rec[n]:>18.3f} ({of[n]:.2f})" for n in names))  # type: ignore[index]


if __name__ == "__main__":
    main()
