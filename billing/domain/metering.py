"""Metered prices: what a period's usage costs, under the one rounding rule.

Rules (docs/commerce.md, "Metered billing"):
* ``included_quantity`` units of each period are free; tiers are counted on the period's *total* quantity;
* ``graduated``: each billable unit costs the rate of the tier its position falls in; a tier's flat amount is
  charged once when any billable unit falls in it;
* ``volume``: the tier the total falls in prices every billable unit, plus that tier's flat amount;
* rates are per ``per_units`` units: the exact amount is a fraction of minor units, rounded once, half up;
* a ``commitment_minor`` is prepaid per period: it is billed in full and the usage charge draws it down
  first, so the period costs ``max(commitment, usage)`` and the overage is what exceeds the commitment;
* a late correction of a closed period bills the difference of the two totals (never negative here: usage
  only grows).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from app.money import round_half_up
from billing.domain.quotes import MeteredTerms, MeteredTier
from catalog.spec import MeteredPrice


@dataclass(frozen=True)
class TierCharge:
    """The billable units that fell in one tier and what they cost (before the one rounding)."""

    up_to: int | None
    quantity: int
    unit_amount_minor: int
    flat_amount_minor: int


@dataclass(frozen=True)
class UsageCharge:
    """One period's usage under one price: quantities, the tiers used and the amounts billed."""

    quantity: int
    included_quantity: int
    billable_quantity: int
    usage_minor: int  # what the usage alone costs (rounded once)
    commitment_minor: int
    drawn_minor: int  # the part of the usage charge paid from the commitment
    overage_minor: int  # the usage charge beyond the commitment
    amount_minor: int  # what the period bills: commitment plus overage
    tiers: tuple[TierCharge, ...]


def _graduated(price: MeteredPrice, quantity: int) -> tuple[Fraction, list[TierCharge]]:
    total, lower, out = Fraction(0), 0, []
    for tier in price.tiers:
        upper = tier.up_to if tier.up_to is not None else max(quantity, lower)
        start = max(lower, price.included_quantity)
        units = max(0, min(quantity, upper) - start)
        if units > 0:
            total += Fraction(units * tier.unit_amount_minor, price.per_units) + tier.flat_amount_minor
            out.append(TierCharge(tier.up_to, units, tier.unit_amount_minor, tier.flat_amount_minor))
        lower = upper
        if tier.up_to is None or quantity <= upper:
            break
    return total, out


def _volume(price: MeteredPrice, quantity: int) -> tuple[Fraction, list[TierCharge]]:
    billable = max(0, quantity - price.included_quantity)
    if billable == 0:
        return Fraction(0), []
    tier = next(t for t in price.tiers if t.up_to is None or quantity <= t.up_to)
    amount = Fraction(billable * tier.unit_amount_minor, price.per_units) + tier.flat_amount_minor
    return amount, [TierCharge(tier.up_to, billable, tier.unit_amount_minor, tier.flat_amount_minor)]


def usage_charge(price: MeteredPrice, quantity: int) -> UsageCharge:
    """What ``quantity`` units used in one period cost under ``price`` (commitment drawn down first)."""
    assert quantity >= 0
    exact, tiers = (_graduated if price.tier_mode == "graduated" else _volume)(price, quantity)
    usage = round_half_up(exact)
    commitment = price.commitment_minor
    drawn = min(usage, commitment)
    overage = usage - drawn
    return UsageCharge(
        quantity=quantity, included_quantity=min(quantity, price.included_quantity),
        billable_quantity=max(0, quantity - price.included_quantity), usage_minor=usage,
        commitment_minor=commitment, drawn_minor=drawn, overage_minor=overage, amount_minor=commitment + overage,
        tiers=tuple(tiers))


def adjustment_minor(price: MeteredPrice, *, billed_quantity: int, quantity: int) -> int:
    """What late usage adds to a period already billed for ``billed_quantity`` units."""
    return usage_charge(price, quantity).amount_minor - usage_charge(price, billed_quantity).amount_minor


def describe(price: MeteredPrice) -> str:
    """The price in words for quotes and invoices (amounts in minor units)."""
    per = f"per {price.per_units} {price.unit}s" if price.per_units > 1 else f"per {price.unit}"
    parts = []
    lower = 0
    for tier in price.tiers:
        span = f"{lower + 1}-{tier.up_to}" if tier.up_to is not None else f"above {lower}"
        flat = f" + {tier.flat_amount_minor} flat" if tier.flat_amount_minor else ""
        parts.append(f"{span}: {tier.unit_amount_minor} {per}{flat}")
        lower = tier.up_to or lower
    head = f"{price.tier_mode} tiers"
    if price.included_quantity:
        head += f", first {price.included_quantity} {price.unit}s included"
    if price.commitment_minor:
        head += f", commitment {price.commitment_minor} per {price.interval}"
    return f"{head}; " + "; ".join(parts)


def terms(price: MeteredPrice) -> MeteredTerms:
    """The price's terms as a quote line states them."""
    return MeteredTerms(
        unit=price.unit, interval=price.interval, tier_mode=price.tier_mode,
        included_quantity=price.included_quantity, per_units=price.per_units,
        tiers=tuple(MeteredTier(up_to=t.up_to, unit_amount_minor=t.unit_amount_minor,
                                flat_amount_minor=t.flat_amount_minor) for t in price.tiers),
        commitment_minor=price.commitment_minor, description=describe(price))
