"""HTTP routes of budgets, the ledger and guardrails (vendor keys, or the account's customer admins)."""

from __future__ import annotations

from litestar import Controller, Response, get, patch, post, put
from litestar.params import JSONBody

from app.accounts import resolve_account
from app.deps import ClockDep, CurrentPrincipal, DbSession
from app.params import AccountRef, CursorParam, Limit
from app.schemas import decode_int_cursor
from billing import service
from billing.domain.guardrails import GuardrailPolicy
from billing.routes._params import BudgetId, PeriodFilter
from billing.schemas import (
    BudgetCreate,
    BudgetList,
    BudgetRead,
    BudgetUpdate,
    GuardrailsImport,
    GuardrailsRead,
    LedgerPage,
)

READ = {"scope": "commerce:read", "user_access": "admin", "owner": "account"}
WRITE = {"scope": "commerce:write", "user_access": "admin", "owner": "account"}
MONEY = {**WRITE, "rate_limit": "money"}


class BudgetController(Controller):
    path = "/v1/accounts/{account:str}/budgets"
    tags = ["Budgets"]

    @post("/", opt=MONEY, summary="Create a budget for the account (or one cost center)")
    async def create_budget(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                            account: AccountRef, data: JSONBody[BudgetCreate]) -> BudgetRead:
        acc = await resolve_account(db_session, principal, account)
        budget = await service.create_budget(
            db_session, acc, name=data.name, currency=data.currency, amount_minor=data.amount_minor,
            cost_center=data.cost_center, anchor_day=data.anchor_day, actor=principal.actor, clock=clock)
        return await service.read_budget_state(db_session, budget, clock=clock)

    @get("/", opt=READ, summary="The account's budgets with this period's balance")
    async def list_budgets(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                           account: AccountRef) -> BudgetList:
        acc = await resolve_account(db_session, principal, account)
        return await service.budget_list(db_session, acc, clock=clock)

    @get("/{budget_id:str}", opt=READ, summary="A budget and this period's amount, reserved, captured, remaining")
    async def get_budget(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                         account: AccountRef, budget_id: BudgetId) -> BudgetRead:
        acc = await resolve_account(db_session, principal, account)
        budget = await service.get_budget(db_session, acc, budget_id)
        return await service.read_budget_state(db_session, budget, clock=clock)

    @patch("/{budget_id:str}", opt=MONEY, summary="Rename a budget or change its amount from this period on")
    async def update_budget(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                            account: AccountRef, budget_id: BudgetId, data: JSONBody[BudgetUpdate]) -> BudgetRead:
        acc = await resolve_account(db_session, principal, account)
        budget = await service.update_budget(db_session, await service.get_budget(db_session, acc, budget_id),
                                             amount_minor=data.amount_minor, name=data.name, actor=principal.actor,
                                             clock=clock)
        return await service.read_budget_state(db_session, budget, clock=clock)

    @get("/{budget_id:str}/ledger", opt=READ, summary="The budget's append-only ledger, oldest first")
    async def ledger(self, db_session: DbSession, principal: CurrentPrincipal, account: AccountRef,
                     budget_id: BudgetId, period: PeriodFilter = None, limit: Limit = 50,
                     cursor: CursorParam = None) -> LedgerPage:
        acc = await resolve_account(db_session, principal, account)
        budget = await service.get_budget(db_session, acc, budget_id)
        return await service.ledger_page(db_session, budget, period=period, after_id=decode_int_cursor(cursor),
                                         limit=limit)


class GuardrailController(Controller):
    path = "/v1/accounts/{account:str}/guardrails"
    tags = ["Guardrails"]

    @get("/", opt=READ, summary="The guardrail policy in force and its version")
    async def get_policy(self, db_session: DbSession, principal: CurrentPrincipal,
                         account: AccountRef) -> GuardrailsRead:
        version, policy = await service.current_policy(db_session, await resolve_account(db_session, principal,
                                                                                          account))
        return GuardrailsRead(version=version, policy=policy)

    @put("/", opt=WRITE, summary="Replace the guardrail policy (stored as a new version)")
    async def put_policy(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                         account: AccountRef, data: JSONBody[GuardrailPolicy]) -> GuardrailsRead:
        acc = await resolve_account(db_session, principal, account)
        version = await service.save_policy(db_session, acc, data, actor=principal.actor, clock=clock)
        return GuardrailsRead(version=version, policy=data)

    @get("/export", opt=READ, summary="The policy as TOML (policies as code)", media_type="application/toml")
    async def export_policy(self, db_session: DbSession, principal: CurrentPrincipal,
                            account: AccountRef) -> Response[str]:
        _, policy = await service.current_policy(db_session, await resolve_account(db_session, principal, account))
        return Response(service.export_toml(policy), media_type="application/toml")

    @post("/import", opt=WRITE, status_code=200, summary="Import a TOML policy (stored as a new version)")
    async def import_policy(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                            account: AccountRef, data: JSONBody[GuardrailsImport]) -> GuardrailsRead:
        acc = await resolve_account(db_session, principal, account)
        policy = service.import_toml(data.toml)
        version = await service.save_policy(db_session, acc, policy, actor=principal.actor, clock=clock)
        return GuardrailsRead(version=version, policy=policy)
