"""HTTP routes of quotes, orders and approvals (the in-workflow purchase)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody

from app.accounts import resolve_account, resolve_user
from app.deps import ClockDep, CurrentPrincipal, DbSession, SettingsDep
from app.idempotency import fast_claim, run_idempotent
from app.params import AccountRef, CursorParam, Limit, UserRef
from app.schemas import decode_cursor
from billing import service
from billing.hotpath import order_fast, quote_fast, quote_items
from billing.routes._params import ApprovalId, ApprovalStateFilter, OrderId, OrderStateFilter, QuoteId
from billing.schemas import (
    ApprovalList,
    ApprovalRead,
    NoteIn,
    OrderCreate,
    OrderPage,
    OrderRead,
    PayIn,
    ProvisionAck,
    QuoteCreate,
    QuoteRead,
    RefundIn,
)
from billing.stripe import flows as stripe_flows
from billing.stripe import tax_flows
from billing.stripe.gateway import provide_gateway

USER_WRITE = {"scope": "commerce:write", "user_access": "self"}
MONEY = {**USER_WRITE, "rate_limit": "money"}  # moves or commits money: the tighter rate limit class
USER_READ = {"scope": "commerce:read", "user_access": "self"}


class QuoteController(Controller):
    path = "/v1/quotes"
    tags = ["Quotes and orders"]

    @post("/", opt={**USER_WRITE, "owner": "user"}, status_code=201,
          summary="Auto-quote modules for a user: priced lines, proration, discount, tax and the guardrail decision",
          description="With Stripe configured, tax comes from Stripe Tax for the account's billing address (or the "
                      "buyer's billing country on the card route): net, tax by jurisdiction and rate, gross. "
                      "Without it, tax.status is not_computed with the reason, and no tax or gross is shown.")
    async def create(self, request: Request[Any, Any, Any], db_session: DbSession, principal: CurrentPrincipal,
                     clock: ClockDep, settings: SettingsDep, data: JSONBody[QuoteCreate]) -> QuoteRead:
        items = quote_items(data)
        fast = await quote_fast(request.app.state, principal, data, items)
        if fast is not None:  # one read and the price lock's INSERT; anything else goes on below
            return fast
        ttl, gateway = timedelta(seconds=settings.quote_ttl_seconds), request.app.state.get("stripe")
        if gateway is not None:  # Stripe Tax is asked outside any transaction (a session of its own)
            return await tax_flows.quote_with_tax(
                request.app.state.sessionmaker, gateway, principal, user_ref=data.user, items=items,
                include_requirements=data.include_requirements, clock=clock, ttl=ttl)
        return await service.auto_quote(db_session, principal, user_ref=data.user, items=items,
                                        include_requirements=data.include_requirements, clock=clock, ttl=ttl)

    @get("/{quote_id:str}", opt={**USER_READ, "owner": "account"}, summary="A quote")
    async def read(self, db_session: DbSession, principal: CurrentPrincipal, quote_id: QuoteId) -> QuoteRead:
        return await service.read_quote(db_session, principal, quote_id)


class OrderController(Controller):
    path = "/v1/orders"
    tags = ["Quotes and orders"]

    @post("/", opt={**MONEY, "owner": "account", "idempotency": "required"}, status_code=201,
          summary="Order a quote (auto-close); requires an Idempotency-Key",
          description="Budget route: captured and fulfilled at once, or held while an approver decides. "
                      "Card route: the order waits for payment (POST /v1/orders/{id}/pay).")
    async def create(self, request: Request[Any, Any, Any], db_session: DbSession, principal: CurrentPrincipal,
                     clock: ClockDep, data: JSONBody[OrderCreate]) -> Response[OrderRead]:
        claim = await fast_claim(request)
        if claim is not None:  # the common order in one statement; anything else (or a refusal) goes on below
            body = await order_fast(request.app.state, principal, data, claim)
            if body is not None:
                answer: Response[Any] = Response(content=body, status_code=201, media_type="application/json")
                return answer

        async def produce() -> tuple[int, OrderRead]:
            return 201, await service.order_quote_read(db_session, principal, data.quote_id, reason=data.reason,
                                                       clock=clock)

        return await run_idempotent(request, db_session, produce, required=True)

    @get("/", opt={**USER_READ, "owner": "user"}, summary="A user's orders, newest first")
    async def list_for_user(self, db_session: DbSession, principal: CurrentPrincipal, user: UserRef,
                            order_state: OrderStateFilter = None, limit: Limit = 50,
                            cursor: CursorParam = None) -> OrderPage:
        u = await resolve_user(db_session, principal, user)
        return await service.order_page(db_session, account_id=u.account_id, user_id=u.user_id, state=order_state,
                                        after=decode_cursor(cursor), limit=limit)

    @get("/{order_id:str}", opt={**USER_READ, "owner": "account"}, summary="An order")
    async def read(self, db_session: DbSession, principal: CurrentPrincipal, order_id: OrderId) -> OrderRead:
        return await service.read_order(db_session, principal, order_id)

    @post("/{order_id:str}/cancel", opt={**MONEY, "owner": "account"}, status_code=200,
          summary="Cancel an order that is not paid yet (releases held budget)")
    async def cancel(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                     order_id: OrderId) -> OrderRead:
        order = await service.cancel_order(db_session, principal, order_id, clock=clock)
        return await service.order_read(db_session, order)

    @post("/{order_id:str}/pay", opt={**MONEY, "owner": "account", "idempotency": "required"}, status_code=200,
          summary="Pay a card order off-session with a saved card; requires an Idempotency-Key",
          description="Succeeded: the order is paid and fulfilled. The bank wants 3-D Secure: the order is "
                      "requires_action and payment.client_secret lets the widget confirm on-session (the order "
                      "completes on Stripe's webhook). Declined: the order is failed with a reason; pay again, "
                      "optionally with another card. No saved card: 422 card_setup_required.")
    async def pay(self, request: Request[Any, Any, Any], db_session: DbSession, principal: CurrentPrincipal,
                  clock: ClockDep, order_id: OrderId, data: JSONBody[PayIn]) -> Response[OrderRead]:
        async def produce() -> tuple[int, OrderRead]:
            await stripe_flows.pay_order(request.app.state.sessionmaker, provide_gateway(request.app.state), principal,
                                     order_id, payment_method_id=data.payment_method_id, clock=clock)
            return 200, await service.order_view(db_session, principal, order_id)

        return await run_idempotent(request, db_session, produce, required=True)

    @post("/{order_id:str}/refund", status_code=200,
          opt={**MONEY, "user_access": "admin", "owner": "account", "idempotency": "required"},
          summary="Refund a paid order (budget: in full; card: all or part); requires an Idempotency-Key",
          description="A full refund revokes the order's access now and stops its renewals; a partial card "
                      "refund keeps access. Card refunds go through Stripe. A retry with the same key and body "
                      "answers the first result and never refunds twice.")
    async def refund(self, request: Request[Any, Any, Any], db_session: DbSession, principal: CurrentPrincipal,
                     clock: ClockDep, order_id: OrderId, data: JSONBody[RefundIn]) -> Response[OrderRead]:
        async def produce() -> tuple[int, OrderRead]:
            await stripe_flows.refund_order(request.app.state.sessionmaker, request.app.state.get("stripe"),
                                            principal, order_id, amount_minor=data.amount_minor, note=data.note,
                                            clock=clock)
            return 200, await service.order_view(db_session, principal, order_id)

        return await run_idempotent(request, db_session, produce, required=True)

    @post("/{order_id:str}/provisioned", opt={"scope": "commerce:write", "owner": "account"}, status_code=200,
          summary="The vendor's app acknowledges provisioning (or reports that it failed)")
    async def provisioned(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                          order_id: OrderId, data: JSONBody[ProvisionAck]) -> OrderRead:
        order = await service.acknowledge_provisioning(db_session, principal, order_id, ok=data.status == "done",
                                                       note=data.note, clock=clock)
        return await service.order_read(db_session, order)


class AccountOrderController(Controller):
    path = "/v1/accounts/{account:str}"
    tags = ["Quotes and orders"]

    @get("/orders", opt={"scope": "commerce:read", "user_access": "admin", "owner": "account"},
         summary="The account's orders, newest first")
    async def list_orders(self, db_session: DbSession, principal: CurrentPrincipal, account: AccountRef,
                          order_state: OrderStateFilter = None, limit: Limit = 50,
                          cursor: CursorParam = None) -> OrderPage:
        acc = await resolve_account(db_session, principal, account)
        return await service.order_page(db_session, account_id=acc.account_id, user_id=None, state=order_state,
                                        after=decode_cursor(cursor), limit=limit)

    @get("/approvals", opt={**USER_READ, "owner": "account"},
         summary="The account's approval requests (for admins and the policy's approver roles)")
    async def list_approvals(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                             account: AccountRef, approval_state: ApprovalStateFilter = None,
                             limit: Limit = 50) -> ApprovalList:
        acc = await resolve_account(db_session, principal, account)
        return ApprovalList(data=await service.approval_queue(db_session, principal, acc, state=approval_state,
                                                              limit=limit, clock=clock))


class ApprovalController(Controller):
    path = "/v1/approvals"
    tags = ["Approvals"]

    @get("/{approval_id:str}", opt={**USER_READ, "owner": "account"}, summary="An approval request")
    async def read(self, db_session: DbSession, principal: CurrentPrincipal, approval_id: ApprovalId) -> ApprovalRead:
        return await service.approval_view(db_session, principal, approval_id)

    @post("/{approval_id:str}/approve", opt={**MONEY, "owner": "account"}, status_code=200,
          summary="Approve: the held budget is captured and the purchase completes")
    async def approve(self, request: Request[Any, Any, Any], db_session: DbSession, principal: CurrentPrincipal,
                      clock: ClockDep, approval_id: ApprovalId, data: JSONBody[NoteIn]) -> ApprovalRead:
        approval = await service.decide(request.app.state.sessionmaker, db_session, principal, approval_id,
                                        approve=True, note=data.note, clock=clock)
        return await service.approval_read(db_session, approval)

    @post("/{approval_id:str}/deny", opt={**MONEY, "owner": "account"}, status_code=200,
          summary="Deny with a reason: the held budget is released")
    async def deny(self, request: Request[Any, Any, Any], db_session: DbSession, principal: CurrentPrincipal,
                   clock: ClockDep, approval_id: ApprovalId, data: JSONBody[NoteIn]) -> ApprovalRead:
        approval = await service.decide(request.app.state.sessionmaker, db_session, principal, approval_id,
                                        approve=False, note=data.note, clock=clock)
        return await service.approval_read(db_session, approval)
