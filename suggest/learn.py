"""Weights learned from the vendor's own history: a logistic regression (scikit-learn) on a time split.

Examples: at a moment ``t`` every (user, module the user lacks) gives the engine's signal values as the engine
would have computed them at ``t`` (``history.facts_at``), labelled 1 when the user bought the module's next step
(the module itself, or its first missing prerequisite) in the ``window_days`` after ``t``. Several moments
(``points``) a window apart make the training set. The fitted coefficients are the engine's weights on the
same scale as its defaults, so a score breakdown still reads as each signal's share of the log-odds.

A signal that never varies in the history (the trigger: history has no live moments; the price when the
vendor has no prices) keeps its default weight. Too little history (fewer than ``MIN_POSITIVES`` purchases)
keeps the defaults altogether: the caller is told why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from suggest import engine as e
from suggest.backtest import next_step
from suggest.history import History, facts_at
from suggest.scoring import DEFAULT, Weights
from suggest.signals import SIGNALS

MIN_POSITIVES = 50
MAX_ROWS = 400_000  # bounded memory: beyond it, users are sampled deterministically (every n-th)


@dataclass(frozen=True)
class Fit:
    weights: Weights
    rows: int
    positives: int
    learned: bool
    note: str


def training_rows(history: History, at: datetime, *, window_days: int = 30, stride: int = 1,
                  ) -> tuple[list[list[float]], list[int]]:
    """Signal vectors (in SIGNALS order) at ``at`` for every (user, module lacked) and whether its next step was
    bought in the window after."""
    facts = facts_at(history, at)
    truth = history.purchases(at, at + timedelta(days=window_days))
    cands = {k: e.Candidate(module=m, effect="purchasable", amount_minor=history.prices.get(k))
             for k, m in history.modules.items()}
    related = {k: sorted(m.features) for k, m in history.modules.items()}
    names = {k: m.name for k, m in history.modules.items()}
    opts = e.Options()
    xs: list[list[float]] = []
    ys: list[int] = []
    for i, u in enumerate(sorted(facts)):
        if i % stride:
            continue
        f = facts[u]
        bought = truth.get(u, set())
        for key, c in cands.items():
            if key in f.owned:
                continue
            step = next_step(history.modules, key, f.owned)
            if step is None:
                continue
            signals = e.signals_for(c, f, None, history.features, names, related[key], opts,
                                    next_step=step != key)
            xs.append([signals[n].value for n in SIGNALS])
            ys.append(1 if step in bought else 0)
    return xs, ys


def fit(history: History, until: datetime, *, window_days: int = 30, points: int = 2, c: float = 1.0) -> Fit:
    """Learn weights from the moments ``until - window``, ``until - 2 * window``, ... (``points`` of them), each
    labelled by the purchases of the window after it; nothing at or after ``until`` is read."""
    assert 1 <= points <= 12 and 1 <= window_days <= 120
    per_user_modules = max(len(history.modules), 1)
    stride = max(1, (len(history.users) * per_user_modules * points) // MAX_ROWS + 1)
    xs: list[list[float]] = []
    ys: list[int] = []
    for p in range(1, points + 1):
        x, y = training_rows(history, until - timedelta(days=window_days * p), window_days=window_days,
                             stride=stride)
        xs += x
        ys += y
    positives = sum(ys)
    if positives < MIN_POSITIVES:
        return Fit(DEFAULT, len(ys), positives, False,
                   f"{positives} purchases in the training windows; at least {MIN_POSITIVES} are needed, so the "
                   "default weights stay.")
    return Fit(logistic(xs, ys, c=c), len(ys), positives, True,
               f"Learned from {len(ys):,} examples with {positives:,} purchases.")


def logistic(xs: Sequence[Sequence[float]], ys: Sequence[int], *, c: float = 1.0) -> Weights:
    """An L2-regularised logistic regression over the signals that vary; the others keep their defaults."""
    from sklearn.linear_model import LogisticRegression  # heavy import, only where a fit runs

    varying = [i for i in range(len(SIGNALS)) if len({round(x[i], 9) for x in xs}) > 1]
    if not varying or len(set(ys)) < 2:
        return DEFAULT
    model = LogisticRegression(C=c, max_iter=1000)
    model.fit([[x[i] for i in varying] for x in xs], list(ys))
    weights = dict(DEFAULT.weights)
    for j, i in enumerate(varying):
        weights[SIGNALS[i]] = round(float(model.coef_[0][j]), 4)
    return Weights(bias=round(float(model.intercept_[0]), 4), weights=weights)
