"""Quote arithmetic: proration of recurring prices and contract discounts, under the one rounding rule.

Rounding rule (app.money.round_half_up, documented in docs/commerce.md): every line is computed exactly as
a fraction of minor units and rounded once, half up, to a whole minor unit; the discount is computed on the
rounded line subtotal and rounded the same way; totals are sums of rounded lines. Nothing is ever a float.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Literal

from app.money import round_half_up
from billing.domain.periods import Interval, period_of

PriceModel = Literal["one_time", "recurring", "metered"]


@dataclass(frozen=True)
class LineInput:
    """What is being bought: one module's price, with its terms."""

    module: str
    price_id: str
    model: PriceModel
    unit_amount_minor: int  # per seat/unit for per-seat prices, per period for flat recurring, once for one-time
    quantity: int = 1
    interval: Interval | None = None  # recurring only


@dataclass(frozen=True)
class Line:
    module: str
    price_id: str
    model: PriceModel
    quantity: int
    unit_amount_minor: int
    full_period_minor: int  # what a whole period (or the one-time charge) costs
    prorated_minor: int  # what is due now before discount
    discount_minor: int
    total_minor: int
    period_start: datetime | None
    period_end: datetime | None
    proration: Fraction  # share of the period charged now (1 for one-time; 0 for metered)


def prorate_fraction(now: datetime, start: datetime, end: datetime) -> Fraction:
    """Share of [start, end) that remains from ``now``, to the second."""
    assert start <= now < end
    return Fraction(int((end - now).total_seconds()), int((end - start).total_seconds()))


def price_line(item: LineInput, *, now: datetime, anchor_day: int, discount_bps: int) -> Line:
    """One quote line: recurring prices are prorated to the end of the current period."""
    assert item.quantity >= 1 and item.unit_amount_minor >= 0 and 0 <= discount_bps <= 10_000
    full = item.unit_amount_minor * item.quantity
    start = end = None
    if item.model == "recurring":
        assert item.interval is not None
        start, end = period_of(now, interval=item.interval, anchor_day=anchor_day)
        share = prorate_fraction(now, start, end)
    elif item.model == "one_time":
        share = Fraction(1)
    else:
        share = Fraction(0)  # metered: billed on usage, nothing due at purchase
    prorated = round_half_up(full * share)
    discount = round_half_up(Fraction(prorated * discount_bps, 10_000))
    return Line(
        module=item.module, price_id=item.price_id, model=item.model, quantity=item.quantity,
        unit_amount_minor=item.unit_amount_minor, full_period_minor=full, prorated_minor=prorated,
        discount_minor=discount, total_minor=prorated - discount, period_start=start, period_end=end,
        proration=share,
    )


def total(lines: list[Line]) -> int:
    return sum(line.total_minor for line in lines)
