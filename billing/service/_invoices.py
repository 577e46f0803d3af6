"""Bill-back invoices, the database side: what a closed statement bills, and the invoice's status.

billing.stripe.flows.invoice_statement turns a closed statement into Stripe invoice items and one
``send_invoice`` invoice. Idempotent per (account, period) because a statement is unique per (account, period)
and every Stripe call's key derives from the statement id (``statement:{id}:item:{n}``, ``:invoice``,
``:finalize``, ``:send``): a re-run, or a run after a crash mid-way, replays Stripe's answers instead of
billing twice. Invoice status then follows the invoice webhooks (``invoice_status_changed``). No Stripe call here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import msgspec
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Account
from app.clock import Clock
from app.events import publish
from billing.domain.statements import StatementLine, StatementStatus
from billing.domain.tax import TaxBehavior
from billing.events import STATEMENT_STATUS_EVENTS, StatementInvoiced
from billing.models import Statement

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
    tax_code: str | None = None  # None: the vendor's default product tax code at Stripe
    tax_behavior: TaxBehavior = "exclusive"


def line_tax_terms(line: StatementLine) -> list[InvoiceLine]:
    """The invoice items of one statement line, each with its tax terms: one per part (module) when the line
    has parts, else one for its net under the vendor's default tax code. The one place a statement line
    becomes taxed invoice items, whatever made the line (a purchase, metered usage)."""
    if line.parts and sum(p.amount_minor for p in line.parts) == line.net_minor:
        return [InvoiceLine(p.amount_minor, f"{p.module} (order {line.order_id})"[:500], f"{line.order_id}:{p.module}",
                            tax_code=p.tax_code, tax_behavior=p.tax_behavior) for p in line.parts]
    modules = ", ".join(line.modules) or "Purchase"
    return [InvoiceLine(line.net_minor, f"{modules} (order {line.order_id})"[:500], line.order_id)]


def invoice_lines(statement: Statement) -> list[InvoiceLine]:
    """The invoice items of a statement (its lines' taxed items); else one for the total."""
    lines = [item for line in statement.lines if line.net_minor != 0 for item in line_tax_terms(line)]
    if not lines or sum(x.amount_minor for x in lines) != statement.total_minor:
        lines = [InvoiceLine(statement.total_minor, f"Purchases in {statement.period}", "total")]
    return lines


def apply_invoice_tax(statement: Statement, taxes: Mapping[str, tuple[int, str]]) -> None:
    """Tax per line from the finalized invoice (by each item's ref: its tax and taxability) onto the statement."""
    lines = []
    for line in statement.lines:
        parts = tuple(msgspec.structs.replace(p, tax_minor=taxes.get(f"{line.order_id}:{p.module}", (0, ""))[0],
                                              taxability=taxes.get(f"{line.order_id}:{p.module}", (0, None))[1])
                      for p in line.parts)
        own = taxes.get(line.order_id)
        line_tax = sum(p.tax_minor or 0 for p in parts) + (own[0] if own else 0)
        lines.append(msgspec.structs.replace(line, parts=parts, tax_minor=line_tax))
    statement.lines = lines
    statement.tax_minor = sum(amount for amount, _ in taxes.values())
    statement.reverse_charge = any(reason == "reverse_charge" for _, reason in taxes.values())


async def store_account_customer(session: AsyncSession, account_id: str, customer_id: str) -> None:
    """Remember the account's Stripe customer (the bill-back payer) with a guarded UPDATE: the first one wins."""
    await session.execute(update(Account).where(Account.account_id == account_id,
                                                Account.stripe_customer_id.is_(None))
                          .values(stripe_customer_id=customer_id))


async def statements_to_invoice(session: AsyncSession, period: str) -> list[tuple[str, str]]:
    """(account id, statement id) of the closed statements of ``period`` with spend."""
    rows = (await session.execute(select(Statement.account_id, Statement.statement_id).where(
        Statement.period == period, Statement.status == "closed", Statement.total_minor > 0)
        .order_by(Statement.account_id))).all()
    return [(account_id, statement_id) for account_id, statement_id in rows]


async def record_invoice(session: AsyncSession, account: Account, statement_id: str, *, invoice_id: str,
                         paid: bool, hosted_invoice_url: str | None, clock: Clock,
                         taxes: Mapping[str, tuple[int, str]] | None = None) -> None:
    """The statement's invoice was sent (or found paid): store it (with its tax per line) and tell the vendor."""
    row = await session.get_one(Statement, (account.account_id, statement_id), with_for_update=True)
    row.stripe_invoice_id = invoice_id
    if taxes is not None:
        apply_invoice_tax(row, taxes)
    _advance(row, "paid" if paid else "invoiced")
    await publish(session, StatementInvoiced(
        statement_id=statement_id, period=row.period, invoice=invoice_id, total_minor=row.total_minor,
        currency=row.currency, hosted_invoice_url=hosted_invoice_url, days_until_due=account.payment_terms_days),
        clock=clock, account_id=account.account_id)


def _advance(row: Statement, status: StatementStatus) -> None:
    if _RANK.get(status, 0) > _RANK.get(row.status, 0):
        row.status = status


async def invoice_status_changed(session: AsyncSession, *, invoice_id: str, metadata: Mapping[str, str],
                                 event_type: str, clock: Clock) -> None:
    """invoice.finalized / paid / payment_failed / voided: the statement's status follows (monotonically)."""
    row = await session.scalar(select(Statement).where(Statement.stripe_invoice_id == invoice_id).with_for_update())
    if row is None and metadata.get("commerce_account_id") and metadata.get("commerce_statement_id"):
        row = await session.scalar(select(Statement).where(
            Statement.account_id == metadata["commerce_account_id"],
            Statement.statement_id == metadata["commerce_statement_id"]).with_for_update())
    if row is None:
        return
    before = row.status
    row.stripe_invoice_id = row.stripe_invoice_id or invoice_id
    _advance(row, _EVENT_STATUS[event_type])
    if row.status == before:
        return
    if row.status == "invoiced":  # finalized before our own record of sending it arrived
        account = await session.get_one(Account, row.account_id)
        await publish(session, StatementInvoiced(
            statement_id=row.statement_id, period=row.period, invoice=invoice_id, total_minor=row.total_minor,
            currency=row.currency, hosted_invoice_url=None, days_until_due=account.payment_terms_days),
            clock=clock, account_id=row.account_id)
        return
    changed = msgspec.convert({"statement_id": row.statement_id, "period": row.period, "invoice": invoice_id,
                               "status": row.status}, STATEMENT_STATUS_EVENTS[row.status])
    await publish(session, changed, clock=clock, account_id=row.account_id)
