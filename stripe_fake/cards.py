"""Stripe's test payment methods (https://docs.stripe.com/testing) and how the fake makes them behave."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Behaviour = Literal["succeed", "authenticate", "decline_on_setup", "decline"]


@dataclass(frozen=True)
class TestCard:
    brand: str
    last4: str
    behaviour: Behaviour
    decline_code: str | None = None
    country: str = "US"


TEST_CARDS: dict[str, TestCard] = {
    "pm_card_visa": TestCard("visa", "4242", "succeed"),
    "pm_card_mastercard": TestCard("mastercard", "4444", "succeed"),
    "pm_card_amex": TestCard("amex", "8431", "succeed"),
    # 4000002760003184: every payment needs 3-D Secure (off-session: card error authentication_required).
    "pm_card_authenticationRequired": TestCard("visa", "3184", "authenticate"),
    # 4000000000000002: declined, already when it is saved (Stripe validates the card on setup).
    "pm_card_chargeDeclined": TestCard("visa", "0002", "decline_on_setup", "generic_decline"),
    # 4000000000009995: saved fine, every charge declines for insufficient funds.
    "pm_card_chargeDeclinedInsufficientFunds": TestCard("visa", "9995", "decline", "insufficient_funds"),
    # 4000000000000341: attaching succeeds, charges fail.
    "pm_card_chargeCustomerFail": TestCard("visa", "0341", "decline", "generic_decline"),
}

DECLINE_MESSAGES = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
}

# What Stripe.js sends for a card typed into a form (test mode): the number decides the test card.
TEST_NUMBERS: dict[str, str] = {
    "4242424242424242": "pm_card_visa",
    "5555555555554444": "pm_card_mastercard",
    "378282246310005": "pm_card_amex",
    "4000002760003184": "pm_card_authenticationRequired",
    "4000000000000002": "pm_card_chargeDeclined",
    "4000000000009995": "pm_card_chargeDeclinedInsufficientFunds",
    "4000000000000341": "pm_card_chargeCustomerFail",
}


def luhn_valid(number: str) -> bool:
    """The card number's check digit is right (what Stripe checks before anything else)."""
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0
