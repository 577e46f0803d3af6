"""HTTP routes of bill-back statements, the sales-credit report and guardrail simulation."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.params import JSONBody

from app.accounts import resolve_account
from app.deps import ClockDep, CurrentPrincipal, DbSession
from app.params import AccountRef
from billing import service
from billing.routes._params import PeriodQuery
from billing.schemas import (
    CloseRead,
    CloseRequest,
    CreditReport,
    SimulateRequest,
    SimulationRead,
    StatementList,
    UsageChargesRead,
)


class BillingController(Controller):
    path = "/v1/billing"
    tags = ["Bill-back and sales credit"]

    @post("/statements/close", opt={"scope": "commerce:write", "owner": "vendor", "rate_limit": "money"},
          status_code=200,
          summary="Close a period: one statement per account with budget spend (idempotent)")
    async def close(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                    data: JSONBody[CloseRequest]) -> CloseRead:
        result = await service.close_period(db_session, period=data.period, clock=clock, actor=principal.actor)
        return service.close_read(result, period=data.period)

    @get("/sales-credit", opt={"scope": "commerce:read", "owner": "vendor"},
         summary="Bookings of a period credited to teams and reps by motion (land, expand, renewal)")
    async def sales_credit(self, db_session: DbSession, period: PeriodQuery) -> CreditReport:
        return await service.credit_report(db_session, period=period)


class AccountBillingController(Controller):
    path = "/v1/accounts/{account:str}"
    tags = ["Bill-back and sales credit"]

    @get("/statements", opt={"scope": "commerce:read", "user_access": "admin", "owner": "account"},
         summary="The account's bill-back statements, newest first")
    async def statements(self, db_session: DbSession, principal: CurrentPrincipal,
                         account: AccountRef) -> StatementList:
        return await service.statement_list(db_session, await resolve_account(db_session, principal, account))

    @get("/usage-charges", opt={"scope": "commerce:read", "user_access": "admin", "owner": "account"},
         summary="The running charge of the account's metered modules this period, per plan and per user",
         description="Usage so far in each active metered plan's current period, priced with the version in force "
                     "(included units, tiers, commitment drawn down): what closing the period now would bill.")
    async def usage_charges(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                            account: AccountRef) -> UsageChargesRead:
        acc = await resolve_account(db_session, principal, account)
        return await service.running_charges(db_session, acc, clock=clock)

    @post("/guardrails/simulate", opt={"scope": "commerce:read", "user_access": "admin", "owner": "account"},
          status_code=200, summary="What a draft policy would have done to the last N days of purchases")
    async def simulate(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                       account: AccountRef, data: JSONBody[SimulateRequest]) -> SimulationRead:
        acc = await resolve_account(db_session, principal, account)
        return await service.simulate(db_session, acc, data.policy, days=data.days, clock=clock)
