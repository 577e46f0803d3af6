"""What a period's usage costs under a metered price: included units, graduated and volume tiers, flat amounts,
the commitment drawn down first, late-usage adjustments; one rounding, half up."""

from __future__ import annotations

from billing.domain.metering import adjustment_minor, describe, usage_charge
from catalog.spec import MeteredPrice, Tier

GRADUATED = MeteredPrice(currency="USD", unit="view", tier_mode="graduated", included_quantity=10_000, per_units=1000,
                         tiers=[Tier(up_to=100_000, unit_amount_minor=50), Tier(up_to=1_000_000, unit_amount_minor=30),
                                Tier(unit_amount_minor=20, flat_amount_minor=700)])
VOLUME = MeteredPrice(currency="USD", unit="call", tier_mode="volume", included_quantity=100_000, per_units=1000,
                      tiers=[Tier(up_to=1_000_000, unit_amount_minor=40),
                             Tier(up_to=10_000_000, unit_amount_minor=25, flat_amount_minor=5000),
                             Tier(unit_amount_minor=15, flat_amount_minor=20000)])


def test_usage_within_the_included_quantity_costs_nothing() -> None:
    for price in (GRADUATED, VOLUME):
        c = usage_charge(price, price.included_quantity)
        assert (c.amount_minor, c.billable_quantity, c.tiers) == (0, 0, ())


def test_graduated_prices_each_unit_at_its_tiers_rate_and_adds_a_touched_tiers_flat_amount() -> None:
    c = usage_charge(GRADUATED, 150_000)  # 90,000 at 50/1000 + 50,000 at 30/1000
    assert c.amount_minor == 4500 + 1500 and [t.quantity for t in c.tiers] == [90_000, 50_000]
    c = usage_charge(GRADUATED, 1_000_500)  # and 500 in the last tier: 10 + its flat 700
    assert c.amount_minor == 4500 + 27_000 + 10 + 700


def test_volume_prices_every_billable_unit_at_the_tier_the_total_falls_in() -> None:
    assert usage_charge(VOLUME, 300_000).amount_minor == 8000
    assert usage_charge(VOLUME, 2_000_000).amount_minor == 1_900_000 * 25 // 1000 + 5000


def test_fractions_of_a_minor_unit_are_rounded_once_half_up() -> None:
    assert usage_charge(VOLUME, 100_013).amount_minor == 1  # 13 * 40 / 1000 = 0.52
    assert usage_charge(VOLUME, 100_012).amount_minor == 0  # 0.48


def test_a_commitment_is_billed_whole_and_usage_draws_it_down_before_any_overage() -> None:
    committed = MeteredPrice(currency="USD", unit="call", tiers=[Tier(unit_amount_minor=10)], commitment_minor=500)
    low, high = usage_charge(committed, 20), usage_charge(committed, 80)
    assert (low.usage_minor, low.drawn_minor, low.overage_minor, low.amount_minor) == (200, 200, 0, 500)
    assert (high.usage_minor, high.drawn_minor, high.overage_minor, high.amount_minor) == (800, 500, 300, 800)


def test_late_usage_bills_the_difference_of_the_whole_periods_totals() -> None:
    # 300,000 -> 1,200,000 crosses into the second volume tier: every unit is repriced, not just the new ones
    assert adjustment_minor(VOLUME, billed_quantity=300_000, quantity=1_200_000) == (
        usage_charge(VOLUME, 1_200_000).amount_minor - 8000)
    assert adjustment_minor(VOLUME, billed_quantity=300_000, quantity=300_000) == 0


def test_the_terms_read_as_words() -> None:
    text = describe(GRADUATED)
    assert text.startswith("graduated tiers, first 10000 views included") and "above 1000000: 20 per 1000 views" in text
