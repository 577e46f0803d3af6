"""Closing a period: each account's budget captures and refunds become a statement, once per (account, period)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app import outbox
from app.accounts.models import Account
from app.clock import Clock
from app.ids import new_id
from billing.models import BudgetPeriod, LedgerEntry, Order, SalesCredit, Statement


@dataclass(frozen=True)
class CloseResult:
    closed: list[Statement]
    already_closed: list[Statement]
    still_open: list[str]  # external ids of accounts whose budget period has not ended yet


async def close_period(session: AsyncSession, *, period: str, clock: Clock) -> CloseResult:
    """Build the statements of every account with budget spend in ``period`` (YYYY-MM). Re-running is harmless."""
    now = clock.now()
    periods = (await session.execute(
        select(BudgetPeriod.account_id, func.max(BudgetPeriod.ends_at)).where(BudgetPeriod.period == period)
        .group_by(BudgetPeriod.account_id))).all()
    open_accounts = {a for a, ends_at in periods if ends_at > now}
    rows = (await session.execute(
        select(LedgerEntry.account_id, LedgerEntry.order_id, LedgerEntry.kind, LedgerEntry.currency,
               func.sum(LedgerEntry.amount_minor))
        .where(LedgerEntry.period == period, LedgerEntry.kind.in_(("capture", "refund")))
        .group_by(LedgerEntry.account_id, LedgerEntry.order_id, LedgerEntry.kind, LedgerEntry.currency))).all()
    by_account: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for account_id, order_id, kind, currency, amount in rows:
        line = by_account[account_id].setdefault(order_id, {"order_id": order_id, "currency": currency,
                                                            "captured_minor": 0, "refunded_minor": 0})
        line["captured_minor" if kind == "capture" else "refunded_minor"] += int(amount)
    closed, already, still_open = [], [], []
    for account_id in sorted(by_account):
        account = await session.get_one(Account, account_id)
        if account_id in open_accounts:
            still_open.append(account.external_id)
            continue
        lines = sorted(by_account[account_id].values(), key=lambda x: x["order_id"])
        for line in lines:
            order = await session.get(Order, (account_id, line["order_id"]))
            line["modules"] = [x["module"] for x in order.lines] if order else []
            line["user_id"] = order.user_id if order else None
            line["net_minor"] = line["captured_minor"] - line["refunded_minor"]
        captured = sum(x["captured_minor"] for x in lines)
        refunded = sum(x["refunded_minor"] for x in lines)
        statement_id = await session.scalar(
            insert(Statement).values(account_id=account_id, statement_id=new_id("stm"), period=period,
                                     currency=lines[0]["currency"], lines=lines, captured_minor=captured,
                                     refunded_minor=refunded, total_minor=captured - refunded, status="closed",
                                     stripe_invoice_id=None, created_at=now)
            .on_conflict_do_nothing(index_elements=["account_id", "period"]).returning(Statement.statement_id))
        if statement_id is None:
            existing = await session.scalar(select(Statement).where(Statement.account_id == account_id,
                                                                    Statement.period == period))
            assert existing is not None
            already.append(existing)
            continue
        statement = await session.get_one(Statement, (account_id, statement_id))
        closed.append(statement)
        await outbox.emit(session, clock=clock, type="statement.finalized", account_id=account_id, payload={
            "statement_id": statement_id, "account": account.external_id, "period": period,
            "currency": statement.currency, "captured_minor": captured, "refunded_minor": refunded,
            "total_minor": captured - refunded, "orders": len(lines)})
    return CloseResult(closed=closed, already_closed=already, still_open=still_open)


async def list_statements(session: AsyncSession, account_id: str) -> list[Statement]:
    return list((await session.scalars(select(Statement).where(Statement.account_id == account_id)
                                       .order_by(Statement.period.desc()))).all())


@dataclass(frozen=True)
class CreditRow:
    team: str | None
    rep: str | None
    motion: str
    currency: str
    bookings: int
    amount_minor: int


async def sales_credit_report(session: AsyncSession, *, period: str) -> list[CreditRow]:
    """Bookings of a period by team, rep and motion (land, expand, renewal), per currency."""
    rows = (await session.execute(
        select(SalesCredit.team, SalesCredit.rep, SalesCredit.motion, SalesCredit.currency, func.count(),
               func.sum(SalesCredit.amount_minor))
        .where(SalesCredit.period == period)
        .group_by(SalesCredit.team, SalesCredit.rep, SalesCredit.motion, SalesCredit.currency)
        .order_by(SalesCredit.team, SalesCredit.rep, SalesCredit.motion))).all()
    return [CreditRow(team=t, rep=r, motion=m, currency=c, bookings=int(n), amount_minor=int(a or 0))
            for t, r, m, c, n, a in rows]
