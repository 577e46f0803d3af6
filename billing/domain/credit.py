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
