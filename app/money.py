"""Money is integer minor units plus an ISO 4217 currency; this module knows each currency's exponent."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

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


def to_minor(amount: Decimal, currency: str, *, rounding: str = ROUND_HALF_EVEN) -> int:
    """Convert a major-unit decimal amount to integer minor units with an explicit rounding mode."""
    scaled = amount.scaleb(exponent(currency))
    return int(scaled.quantize(Decimal(1), rounding=rounding))


def format_minor(amount_minor: int, currency: str) -> str:
    """Human-readable amount, e.g. ``12.50 USD``."""
    exp = exponent(currency)
    return f"{Decimal(amount_minor).scaleb(-exp):.{exp}f} {currency}"
