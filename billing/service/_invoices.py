"""Bill-back invoices: a closed statement becomes Stripe invoice items and one ``send_invoice`` invoice.

Idempotent per (account, period) because a statement is unique per (account, period) and every Stripe
call's key derives from the statement id (``statement:{id}:item:{n}``, ``:invoice``, ``:finalize``,
``:send``): a re-run, or a run after a crash mid-way, replays Stripe's answers instead of billing twice.
No transaction is open across the calls: the account's customer id and the invoice id are written after.
Invoice status then follows the invoice webhooks (``invoice_event``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import stripe
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import outbox
from app.accounts.models import Account
from app.clock import Clock
from billing.domain.statements import StatementStatus
from billing.models import Statement
from billing.stripe_events import EventContext
from billing.stripe_gateway import StripeGateway, idem

log = logging.getLogger("commerce.invoices")

# Statement status after each invoice event; a later status never moves back to an earlier one.
_RANK = {"closed": 0, "invoiced": 1, "payment_failed": 2, "paid": 3, "void": 3}
_EVENT_STATUS: dict[str, StatementStatus] = {
    "invoice.finalized": "invoiced", "invoice.payment_failed": "payment_failed", "invoice.paid": "paid",
    "invoice.voided": "void"}


@dataclass(frozen=True)
class InvoiceLine:
    amount_minor: int
    description: str
    ref: str


def invoice_lines(statement: Statement) -> list[InvoiceLine]:
    """One invoice item per statement line (an order's captures less its refunds); else one for the total."""
    lines: list[InvoiceLine] = []
    for line in statement.lines:
        if line.net_minor == 0:
            continue
        modules = ", ".join(line.modules) or "Purchase"
        lines.append(InvoiceLine(line.net_minor, f"{modules} (order {line.order_id})"[:500], line.order_id))
    if not lines or sum(x.amount_minor for x in lines) != statement.total_minor:
        lines = [InvoiceLine(statement.total_minor, f"Purchases in {statement.period}", "total")]
    return lines


async def ensure_account_customer(sessionmaker: async_sessionmaker[AsyncSession], gateway: StripeGateway,
                                  account: Account) -> str:
    """The account's Stripe customer (the bill-back payer), created once by key, stored by a guarded UPDATE."""
    if account.stripe_customer_id:
        return account.stripe_customer_id
    customer = await gateway.create_customer(key=idem("account", account.account_id, "customer"),
                                             metadata={"commerce_account_id": account.account_id},
                                             name=account.name)
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Account).where(Account.account_id == account.account_id,
                                                    Account.stripe_customer_id.is_(None))
                              .values(stripe_customer_id=customer.id))
    return customer.id


async def invoice_statement(sessionmaker: async_sessionmaker[AsyncSession], gateway: StripeGateway,
                            account_id: str, statement_id: str, *, clock: Clock) -> str | None:
    """Invoice one closed statement; returns the Stripe invoice id (None when there is nothing to bill)."""
    async with sessionmaker() as session:
        statement = await session.get_one(Statement, (account_id, statement_id))
        account = await session.get_one(Account, account_id)
        if statement.total_minor <= 0:
            return None
        if statement.stripe_invoice_id is not None and statement.status != "closed":
            return statement.stripe_invoice_id
    customer_id = await ensure_account_customer(sessionmaker, gateway, account)
    meta = {"commerce_account_id": account_id, "commerce_statement_id": statement_id, "period": statement.period}
    for n, line in enumerate(invoice_lines(statement), start=1):
        await gateway.create_invoice_item(
            customer_id=customer_id, amount_minor=line.amount_minor, currency=statement.currency,
            description=line.description, key=idem("statement", statement_id, "item", n),
            metadata={**meta, "ref": line.ref})
    invoice = await gateway.create_invoice(
        customer_id=customer_id, days_until_due=account.payment_terms_days, key=idem("statement", statement_id,
                                                                                       "invoice"),
        metadata=meta, description=f"Purchases from your budgets, {statement.period}")
    if invoice.status == "draft":
        invoice = await gateway.finalize_invoice(invoice.id, key=idem("statement", statement_id, "finalize"))
    if invoice.status == "open":
        await gateway.send_invoice(invoice.id, key=idem("statement", statement_id, "send"))
    async with sessionmaker() as session, session.begin():
        row = await session.get_one(Statement, (account_id, statement_id), with_for_update=True)
        row.stripe_invoice_id = invoice.id
        _advance(row, "paid" if invoice.status == "paid" else "invoiced")
        await outbox.emit(session, clock=clock, type="statement.invoiced", account_id=account_id, payload={
            "statement_id": statement_id, "period": row.period, "invoice": invoice.id, "total_minor": row.total_minor,
            "currency": row.currency, "hosted_invoice_url": invoice.hosted_invoice_url,
            "days_until_due": account.payment_terms_days})
    return invoice.id


async def invoice_period(sessionmaker: async_sessionmaker[AsyncSession], gateway: StripeGateway, period: str, *,
                         clock: Clock) -> dict[str, int]:
    """Invoice every closed statement of ``period`` with spend (the invoicing step of closing a period)."""
    async with sessionmaker() as session:
        rows = (await session.execute(select(Statement.account_id, Statement.statement_id).where(
            Statement.period == period, Statement.status == "closed", Statement.total_minor > 0)
            .order_by(Statement.account_id))).all()
    counts = {"invoiced": 0, "failed": 0}
    for account_id, statement_id in rows:
        try:
            await invoice_statement(sessionmaker, gateway, account_id, statement_id, clock=clock)
            counts["invoiced"] += 1
        except Exception:
            log.exception("invoicing statement %s failed; the next run retries it", statement_id)
            counts["failed"] += 1
    return counts


def _advance(row: Statement, status: StatementStatus) -> None:
    if _RANK.get(status, 0) > _RANK.get(row.status, 0):
        row.status = status


async def invoice_event(session: AsyncSession, event: stripe.Event, ctx: EventContext) -> None:
    """invoice.finalized / paid / payment_failed / voided: the statement's status follows (monotonically)."""
    invoice: Any = event.data.object
    metadata = invoice.metadata.to_dict() if invoice.metadata is not None else {}
    row = await session.scalar(select(Statement).where(Statement.stripe_invoice_id == invoice.id).with_for_update())
    if row is None and metadata.get("commerce_account_id") and metadata.get("commerce_statement_id"):
        row = await session.scalar(select(Statement).where(
            Statement.account_id == metadata["commerce_account_id"],
            Statement.statement_id == metadata["commerce_statement_id"]).with_for_update())
    if row is None:
        return
    before = row.status
    row.stripe_invoice_id = row.stripe_invoice_id or invoice.id
    _advance(row, _EVENT_STATUS[event.type])
    if row.status != before:
        await outbox.emit(session, clock=ctx.clock, type=f"statement.{row.status}", account_id=row.account_id,
                          payload={"statement_id": row.statement_id, "period": row.period, "invoice": invoice.id,
                                   "status": row.status})
