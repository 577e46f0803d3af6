"""Money is integer minor units plus an ISO 4217 currency; this module knows each currency's exponent and
holds the one rounding rule every amount goes through."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

# ISO 4217 minor-unit exponents for the currencies the service accepts.
CURRENCY_EXPONENTS: dict[str, int] = {
    "USD": 2, "EUR": 2, "GBP": 2, "CHF": 2, "CAD": 2, "AUD": 2, "NZD": 2, "SEK": 2, "NOK": 2, "DKK": 2,
    "PLN": 2, "CZK": 2, "BRL": 2, "MXN": 2, "INR": 2, "SGD": 2, "HKD": 2, "ZAR": 2, "CNY": 2, "ILS": 2,
    "JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "VND": 0,
    "KWD": 3, "BHD": 3, "JOD": 3, "OMR": 3, "TND": 3,
}


def is_currency(code: str) -> bool:
    """True for an upper-case ISO 4217 code the service supports."""
    return code in CURRENCY_EXPONENTS


def exponent(currency: str) -> int:
    """Number of decimal places of the currency's minor unit."""
    return CURRENCY_EXPONENTS[currency]


def round_half_up(value: Fraction) -> int:
    """The rounding rule: an exact, non-negative amount of minor units to a whole one, halves away from zero."""
    assert value >= 0
    return int(value + Fraction(1, 2)) if value.denominator != 1 else int(value)


def format_minor(amount_minor: int, currency: str) -> str:
    """Human-readable amount, e.g. ``12.50 USD``."""
    exp = exponent(currency)
    return f"{Decimal(amount_minor).scaleb(-exp):.{exp}f} {currency}"
