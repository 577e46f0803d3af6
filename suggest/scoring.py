"""One propensity score from the signals: a logistic model with documented default weights, optionally
replaced by weights learned from recorded outcomes (a small L2-regularised logistic regression, stdlib only).

Why these defaults (docs/suggestions.md): an explicit moment in the workflow (a denied feature, a limit hit)
outweighs everything else; recorded demand and limit pressure are the user's own behaviour; peers and
co-ownership are evidence from others; trajectory is a trend; price fit only nudges the order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from suggest.signals import SIGNALS

DEFAULT_WEIGHTS: dict[str, float] = {
    "trigger": 5.0,
    "demand": 4.0,
    "demand_week": 1.5,
    "demand_older": 1.0,
    "limit": 2.5,
    "peers": 2.0,
    "account_peers": 3.0,
    "segment": 1.0,
    "co_ownership": 0.5,
    "trajectory": 0.5,
    "price": 0.3,
    "next_step": 0.0,
}
DEFAULT_BIAS = -4.0
ADOPTION_WEIGHT = 2.5  # adoption nudges: weight of the share of peers who actively use the module


@dataclass(frozen=True)
class Weights:
    bias: float
    weights: Mapping[str, float]

    def __post_init__(self) -> None:
        assert set(self.weights) == set(SIGNALS), sorted(self.weights)


DEFAULT = Weights(bias=DEFAULT_BIAS, weights=DEFAULT_WEIGHTS)


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def score(values: Mapping[str, float], weights: Weights = DEFAULT) -> tuple[float, dict[str, float]]:
    """(propensity in (0, 1), contribution of each signal to the log-odds)."""
    contributions = {name: round(weights.weights[name] * values.get(name, 0.0), 4) for name in SIGNALS}
    return sigmoid(weights.bias + sum(contributions.values())), contributions


def parse_weights(text: str) -> Weights:
    """``trigger=5,demand=2.5,...,bias=-3.5``: unnamed signals keep their default; unknown names raise."""
    weights = dict(DEFAULT_WEIGHTS)
    bias = DEFAULT_BIAS
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, raw = part.partition("=")
        name = name.strip()
        if name not in weights and name != "bias":
            raise ValueError(f"unknown signal {name!r}; known: bias, {', '.join(SIGNALS)}")
        value = float(raw)
        if not math.isfinite(value) or abs(value) > 100:
            raise ValueError(f"weight {name}={raw} must be a finite number within +-100")
        if name == "bias":
            bias = value
        else:
            weights[name] = value
    return Weights(bias=bias, weights=weights)


def fit_logistic(rows: Sequence[Mapping[str, float]], labels: Sequence[int], *, l2: float = 0.01,
                 epochs: int = 300, rate: float = 0.5) -> Weights:
    """Learn weights from (signal values, outcome 0/1) by full-batch gradient descent on the regularised log
    loss. Seven features and a few thousand rows: milliseconds; no numpy needed (see docs/decisions.md)."""
    assert len(rows) == len(labels) and rows, "need at least one example"
    assert epochs <= 10_000
    names = list(SIGNALS)
    xs = [[r.get(n, 0.0) for n in names] for r in rows]
    w = [0.0] * len(names)
    b = 0.0
    n = len(xs)
    for _ in range(epochs):
        grad_w = [0.0] * len(names)
        grad_b = 0.0
        for x, y in zip(xs, labels, strict=True):
            err = sigmoid(b + sum(wi * xi for wi, xi in zip(w, x, strict=True))) - y
            grad_b += err
            for i, xi in enumerate(x):
                grad_w[i] += err * xi
        b -= rate * grad_b / n
        w = [wi - rate * (g / n + l2 * wi) for wi, g in zip(w, grad_w, strict=True)]
    return Weights(bias=b, weights=dict(zip(names, w, strict=True)))
