"""What a quote (and the order made from it) holds: typed lines, the guardrail decision at quote time.

Quote, order and subscription rows keep these in JSONB (app.types.StructJSONB); the JSON keys are the
field names, as they were when the rows were plain dicts, so old rows load into the same Structs.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

import msgspec

from billing.domain.guardrails import Outcome, Route
from billing.domain.periods import Interval
from billing.domain.pricing import Line, PriceModel
from billing.domain.tax import TaxBehavior

QuoteStatus = Literal["open", "ordered"]


class QuoteLine(msgspec.Struct, kw_only=True, frozen=True):
    """One priced module of a quote or an order: what is due now and the period it pays for."""

    module: str
    name: str
    category: str
    price_id: str
    price_version: int
    model: PriceModel
    interval: Interval | None
    per_seat: bool
    quantity: int
    unit_amount_minor: int
    full_period_minor: int
    prorated_minor: int
    discount_minor: int
    total_minor: int
    period_start: datetime | None
    period_end: datetime | None
    proration: str  # the share of the period charged now, as an exact fraction "n/d"
    trial_days: int | None
    tax_code: str | None = None  # the module's Stripe Tax code at quote time (none: the vendor's default)
    tax_behavior: TaxBehavior = "exclusive"  # whether total_minor includes tax (the price's behaviour)
    tax_minor: int | None = None  # Stripe Tax's tax on this line (None: not computed)

    @property
    def seat_pool(self) -> bool:
        """Several seats of a per-seat price are one pool the admin assigns, not the buyer's own grant."""
        return self.per_seat and self.quantity > 1

    @property
    def recurring(self) -> bool:
        """A line the billing run renews (it has a period and an interval)."""
        return self.model == "recurring" and self.period_end is not None and self.interval is not None


class QuoteDecision(msgspec.Struct, kw_only=True, frozen=True):
    """The guardrail decision stored with a quote (renewal quotes are always auto-approved)."""

    route: Route | None
    outcome: Outcome
    reasons: tuple[str, ...]
    vendor_approval_required: tuple[str, ...] = ()
    renewal: bool = False


def quote_line(priced: Line, *, name: str, category: str, price_version: int, interval: Interval | None,
               per_seat: bool, trial_days: int | None, tax_code: str | None = None,
               tax_behavior: TaxBehavior = "exclusive") -> QuoteLine:
    """The stored line of a priced module (pricing.Line) with the catalog facts shown to the buyer."""
    return QuoteLine(
        module=priced.module, name=name, category=category, price_id=priced.price_id, price_version=price_version,
        model=priced.model, interval=interval, per_seat=per_seat, quantity=priced.quantity,
        unit_amount_minor=priced.unit_amount_minor, full_period_minor=priced.full_period_minor,
        prorated_minor=priced.prorated_minor, discount_minor=priced.discount_minor, total_minor=priced.total_minor,
        period_start=priced.period_start, period_end=priced.period_end,
        proration=f"{priced.proration.numerator}/{priced.proration.denominator}", trial_days=trial_days,
        tax_code=tax_code, tax_behavior=tax_behavior)


def renewal_line(line: QuoteLine, priced: Line, *, period_start: datetime, period_end: datetime) -> QuoteLine:
    """A subscription's line for its next whole period: today's seats and unit price, nothing prorated."""
    return msgspec.structs.replace(
        line, quantity=priced.quantity, unit_amount_minor=priced.unit_amount_minor,
        full_period_minor=priced.full_period_minor, prorated_minor=priced.prorated_minor,
        discount_minor=priced.discount_minor, total_minor=priced.total_minor, period_start=period_start,
        period_end=period_end, proration="1/1")


def modules_of(lines: Iterable[QuoteLine]) -> tuple[str, ...]:
    """The modules of these lines, in line order."""
    return tuple(line.module for line in lines)


def subtotal_minor(lines: Iterable[QuoteLine]) -> int:
    """What is due before discounts: the sum of the rounded lines."""
    return sum(line.prorated_minor for line in lines)


def discount_minor(lines: Iterable[QuoteLine]) -> int:
    """The contract discount: the sum of each line's rounded discount."""
    return sum(line.discount_minor for line in lines)
