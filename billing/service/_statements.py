"""Closing a period: each account's budget captures and refunds become a statement, once per (account, period)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import BigInteger, cast, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.accounts.models import Account
from app.clock import Clock
from app.events import publish
from app.ids import new_id
from billing.domain.ledger import LedgerKind
from billing.domain.quotes import modules_of
from billing.domain.statements import StatementLine, statement_line
from billing.events import StatementFinalized
from billing.models import BudgetPeriod, LedgerEntry, Order, Statement


@dataclass(frozen=True)
class CloseResult:
    closed: list[Statement]
    already_closed: list[Statement]
    still_open: list[str]  # external ids of accounts whose budget period has not ended yet
    accounts: dict[str, Account]  # the accounts of the statements, by account_id


@dataclass
class _Spend:
    currency: str
    captured_minor: int = 0
    refunded_minor: int = 0


async def _spend(session: AsyncSession, period: str) -> dict[str, dict[str, _Spend]]:
    """Budget captures and refunds of ``period`` per account and order (one grouped query)."""
    rows = (await session.execute(
        select(LedgerEntry.account_id, LedgerEntry.order_id, LedgerEntry.kind, LedgerEntry.currency,
               cast(func.sum(LedgerEntry.amount_minor), BigInteger))
        .where(LedgerEntry.period == period, LedgerEntry.kind.in_(("capture", "refund")))
        .group_by(LedgerEntry.account_id, LedgerEntry.order_id, LedgerEntry.kind, LedgerEntry.currency))).all()
    by_account: dict[str, dict[str, _Spend]] = defaultdict(dict)
    for account_id, order_id, kind, currency, amount in rows:
        spend = by_account[account_id].setdefault(order_id, _Spend(currency=currency))
        _add(spend, kind, amount)
    return by_account


def _add(spend: _Spend, kind: LedgerKind, amount_minor: int) -> None:
    if kind == "capture":
        spend.captured_minor += amount_minor
    else:
        spend.refunded_minor += amount_minor


async def _lines(session: AsyncSession, by_account: dict[str, dict[str, _Spend]]) -> dict[str, list[StatementLine]]:
    """Each account's statement lines, with the modules and buyer of each order (one query for all orders)."""
    keys = [(a, o) for a, orders in by_account.items() for o in orders]
    orders = {(o.account_id, o.order_id): o for o in (await session.scalars(
        select(Order).where(tuple_(Order.account_id, Order.order_id).in_(keys)))).all()} if keys else {}
    out: dict[str, list[StatementLine]] = {}
    for account_id, spends in by_account.items():
        out[account_id] = []
        for order_id in sorted(spends):
            order, spend = orders.get((account_id, order_id)), spends[order_id]
            out[account_id].append(statement_line(
                order_id=order_id, currency=spend.currency, captured_minor=spend.captured_minor,
                refunded_minor=spend.refunded_minor, modules=modules_of(order.lines) if order else (),
                user_id=order.user_id if order else None,
                taxed=[(x.module, x.total_minor, x.tax_code, x.tax_behavior) for x in order.lines] if order else ()))
    return out


async def close_period(session: AsyncSession, *, period: str, clock: Clock, actor: str = "cli") -> CloseResult:
    """Build the statements of every account with budget spend in ``period`` (YYYY-MM). Re-running is harmless;
    every run is audited (who closed what)."""
    now = clock.now()
    periods = (await session.execute(
        select(BudgetPeriod.account_id, func.max(BudgetPeriod.ends_at)).where(BudgetPeriod.period == period)
        .group_by(BudgetPeriod.account_id))).all()
    open_accounts = {a for a, ends_at in periods if ends_at > now}
    by_account = await _spend(session, period)
    accounts = {a.account_id: a for a in (await session.scalars(
        select(Account).where(Account.account_id.in_(list(by_account))))).all()} if by_account else {}
    lines_of = await _lines(session, {a: s for a, s in by_account.items() if a not in open_accounts})
    result = CloseResult(closed=[], already_closed=[], still_open=[], accounts=accounts)
    for account_id in sorted(by_account):
        account = accounts[account_id]
        if account_id in open_accounts:
            result.still_open.append(account.external_id)
            continue
        statement, created = await _statement(session, account, period, lines_of[account_id], clock=clock)
        (result.closed if created else result.already_closed).append(statement)
    await audit.record(session, clock=clock, actor=actor, action="billing.period_closed", target_type="period",
                       target_id=period, after={"closed": [s.statement_id for s in result.closed],
                                                "already_closed": len(result.already_closed),
                                                "still_open": result.still_open})
    return result


async def _statement(session: AsyncSession, account: Account, period: str, lines: list[StatementLine], *,
                     clock: Clock) -> tuple[Statement, bool]:
    """The account's statement of ``period``: written once (a unique index), else the one already there."""
    captured = sum(x.captured_minor for x in lines)
    refunded = sum(x.refunded_minor for x in lines)
    statement_id = await session.scalar(
        insert(Statement).values(account_id=account.account_id, statement_id=new_id("stm"), period=period,
                                 currency=lines[0].currency, lines=lines, captured_minor=captured,
                                 refunded_minor=refunded, total_minor=captured - refunded, status="closed",
                                 stripe_invoice_id=None, created_at=clock.now())
        .on_conflict_do_nothing(index_elements=["account_id", "period"]).returning(Statement.statement_id))
    if statement_id is None:
        existing = await session.scalar(select(Statement).where(Statement.account_id == account.account_id,
                                                                Statement.period == period))
        assert existing is not None
        return existing, False
    statement = await session.get_one(Statement, (account.account_id, statement_id))
    await publish(session, StatementFinalized(
        statement_id=statement_id, account=account.external_id, period=period, currency=statement.currency,
        captured_minor=captured, refunded_minor=refunded, total_minor=captured - refunded, orders=len(lines)),
        clock=clock, account_id=account.account_id)
    return statement, True
