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


# The smallest amount a card payment may charge, per currency, in minor units (Stripe's published minimums;
# currencies it lists none for get an amount near 0.50 USD). A card charge below it is refused by Stripe.
CARD_MINIMUM_MINOR: dict[str, int] = {
    "USD": 50, "EUR": 50, "GBP": 30, "CHF": 50, "CAD": 50, "AUD": 50, "NZD": 50, "SEK": 300, "NOK": 300,
    "DKK": 250, "PLN": 200, "CZK": 1500, "BRL": 50, "MXN": 1000, "INR": 50, "SGD": 50, "HKD": 400, "ZAR": 1000,
    "CNY": 400, "ILS": 200, "JPY": 50, "KRW": 700, "CLP": 500, "ISK": 70, "VND": 13000,
    "KWD": 200, "BHD": 200, "JOD": 400, "OMR": 200, "TND": 1500,
}


def card_minimum_minor(currency: str) -> int:
    """The smallest card charge in ``currency`` (minor units)."""
    return CARD_MINIMUM_MINOR[currency]


def card_amount_problem(amount_minor: int, currency: str) -> str | None:
    """Why a card cannot be charged ``amount_minor`` (None: it can). Zero is never charged, so never a problem.

    Rules: at least the currency's card minimum; in three-decimal currencies a multiple of 10 minor units
    (card networks settle them to two decimals); zero-decimal currencies have no further rule.
    """
    if amount_minor == 0:
        return None
    minimum = card_minimum_minor(currency)
    if amount_minor < minimum:
        return (f"{format_minor(amount_minor, currency)} is below the smallest card payment of "
                f"{format_minor(minimum, currency)}.")
    if exponent(currency) == 3 and amount_minor % 10:
        return f"Card payments in {currency} must be a multiple of 0.010 {currency}."
    return None


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
