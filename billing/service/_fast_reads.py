"""SQL pieces the one-statement reads share (a quote's and an order's fast read, ``buyer_facts``): the buyer's
budget and its current period, the account's guardrail policy in force, what the buyer spent from budgets this
period; and what the budget has left, from the period row those reads return."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from app.accounts.models import Account, User
from app.onestatement import select_list
from billing.domain import guardrails as g
from billing.domain.periods import period_key, period_of
from billing.models import Budget
from billing.service._quotes import SPENDING_STATES

_POLICY = msgspec.json.Decoder(g.GuardrailPolicy)


def spent_sql(account: str, user: str, since: str) -> str:
    """The user's budget spend since ``since`` (as the guardrail decision counts it)."""
    states = ", ".join(f"'{s}'" for s in SPENDING_STATES)
    return (f"(SELECT coalesce(sum(o.total_minor - o.refunded_minor), 0) FROM orders o WHERE o.account_id = {account} "
            f"AND o.user_id = {user} AND o.route = 'budget' AND o.state IN ({states}) AND o.created_at >= {since})")


def budget_joins(account: str, now: str) -> str:
    """``b``: the budget of the user ``u``'s cost centre (else the account-wide one), with its row version
    (``b.row_xmin``, text); ``p``: its period at ``now``."""
    return (f"LEFT JOIN LATERAL (SELECT x.*, x.xmin::text AS row_xmin FROM budgets x WHERE x.account_id = {account} "
            "AND (x.cost_center = u.cost_center OR x.cost_center IS NULL) ORDER BY x.cost_center IS NULL LIMIT 1) b "
            "ON true "
            "LEFT JOIN budget_periods p ON p.account_id = b.account_id AND p.budget_id = b.budget_id "
            f"AND p.starts_at <= {now} AND p.ends_at > {now} ")


def credited_sql(account: str, categories: str) -> str:
    """The categories among ``categories`` the account was credited for before (sorted; land or expand): one index
    probe per category, bounded by the order's lines and not by the account's history (a ``DISTINCT`` over the
    account's credits of those categories read every one of them)."""
    return (f"ARRAY(SELECT DISTINCT w.category COLLATE \"C\" FROM unnest({categories}) AS w(category) "
            f"WHERE EXISTS (SELECT 1 FROM sales_credits c WHERE c.account_id = {account} "
            "AND c.category = w.category) ORDER BY 1)")


def policy_join(account: str) -> str:
    """``gv``: the account's newest guardrail version (``version``, ``policy``)."""
    return (f"LEFT JOIN LATERAL (SELECT v.version, v.policy FROM guardrail_versions v WHERE v.account_id = {account} "
            "ORDER BY v.version DESC LIMIT 1) gv ON true ")


@functools.cache
def buyer_widths(dialect: Dialect) -> tuple[int, int, int]:
    """How many columns ``select_list`` gives for User, Account and Budget (where each starts in a row that selects
    them one after another)."""
    u, a, b = (len(select_list("x", m, dialect).split(", ")) for m in (User, Account, Budget))
    return u, a, b


def budget_left(budget: Budget, period: str | None, amount: int | None, reserved: int | None,
                captured: int | None, now: datetime) -> tuple[str, g.BudgetState]:
    """The budget's period key at ``now`` and what it has left, from the period row ``budget_joins`` found (its
    key and amounts; None when the period has no row yet: the budget's amount untouched), as ``budget_and_state``
    computes it."""
    key = period_key(period_of(now, anchor_day=budget.anchor_day)[0])
    if period != key or amount is None or reserved is None or captured is None:
        return key, g.BudgetState(currency=budget.currency, remaining_minor=budget.amount_minor)
    return key, g.BudgetState(currency=budget.currency, remaining_minor=amount - reserved - captured)


def policy_of(stored: Any) -> g.GuardrailPolicy:
    """The policy as the read returned it (JSON text or decoded JSON); the default policy when there is none."""
    if stored is None:
        return g.GuardrailPolicy()
    if isinstance(stored, str):
        return _POLICY.decode(stored)
    return msgspec.convert(stored, g.GuardrailPolicy)


@functools.lru_cache(maxsize=16)
def url_key(url: URL) -> str:
    """The engine's URL as the catalog cache keys it (rendered once per URL, not per request)."""
    return url.render_as_string(hide_password=True)


@functools.lru_cache(maxsize=16)
def engine_key(engine: AsyncEngine) -> str:
    """``url_key`` of the engine's URL, found by the engine itself: a URL's hash renders it as a string again
    (py-spy: 3 % of the purchase's samples in a worker, three lookups per purchase)."""
    return url_key(engine.url)
