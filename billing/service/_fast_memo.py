"""What a fast quote read, remembered in this process for the order that follows it (issue 18, D99).

The order's fast path (``_fast_order``) decides from the quote, the account, the buyer, the budget with this
period's balance, the policy in force, the buyer's spend, the catalog head and the account's credited categories.
The quote's fast path (``_fast_quote``) has just read all of it but the quote itself (which it wrote) and the
credited categories (which its ``INSERT`` statement reads back). It leaves them here, by quote id, and the order
placed on that quote in this process takes them instead of reading them again: one round trip less.

A memo may be stale by the time the order comes, so it also keeps what the order's statement checks, in the same
statement, before it writes anything (``memo_guards``): the account's and the buyer's rows are the very row
versions read (their ``xmin``), the budget the buyer's cost centre selects is the same row version, the credited
categories are the same, and this period's budget row holds what it held. The other facts are guarded by the
statement as they always were (the quote still open, the policy version, the catalog head, the spend under the
cap, the capture's room). A memo guard that fails makes the statement write nothing; the order then reads as
before and builds its statement again (``memo_changed``), or, when it is the budget's period row that moved
(another buyer spent from the same budget), the budget is marked busy for a while: its orders read instead of
trusting a memo that will rarely hold (a budget many buyers share).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from app.accounts.models import Account, User
from billing.domain import guardrails as g
from billing.models import Budget, Quote

MEMO_SIZE = 4096  # quotes remembered per process and database (the oldest forgotten first)
BUSY_SECONDS = 10.0  # how long a budget whose period row moved under a memo is read instead


@dataclass(frozen=True)
class OrderFacts:
    """What the order's decision and rows are made from (one read, or a memo of the quote's)."""

    quote: Quote
    account: Account
    user: User
    budget: Budget | None
    period: tuple[str, int, int, int] | None  # this period's row: key, amount, reserved, captured
    policy_version: int
    policy: g.GuardrailPolicy
    spent_minor: int
    head: tuple[int, str, str] | None  # catalog revision, its sha256, applied_at (ISO 8601)
    credited: frozenset[str]  # categories the account was credited for before


@dataclass(frozen=True)
class Remembered:
    """A quote's facts and the row versions they were read from."""

    facts: OrderFacts
    since: datetime  # the calendar period the spend was counted from
    budget_period: str  # the budget's period key at quote time
    account_xmin: str
    user_xmin: str
    budget_xmin: str
    categories: tuple[str, ...]  # the quote's lines' categories (the credited ones are among them)


_MEMO: OrderedDict[tuple[str, str], Remembered] = OrderedDict()
_BUSY: dict[tuple[str, str], float] = {}


def remember(url: str, remembered: Remembered) -> None:
    _MEMO[(url, remembered.facts.quote.quote_id)] = remembered
    while len(_MEMO) > MEMO_SIZE:
        _MEMO.popitem(last=False)


def take(url: str, quote_id: str) -> Remembered | None:
    """The memo of this quote, forgotten here (an order tries it once); None: none, or its budget is busy."""
    found = _MEMO.pop((url, quote_id), None)
    if found is None or found.facts.budget is None or busy(url, found.facts.budget.budget_id):
        return None
    return found


def busy(url: str, budget_id: str) -> bool:
    until = _BUSY.get((url, budget_id))
    if until is None:
        return False
    if until > time.monotonic():
        return True
    del _BUSY[(url, budget_id)]
    return False


def mark_busy(url: str, budget_id: str) -> None:
    if len(_BUSY) > MEMO_SIZE:
        _BUSY.clear()
    _BUSY[(url, budget_id)] = time.monotonic() + BUSY_SECONDS


def forget() -> None:
    """Forget every memo and busy mark (tests)."""
    _MEMO.clear()
    _BUSY.clear()
