"""Funnel figures and the lift of suggestions over the holdout, with a confidence interval. Pure.

Lift is measured per user: among users who asked for suggestions in the window, the share who bought a
module attributed to a suggestion (treatment) against the share of holdout users who bought a module the
engine would have shown them (recorded but never displayed). The interval is the Wald interval of the
difference of two proportions (normal approximation; z = 1.96 for 95 %), widened to nothing when a group
is empty. The relative lift is the difference over the holdout rate (None when that rate is 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.96


def rate(part: int, whole: int) -> float:
    return part / whole if whole > 0 else 0.0


@dataclass(frozen=True)
class Lift:
    treatment_users: int
    treatment_converted: int
    holdout_users: int
    holdout_converted: int
    treatment_rate: float
    holdout_rate: float
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    relative: float | None
    significant: bool


def lift(treatment_converted: int, treatment_users: int, holdout_converted: int, holdout_users: int, *,
         z: float = Z95) -> Lift:
    """Difference in conversion (treatment - holdout) with its interval; None where a group is empty."""
    assert 0 <= treatment_converted <= treatment_users and 0 <= holdout_converted <= holdout_users
    pt, ph = rate(treatment_converted, treatment_users), rate(holdout_converted, holdout_users)
    if treatment_users == 0 or holdout_users == 0:
        return Lift(treatment_users, treatment_converted, holdout_users, holdout_converted, pt, ph, None, None, None,
                    None, False)
    diff = pt - ph
    se = math.sqrt(pt * (1 - pt) / treatment_users + ph * (1 - ph) / holdout_users)
    low, high = diff - z * se, diff + z * se
    return Lift(treatment_users, treatment_converted, holdout_users, holdout_converted, round(pt, 6), round(ph, 6),
                round(diff, 6), round(low, 6), round(high, 6), round(diff / ph, 6) if ph > 0 else None,
                significant=low > 0 or high < 0)


@dataclass(frozen=True)
class Funnel:
    impressions: int
    clicks: int
    dismissals: int
    purchases: int
    ctr: float
    conversion: float  # attributed purchases per impression


def funnel(impressions: int, clicks: int, dismissals: int, purchases: int) -> Funnel:
    return Funnel(impressions=impressions, clicks=clicks, dismissals=dismissals, purchases=purchases,
                  ctr=round(rate(clicks, impressions), 6), conversion=round(rate(purchases, impressions), 6))
