"""The quote fast path (issue 18): an auto-quote in two round trips on a bare driver connection -- one read of
everything ``price_quote`` reads (buyer, account, catalog head, held modules, budget with this period's balance,
policy in force, the buyer's spend), the same pricing and guardrail functions, then the price lock as one
``INSERT``. The catalog comes from this process's cache (by revision). Anything it cannot answer alone -- a
refusal, a user named by our own id, a catalog revision not cached yet, a tax Stripe must compute -- is left to
the ordinary path, which answers as it always did.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import asyncpg
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

import catalog
import entitlements
from app.accounts.models import Account, User
from app.auth import Principal
from app.clock import Clock
from app.db import driver_connection
from app.errors import DomainError
from app.onestatement import Statement, load, plain, select_list
from billing.domain import guardrails as g
from billing.domain.periods import period_of
from billing.domain.quotes import modules_of
from billing.domain.tax import NO_ADDRESS, not_computed
from billing.models import Budget, Quote
from billing.schemas import QuoteRead
from billing.service import _fast_memo as memo_
from billing.service import _tax as tax
from billing.service._fast_reads import (
    budget_joins,
    budget_left,
    buyer_widths,
    credited_sql,
    engine_key,
    policy_join,
    policy_of,
    spent_sql,
)
from billing.service._order_reads import quote_read
from billing.service._quotes import QuoteItem, priced_lines, quote_of

_SQL: dict[str, str] = {}


def _read_sql(dialect: Dialect) -> str:
    return (
        f"SELECT {select_list('u', User, dialect)}, {select_list('a', Account, dialect)}, "
        f"{select_list('b', Budget, dialect)}, "
        "p.period, p.amount_minor, p.reserved_minor, p.captured_minor, gv.policy, "
        f"{spent_sql('u.account_id', 'u.user_id', '$3')}, "
        "cr.revision, cr.source_sha256, cr.applied_at, "
        f"{entitlements.held_modules_sql('u.account_id', 'u.user_id', '$2', bought=False)}, "
        f"{entitlements.held_modules_sql('u.account_id', 'u.user_id', '$2', bought=True)}, "
        "gv.version, u.xmin::text, a.xmin::text, b.row_xmin "
        "FROM users u JOIN accounts a ON a.account_id = u.account_id "
        f"{budget_joins('u.account_id', '$2')}{policy_join('u.account_id')}"
        f"LEFT JOIN LATERAL ({catalog.head_sql()}) cr ON true "
        "WHERE u.external_id = $1")


async def fast_quote(engine: AsyncEngine, principal: Principal, *, user_ref: str, items: list[QuoteItem],
                     include_requirements: bool, clock: Clock, ttl: timedelta, taxed: bool) -> QuoteRead | None:
    """POST /v1/quotes in one read and one ``INSERT``, or None when the ordinary path must answer (nothing was
    written then). ``taxed``: Stripe is configured (quotes then carry the tax status Stripe Tax would give)."""
    dialect = engine.dialect
    sql = _SQL.get("read")
    if sql is None:
        sql = _SQL["read"] = _read_sql(dialect)
    now = clock.now()
    async with driver_connection(engine) as conn:
        try:
            row = await conn.fetchrow(sql, user_ref, now, period_of(now)[0])
        except asyncpg.PostgresError:  # e.g. a value PostgreSQL refuses: the ordinary path answers as it does
            return None
        if row is None:
            return None  # unknown, or named by our own id: the ordinary path looks further or answers 404
        values = list(row.values())
        widths = buyer_widths(dialect)
        user = load(User, values[:widths[0]], dialect)
        account = load(Account, values[widths[0]:widths[0] + widths[1]], dialect)
        at = widths[0] + widths[1]
        budget = load(Budget, values[at:at + widths[2]], dialect) if values[at] is not None else None
        (period, amount, reserved, captured, stored, spent, revision, sha, applied_at, held,
         owned, version, user_xmin, account_xmin, budget_xmin) = values[at + widths[2]:]
        if not principal.may_access_user(user.account_id, user.user_id) or revision is None:
            return None
        url = engine_key(engine)
        live = catalog.cached_live(url, int(revision), str(sha),
                                   applied_at.isoformat())
        if live is None:
            return None
        try:
            priced = priced_lines(live, account, user, items, held=frozenset(held), owned=frozenset(owned),
                                  include_requirements=include_requirements, now=now)
        except DomainError:
            return None  # the ordinary path refuses, exactly as it always did
        state, key = None, ""
        if budget is not None:
            key, state = budget_left(budget, period, amount, reserved, captured, now)
        policy = policy_of(stored)
        decision = g.decide(policy, g.Requester(roles=frozenset(user.roles), cost_center=user.cost_center),
                            g.Purchase(modules=modules_of(priced.lines), total_minor=priced.total,
                                       currency=account.currency, vendor_approval_required=priced.vendor_approval),
                            spent_minor=int(spent or 0), budget=state)
        quote = quote_of(priced, account, user, decision, now=now, ttl=ttl, make=partial(plain, Quote))
        if taxed:
            ask = tax.tax_ask(quote, account, user)
            if ask.customer is None:
                tax.apply_tax(quote, not_computed(NO_ADDRESS))
            elif not ask.items:
                tax.apply_tax(quote, tax.nothing_due(quote))
            else:
                return None  # Stripe Tax computes it, outside any transaction: the ordinary path
        statement = Statement(dialect)
        # the price lock commits without waiting for its WAL flush (D96): an order that uses it commits
        # synchronously, which flushes the WAL up to itself and so the quote too; a crash can only lose a quote
        # nobody ordered yet (the order then answers as for an unknown quote, and the buyer quotes again)
        statement.cte("async_commit", "SELECT set_config('synchronous_commit', 'off', true)", evaluate=True)
        statement.insert("quote", [quote])
        memo = (budget is not None and decision.outcome == "auto_approved" and decision.route == "budget"
                and not memo_.busy(url, budget.budget_id))
        categories = tuple(line.category for line in quote.lines)
        if memo:  # the credited categories the order decides from, read beside the price lock (_fast_memo)
            statement.output(credited_sql(statement.param(account.account_id, "VARCHAR"),
                                          statement.param(list(categories), "VARCHAR[]")))
        row = await conn.fetchrow(statement.sql(), *statement.args)
    if memo:
        assert budget is not None
        memo_.remember(url, memo_.Remembered(
            facts=memo_.OrderFacts(
                quote=quote, account=account, user=user, budget=budget,
                period=(period, amount, reserved, captured) if period is not None else None,
                policy_version=int(version or 0), policy=policy, spent_minor=int(spent or 0),
                head=(int(revision), str(sha), applied_at.isoformat()), credited=frozenset(row[1])),
            since=period_of(now)[0], budget_period=key, account_xmin=account_xmin, user_xmin=user_xmin,
            budget_xmin=budget_xmin, categories=categories))
    return quote_read(quote, account_ref=account.external_id, user_ref=user.external_id)
