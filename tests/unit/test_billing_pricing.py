"""Periods, proration and the rounding rule."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain.periods import period_of
from billing.domain.pricing import LineInput, price_line, prorate_fraction, round_half_up


def at(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


@pytest.mark.parametrize(("now", "anchor", "start", "end"), [
    (at(2026, 11, 23, 12), 1, at(2026, 11, 1), at(2026, 12, 1)),
    (at(2026, 12, 31, 23, 59), 1, at(2026, 12, 1), at(2027, 1, 1)),
    (at(2026, 11, 3), 15, at(2026, 10, 15), at(2026, 11, 15)),
    (at(2026, 11, 15), 15, at(2026, 11, 15), at(2026, 12, 15)),
    (at(2027, 1, 10), 15, at(2026, 12, 15), at(2027, 1, 15)),
])
def test_monthly_periods_follow_the_anchor_day(now: datetime, anchor: int, start: datetime, end: datetime) -> None:
    assert period_of(now, anchor_day=anchor) == (start, end)


def test_yearly_periods() -> None:
    assert period_of(at(2026, 11, 23), interval="year") == (at(2026, 1, 1), at(2027, 1, 1))
    assert period_of(at(2026, 3, 1), interval="year", anchor_day=15, anchor_month=6) == (at(2025, 6, 15),
                                                                                         at(2026, 6, 15))


@pytest.mark.parametrize(("value", "expected"), [
    (Fraction(0), 0), (Fraction(1, 2), 1), (Fraction(3, 2), 2), (Fraction(5, 2), 3), (Fraction(49, 100), 0),
    (Fraction(2499, 1000), 2), (Fraction(7), 7),
])
def test_round_half_up(value: Fraction, expected: int) -> None:
    assert round_half_up(value) == expected


def test_recurring_price_is_prorated_to_the_period_end() -> None:
    # 30-day November, bought at noon on the 16th: 14.5 days of 30 remain.
    line = price_line(LineInput(module="m", price_id="p", model="recurring", unit_amount_minor=3000, quantity=2,
                                interval="month"), now=at(2026, 11, 16, 12), anchor_day=1, discount_bps=0)
    assert line.proration == Fraction(29, 60)
    assert line.full_period_minor == 6000 and line.prorated_minor == 2900 and line.total_minor == 2900
    assert (line.period_start, line.period_end) == (at(2026, 11, 1), at(2026, 12, 1))


def test_discount_is_applied_to_the_rounded_line_and_rounded_half_up() -> None:
    line = price_line(LineInput(module="m", price_id="p", model="one_time", unit_amount_minor=999),
                      now=at(2026, 11, 16), anchor_day=1, discount_bps=1050)
    assert line.prorated_minor == 999
    assert line.discount_minor == 105  # 104.895 -> 105
    assert line.total_minor == 894


def test_metered_prices_cost_nothing_at_purchase() -> None:
    line = price_line(LineInput(module="m", price_id="p", model="metered", unit_amount_minor=5),
                      now=at(2026, 11, 16), anchor_day=1, discount_bps=0)
    assert line.total_minor == 0 and line.proration == 0


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)),
       st.integers(0, 10**9), st.integers(1, 500), st.integers(0, 10_000), st.integers(1, 28))
def test_lines_are_never_negative_nor_above_the_full_price(now: datetime, unit: int, qty: int, bps: int,
                                                           anchor: int) -> None:
    line = price_line(LineInput(module="m", price_id="p", model="recurring", unit_amount_minor=unit, quantity=qty,
                                interval="month"), now=now, anchor_day=anchor, discount_bps=bps)
    assert 0 <= line.total_minor <= line.prorated_minor <= line.full_period_minor
    assert isinstance(line.total_minor, int)
    start, end = period_of(now, anchor_day=anchor)
    assert start <= now < end and 0 < prorate_fraction(now, start, end) <= 1
