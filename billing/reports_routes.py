"""HTTP routes of bill-back statements, the sales-credit report and guardrail simulation."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.params import JSONBody, Parameter

from app.accounts import resolve_account
from app.accounts.models import Account
from app.deps import ClockDep, CurrentPrincipal, DbSession
from app.params import AccountRef
from billing.models import Statement
from billing.schemas import (
    CloseRead,
    CloseRequest,
    CreditReport,
    CreditRowRead,
    SimulatedChange,
    SimulateRequest,
    SimulationRead,
    StatementLineRead,
    StatementList,
    StatementRead,
)
from billing.service._simulate import simulate
from billing.service._statements import close_period, list_statements, sales_credit_report

PeriodQuery = Annotated[str, Parameter(description="Period, YYYY-MM", pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]


def statement_read(s: Statement, account: Account) -> StatementRead:
    lines = [StatementLineRead(order_id=x["order_id"], modules=list(x.get("modules", [])), currency=x["currency"],
                               captured_minor=x["captured_minor"], refunded_minor=x["refunded_minor"],
                               net_minor=x.get("net_minor", x["captured_minor"] - x["refunded_minor"]))
             for x in s.lines]
    return StatementRead(id=s.statement_id, account=account.external_id, period=s.period, currency=s.currency,
                         lines=lines, captured_minor=s.captured_minor, refunded_minor=s.refunded_minor,
                         total_minor=s.total_minor, status=s.status, stripe_invoice_id=s.stripe_invoice_id,
                         created_at=s.created_at)


class BillingController(Controller):
    path = "/v1/billing"
    tags = ["Bill-back and sales credit"]

    @post("/statements/close", opt={"scope": "commerce:write", "owner": "vendor", "rate_limit": "money"},
          status_code=200,
          summary="Close a period: one statement per account with budget spend (idempotent)")
    async def close(self, db_session: DbSession, clock: ClockDep, data: JSONBody[CloseRequest]) -> CloseRead:
        result = await close_period(db_session, period=data.period, clock=clock)
        reads = []
        for group in (result.closed, result.already_closed):
            reads.append([statement_read(s, await db_session.get_one(Account, s.account_id)) for s in group])
        return CloseRead(period=data.period, closed=reads[0], already_closed=reads[1], still_open=result.still_open)

    @get("/sales-credit", opt={"scope": "commerce:read", "owner": "vendor"},
         summary="Bookings of a period credited to teams and reps by motion (land, expand, renewal)")
    async def sales_credit(self, db_session: DbSession, period: PeriodQuery) -> CreditReport:
        rows = await sales_credit_report(db_session, period=period)
        return CreditReport(period=period, rows=[
            CreditRowRead(team=r.team, rep=r.rep, motion=r.motion, currency=r.currency, bookings=r.bookings,
                          amount_minor=r.amount_minor) for r in rows])


class AccountBillingController(Controller):
    path = "/v1/accounts/{account:str}"
    tags = ["Bill-back and sales credit"]

    @get("/statements", opt={"scope": "commerce:read", "user_access": "admin", "owner": "account"},
         summary="The account's bill-back statements, newest first")
    async def statements(self, db_session: DbSession, principal: CurrentPrincipal,
                         account: AccountRef) -> StatementList:
        acc = await resolve_account(db_session, principal, account)
        return StatementList(data=[statement_read(s, acc) for s in await list_statements(db_session, acc.account_id)])

    @post("/guardrails/simulate", opt={"scope": "commerce:read", "user_access": "admin", "owner": "account"},
          status_code=200, summary="What a draft policy would have done to the last N days of purchases")
    async def simulate(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                       account: AccountRef, data: JSONBody[SimulateRequest]) -> SimulationRead:
        acc = await resolve_account(db_session, principal, account)
        r = await simulate(db_session, acc, data.policy, days=data.days, clock=clock)
        return SimulationRead(
            days=data.days, requests=r.requests, auto_approved=r.auto_approved,
            approval_required=r.approval_required, blocked=r.blocked,
            spend_auto_approved_minor=r.spend_auto_approved_minor,
            spend_approval_required_minor=r.spend_approval_required_minor,
            spend_blocked_minor=r.spend_blocked_minor, changed=msgspec.convert(r.changed, list[SimulatedChange]))
