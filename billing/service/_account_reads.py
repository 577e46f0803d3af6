"""Read models of an account's budgets, ledger, subscriptions and statements, and the vendor's reports.

Every list is one query; paginated lists fetch one row past the page to know whether a next page exists.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, and_, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Account, User
from app.clock import Clock
from app.schemas import encode_cursor
from billing.models import Budget, SalesCredit, Statement, Subscription
from billing.schemas import (
    BudgetList,
    BudgetRead,
    CloseRead,
    CreditReport,
    CreditRowRead,
    LedgerEntryRead,
    LedgerPage,
    StatementLineRead,
    StatementList,
    StatementRead,
    SubscriptionList,
    SubscriptionRead,
)
from billing.service._budgets import BudgetState, list_budget_states, list_ledger, read_budget
from billing.service._statements import CloseResult

SUBSCRIPTIONS_SHOWN = 200  # the list has no pages: an account has a few recurring purchases, not thousands


def budget_read(s: BudgetState) -> BudgetRead:
    """A budget with this period's balance, as the API shows it."""
    b = s.budget
    return BudgetRead(
        id=b.budget_id, name=b.name, cost_center=b.cost_center, currency=b.currency, amount_minor=b.amount_minor,
        anchor_day=b.anchor_day, period=s.period, period_starts_at=s.starts_at, period_ends_at=s.ends_at,
        period_amount_minor=s.amount_minor, reserved_minor=s.reserved_minor, captured_minor=s.captured_minor,
        remaining_minor=s.remaining_minor, used_pct=s.used_pct)


async def read_budget_state(session: AsyncSession, budget: Budget, *, clock: Clock) -> BudgetRead:
    """One budget and this period's amount, reserved, captured and remaining."""
    return budget_read(await read_budget(session, budget, clock=clock))


async def budget_list(session: AsyncSession, account: Account, *, clock: Clock) -> BudgetList:
    """The account's budgets with this period's balances (one query)."""
    return BudgetList(data=[budget_read(s) for s in await list_budget_states(session, account, clock=clock)])


async def ledger_page(session: AsyncSession, budget: Budget, *, period: str | None, after_id: int | None,
                      limit: int) -> LedgerPage:
    """A page of the budget's ledger, oldest first."""
    rows = await list_ledger(session, budget, period=period, after_id=after_id, limit=limit)
    data = [LedgerEntryRead(id=e.entry_id, period=e.period, kind=e.kind, amount_minor=e.amount_minor,
                            currency=e.currency, order_id=e.order_id, hold_id=e.hold_id, occurred_at=e.occurred_at)
            for e in rows[:limit]]
    return LedgerPage(data=data, next_cursor=encode_cursor(str(data[-1].id)) if len(rows) > limit else None)


def subscription_read(s: Subscription, user_ref: str) -> SubscriptionRead:
    """A subscription and its renewal state, as the API shows it."""
    return SubscriptionRead(
        id=s.subscription_id, order_id=s.order_id, user=user_ref, module=s.module, route=s.route,
        interval=s.interval, per_seat=s.per_seat, seats=s.quantity, unit_amount_minor=s.unit_amount_minor,
        currency=s.currency, status=s.status, current_period_start=s.current_period_start,
        current_period_end=s.current_period_end, grace_until=s.grace_until, next_attempt_at=s.next_attempt_at,
        dunning_attempts=s.dunning_attempts, last_order_id=s.last_order_id)


async def read_subscription(session: AsyncSession, sub: Subscription) -> SubscriptionRead:
    """One subscription with its user's external id."""
    user_ref = await session.scalar(select(User.external_id).where(User.account_id == sub.account_id,
                                                                   User.user_id == sub.user_id))
    assert user_ref is not None, "a subscription's user exists (foreign key)"
    return subscription_read(sub, user_ref)


async def subscription_list(session: AsyncSession, account_id: str) -> SubscriptionList:
    """The account's subscriptions with their users (one query)."""
    rows = (await session.execute(
        select(Subscription, User.external_id)
        .join(User, and_(User.account_id == Subscription.account_id, User.user_id == Subscription.user_id))
        .where(Subscription.account_id == account_id).order_by(Subscription.subscription_id)
        .limit(SUBSCRIPTIONS_SHOWN))).all()
    return SubscriptionList(data=[subscription_read(s, user_ref) for s, user_ref in rows])


def statement_read(s: Statement, account_ref: str) -> StatementRead:
    """A bill-back statement as the API shows it."""
    lines = [StatementLineRead(order_id=x.order_id, modules=list(x.modules), currency=x.currency,
                               captured_minor=x.captured_minor, refunded_minor=x.refunded_minor,
                               net_minor=x.net_minor, tax_minor=x.tax_minor) for x in s.lines]
    return StatementRead(id=s.statement_id, account=account_ref, period=s.period, currency=s.currency,
                         lines=lines, captured_minor=s.captured_minor, refunded_minor=s.refunded_minor,
                         total_minor=s.total_minor, status=s.status, stripe_invoice_id=s.stripe_invoice_id,
                         created_at=s.created_at, tax_minor=s.tax_minor, reverse_charge=s.reverse_charge)


async def statement_list(session: AsyncSession, account: Account) -> StatementList:
    """The account's statements, newest period first (one query)."""
    rows = await session.scalars(select(Statement).where(Statement.account_id == account.account_id)
                                 .order_by(Statement.period.desc()))
    return StatementList(data=[statement_read(s, account.external_id) for s in rows.all()])


def close_read(result: CloseResult, *, period: str) -> CloseRead:
    """What closing a period did, as the API shows it."""
    def reads(group: list[Statement]) -> list[StatementRead]:
        return [statement_read(s, result.accounts[s.account_id].external_id) for s in group]

    return CloseRead(period=period, closed=reads(result.closed), already_closed=reads(result.already_closed),
                     still_open=result.still_open)


async def credit_report(session: AsyncSession, *, period: str) -> CreditReport:
    """Bookings of a period by team, rep and motion (land, expand, renewal), per currency."""
    rows = (await session.execute(
        select(SalesCredit.team, SalesCredit.rep, SalesCredit.motion, SalesCredit.currency, SalesCredit.kind,
               func.count(), cast(func.coalesce(func.sum(SalesCredit.amount_minor), 0), BigInteger))
        .where(SalesCredit.period == period)
        .group_by(SalesCredit.team, SalesCredit.rep, SalesCredit.motion, SalesCredit.currency, SalesCredit.kind)
        .order_by(SalesCredit.team, SalesCredit.rep, SalesCredit.motion, SalesCredit.kind))).all()
    return CreditReport(period=period, rows=[
        CreditRowRead(team=t, rep=r, motion=m, currency=c, bookings=n, amount_minor=a, kind=k)
        for t, r, m, c, k, n, a in rows])
