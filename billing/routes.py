"""HTTP routes of budgets, the ledger and guardrails (vendor keys, or the account's customer admins)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, patch, post, put
from litestar.params import JSONBody, Parameter

from app.accounts import resolve_account
from app.deps import ClockDep, CurrentPrincipal, DbSession
from app.errors import Unprocessable
from app.money import is_currency
from app.params import AccountRef, CursorParam, Limit
from app.schemas import decode_int_cursor, encode_cursor
from billing import service
from billing.domain.guardrails import GuardrailPolicy
from billing.schemas import (
    BudgetCreate,
    BudgetList,
    BudgetRead,
    BudgetUpdate,
    GuardrailsImport,
    GuardrailsRead,
    LedgerEntryRead,
    LedgerPage,
)
from billing.service._budgets import BudgetState

BudgetId = Annotated[str, Parameter(description="Budget id (bud_...)", pattern=r"^bud_[0-9a-z]{26}$")]
PeriodParam = Annotated[str | None, Parameter(description="Period, YYYY-MM", pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]

READ = {"scope": "commerce:read", "user_access": "admin", "owner": "account"}
WRITE = {"scope": "commerce:write", "user_access": "admin", "owner": "account"}
MONEY = {**WRITE, "rate_limit": "money"}


def _read(s: BudgetState) -> BudgetRead:
    b = s.budget
    used = s.reserved_minor + s.captured_minor
    return BudgetRead(
        id=b.budget_id, name=b.name, cost_center=b.cost_center, currency=b.currency, amount_minor=b.amount_minor,
        anchor_day=b.anchor_day, period=s.period, period_starts_at=s.starts_at, period_ends_at=s.ends_at,
        period_amount_minor=s.amount_minor, reserved_minor=s.reserved_minor, captured_minor=s.captured_minor,
        remaining_minor=s.remaining_minor, used_pct=(used * 100 // s.amount_minor) if s.amount_minor else 0,
    )


class BudgetController(Controller):
    path = "/v1/accounts/{account:str}/budgets"
    tags = ["Budgets"]

    @post("/", opt=MONEY, summary="Create a budget for the account (or one cost center)")
    async def create_budget(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                            account: AccountRef, data: JSONBody[BudgetCreate]) -> BudgetRead:
        if not is_currency(data.currency):
            raise Unprocessable(f"Currency {data.currency!r} is not supported.", field="currency")
        acc = await resolve_account(db_session, principal, account)
        budget = await service.create_budget(
            db_session, acc, name=data.name, currency=data.currency, amount_minor=data.amount_minor,
            cost_center=data.cost_center, anchor_day=data.anchor_day, actor=principal.actor, clock=clock)
        return _read(await service.budget_state(db_session, budget, clock=clock))

    @get("/", opt=READ, summary="The account's budgets with this period's balance")
    async def list_budgets(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                   account: AccountRef) -> BudgetList:
        acc = await resolve_account(db_session, principal, account)
        return BudgetList(data=[_read(await service.budget_state(db_session, b, clock=clock))
                                for b in await service.list_budgets(db_session, acc)])

    @get("/{budget_id:str}", opt=READ, summary="A budget and this period's amount, reserved, captured, remaining")
    async def get_budget(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                         account: AccountRef, budget_id: BudgetId) -> BudgetRead:
        acc = await resolve_account(db_session, principal, account)
        budget = await service.get_budget(db_session, acc, budget_id)
        return _read(await service.budget_state(db_session, budget, clock=clock))

    @patch("/{budget_id:str}", opt=MONEY, summary="Rename a budget or change its amount from this period on")
    async def update_budget(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                     account: AccountRef, budget_id: BudgetId, data: JSONBody[BudgetUpdate]) -> BudgetRead:
        acc = await resolve_account(db_session, principal, account)
        budget = await service.get_budget(db_session, acc, budget_id)
        await service.update_budget(db_session, budget, amount_minor=data.amount_minor, name=data.name,
                                    actor=principal.actor, clock=clock)
        return _read(await service.budget_state(db_session, budget, clock=clock))

    @get("/{budget_id:str}/ledger", opt=READ, summary="The budget's append-only ledger, oldest first")
    async def ledger(self, db_session: DbSession, principal: CurrentPrincipal, account: AccountRef,
                     budget_id: BudgetId, period: PeriodParam = None, limit: Limit = 50,
                     cursor: CursorParam = None) -> LedgerPage:
        acc = await resolve_account(db_session, principal, account)
        budget = await service.get_budget(db_session, acc, budget_id)
        rows = await service.list_ledger(db_session, budget, period=period, after_id=decode_int_cursor(cursor),
                                         limit=limit)
        data = [LedgerEntryRead(id=e.entry_id, period=e.period, kind=e.kind, amount_minor=e.amount_minor,
                                currency=e.currency, order_id=e.order_id, hold_id=e.hold_id,
                                occurred_at=e.occurred_at) for e in rows]
        return LedgerPage(data=data, next_cursor=encode_cursor(str(rows[-1].entry_id)) if len(rows) == limit else None)


class GuardrailController(Controller):
    path = "/v1/accounts/{account:str}/guardrails"
    tags = ["Guardrails"]

    @get("/", opt=READ, summary="The guardrail policy in force and its version")
    async def get_policy(self, db_session: DbSession, principal: CurrentPrincipal,
                         account: AccountRef) -> GuardrailsRead:
        acc = await resolve_account(db_session, principal, account)
        version, policy = await service.current_policy(db_session, acc)
        return GuardrailsRead(version=version, policy=policy)

    @put("/", opt=WRITE, summary="Replace the guardrail policy (stored as a new version)")
    async def put_policy(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep, account: AccountRef,
                  data: JSONBody[GuardrailPolicy]) -> GuardrailsRead:
        acc = await resolve_account(db_session, principal, account)
        version = await service.save_policy(db_session, acc, data, actor=principal.actor, clock=clock)
        return GuardrailsRead(version=version, policy=data)

    @get("/export", opt=READ, summary="The policy as TOML (policies as code)", media_type="application/toml")
    async def export_policy(self, db_session: DbSession, principal: CurrentPrincipal,
                     account: AccountRef) -> Response[str]:
        acc = await resolve_account(db_session, principal, account)
        _, policy = await service.current_policy(db_session, acc)
        return Response(service.export_toml(policy), media_type="application/toml")

    @post("/import", opt=WRITE, status_code=200, summary="Import a TOML policy (stored as a new version)")
    async def import_policy(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                      account: AccountRef, data: JSONBody[GuardrailsImport]) -> GuardrailsRead:
        acc = await resolve_account(db_session, principal, account)
        policy = service.import_toml(data.toml)
        version = await service.save_policy(db_session, acc, policy, actor=principal.actor, clock=clock)
        return GuardrailsRead(version=version, policy=policy)
