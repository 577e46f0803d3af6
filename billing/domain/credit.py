"""Sales credit: which motion a booking counts for (land, expand, renewal)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Motion = Literal["land", "expand", "renewal"]


def classify(*, category: str, is_renewal: bool, owned_categories: Iterable[str]) -> Motion:
    """Land = the account's first module of this category; expand = further modules or seats; renewal = renewal."""
    if is_renewal:
        return "renewal"
    return "expand" if category in set(owned_categories) else "land"


CreditKind = Literal["booking", "reversal"]


def reversal_shares(bookings: list[tuple[str, int]], *, amount_minor: int) -> list[tuple[str, int]]:
    """Split a refunded amount over the booked lines (module, amount) in proportion, as non-negative shares
    that add up exactly to ``min(amount, booked)``; the rounding remainder goes to the last line."""
    booked = sum(a for _, a in bookings)
    amount = min(amount_minor, booked)
    if booked <= 0 or amount <= 0:
        return []
    shares: list[tuple[str, int]] = []
    given = 0
    for i, (module, line) in enumerate(bookings):
        share = amount - given if i == len(bookings) - 1 else amount * line // booked
        given += share
        shares.append((module, share))
    return [(m, s) for m, s in shares if s > 0]
