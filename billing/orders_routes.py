"""HTTP routes of quotes, orders and approvals (the in-workflow purchase)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody, Parameter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import resolve_account, resolve_user
from app.accounts.models import Account, User
from app.auth import UserPrincipal
from app.deps import ClockDep, CurrentPrincipal, DbSession, SettingsDep
from app.errors import Forbidden, NotFound
from app.idempotency import run_idempotent
from app.params import AccountRef, CursorParam, Limit, UserRef
from app.schemas import decode_cursor, encode_cursor
from billing.models import Approval, Order, Quote
from billing.schemas import (
    ApprovalList,
    ApprovalRead,
    DecisionRead,
    NoteIn,
    OrderCreate,
    OrderPage,
    OrderRead,
    PayIn,
    PaymentRead,
    ProvisionAck,
    QuoteCreate,
    QuoteLineRead,
    QuoteRead,
    RefundIn,
)
from billing.service import _orders as orders
from billing.service import _payments as payments
from billing.service._guardrails import current_policy
from billing.service._quotes import QuoteItem, create_quote
from billing.stripe import flows as stripe_flows
from billing.stripe.gateway import provide_gateway

QuoteId = Annotated[str, Parameter(description="Quote id (quo_...)", pattern=r"^quo_[0-9a-z]{26}$")]
OrderId = Annotated[str, Parameter(description="Order id (ord_...)", pattern=r"^ord_[0-9a-z]{26}$")]
ApprovalId = Annotated[str, Parameter(description="Approval id (apr_...)", pattern=r"^apr_[0-9a-z]{26}$")]
OrderState = Annotated[Literal["pending_approval", "approved", "payment_pending", "requires_action", "paid",
                               "fulfilled", "denied", "expired", "failed", "canceled", "refunded"] | None,
                       Parameter(query="state", description="Only orders in this state")]
ApprovalState = Annotated[Literal["pending", "approved", "denied", "expired", "canceled"] | None,
                          Parameter(query="state", description="Only requests in this state")]

USER_WRITE = {"scope": "commerce:write", "user_access": "self"}
USER_READ = {"scope": "commerce:read", "user_access": "self"}


def quote_read(q: Quote, account: Account, user: User) -> QuoteRead:
    return QuoteRead(
        id=q.quote_id, account=account.external_id, user=user.external_id, currency=q.currency,
        lines=msgspec.convert(q.lines, list[QuoteLineRead]), subtotal_minor=q.subtotal_minor,
        discount_minor=q.discount_minor, total_minor=q.total_minor, unmet_requires=list(q.unmet_requires),
        decision=msgspec.convert({k: q.decision[k] for k in ("route", "outcome", "reasons")}, DecisionRead),
        status=q.status, created_at=q.created_at, expires_at=q.expires_at)


async def order_read(session: AsyncSession, o: Order, account: Account | None = None,
                     user: User | None = None) -> OrderRead:
    if account is None:
        account = await session.get_one(Account, o.account_id)
    if user is None:
        user = await session.get_one(User, (o.account_id, o.user_id))
    approval_id = await session.scalar(select(Approval.approval_id).where(Approval.account_id == o.account_id,
                                                                          Approval.order_id == o.order_id))
    payment = await payments.latest_attempt(session, o) if o.route == "card" else None
    return OrderRead(
        id=o.order_id, account=account.external_id, user=user.external_id, quote_id=o.quote_id, route=o.route,
        state=o.state, currency=o.currency, total_minor=o.total_minor, refunded_minor=o.refunded_minor,
        lines=msgspec.convert(o.lines, list[QuoteLineRead]), reason=o.reason, failure_reason=o.failure_reason,
        provision_status=o.provision_status, provision_note=o.provision_note, approval_id=approval_id,
        created_at=o.created_at, updated_at=o.updated_at, paid_at=o.paid_at, fulfilled_at=o.fulfilled_at,
        payment=None if payment is None else PaymentRead(
            attempt=payment.attempt, status=payment.status,  # type: ignore[arg-type]
            payment_intent=payment.payment_intent_id, failure_reason=payment.failure_reason,
            client_secret=payment.client_secret if payment.status == "requires_action" else None),
        subscription_id=o.subscription_id, dispute_status=o.dispute_status)


async def approval_read(session: AsyncSession, a: Approval) -> ApprovalRead:
    order = await session.get_one(Order, (a.account_id, a.order_id))
    account = await session.get_one(Account, a.account_id)
    requester = await session.get_one(User, (a.account_id, a.requester_user_id))
    return ApprovalRead(
        id=a.approval_id, order_id=a.order_id, account=account.external_id, requester=requester.external_id,
        reason=a.reason, why=list(a.reasons), approver_roles=list(a.approver_roles), state=a.state,
        total_minor=order.total_minor, currency=order.currency, modules=[x["module"] for x in order.lines],
        decided_by=a.decided_by, decision_note=a.decision_note, created_at=a.created_at, expires_at=a.expires_at,
        decided_at=a.decided_at, temporary_access_until=a.temporary_access_until)


class QuoteController(Controller):
    path = "/v1/quotes"
    tags = ["Quotes and orders"]

    @post("/", opt={**USER_WRITE, "owner": "user"}, status_code=201,
          summary="Auto-quote modules for a user: priced lines, proration, discount and the guardrail decision")
    async def create(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                     settings: SettingsDep, data: JSONBody[QuoteCreate]) -> QuoteRead:
        user = await resolve_user(db_session, principal, data.user)
        account = await db_session.get_one(Account, user.account_id)
        quote = await create_quote(
            db_session, account, user, [QuoteItem(module=i.module, quantity=i.quantity, interval=i.interval)
                                        for i in data.items],
            include_requirements=data.include_requirements, clock=clock,
            ttl=timedelta(seconds=settings.quote_ttl_seconds))
        return quote_read(quote, account, user)

    @get("/{quote_id:str}", opt={**USER_READ, "owner": "account"}, summary="A quote")
    async def read(self, db_session: DbSession, principal: CurrentPrincipal, quote_id: QuoteId) -> QuoteRead:
        quote, account, user = await _quote(db_session, principal, quote_id)
        return quote_read(quote, account, user)


async def _quote(session: AsyncSession, principal: Any, quote_id: str) -> tuple[Quote, Account, User]:
    query = select(Quote).where(Quote.quote_id == quote_id)
    if isinstance(principal, UserPrincipal):
        query = query.where(Quote.account_id == principal.account_id)
        if not principal.is_admin:
            query = query.where(Quote.user_id == principal.user_id)
    quote = await session.scalar(query)
    if quote is None:
        raise NotFound(f"Quote {quote_id!r} does not exist.")
    account = await session.get_one(Account, quote.account_id)
    user = await session.get_one(User, (quote.account_id, quote.user_id))
    return quote, account, user


class OrderController(Controller):
    path = "/v1/orders"
    tags = ["Quotes and orders"]

    @post("/", opt={**USER_WRITE, "owner": "account"}, status_code=201,
          summary="Order a quote (auto-close); requires an Idempotency-Key",
          description="Budget route: captured and fulfilled at once, or held while an approver decides. "
                      "Card route: the order waits for payment (POST /v1/orders/{id}/pay).")
    async def create(self, request: Request[Any, Any, Any], db_session: DbSession, principal: CurrentPrincipal,
                     clock: ClockDep, data: JSONBody[OrderCreate]) -> Response[OrderRead]:
        async def produce() -> tuple[int, OrderRead]:
            quote, account, user = await _quote(db_session, principal, data.quote_id)
            if isinstance(principal, UserPrincipal) and principal.user_id != user.user_id:
                raise Forbidden("Only the user a quote was made for can order it.")
            order = await orders.place_order(db_session, quote, account, user, reason=data.reason, clock=clock)
            return 201, await order_read(db_session, order, account, user)

        return await run_idempotent(request, db_session, produce, required=True)

    @get("/", opt={**USER_READ, "owner": "user"}, summary="A user's orders, newest first")
    async def list_for_user(self, db_session: DbSession, principal: CurrentPrincipal, user: UserRef,
                            order_state: OrderState = None, limit: Limit = 50, cursor: CursorParam = None) -> OrderPage:
        u = await resolve_user(db_session, principal, user)
        rows = await orders.list_orders(db_session, account_id=u.account_id, user_id=u.user_id, state=order_state,
                                        after=decode_cursor(cursor), limit=limit)
        return OrderPage(data=[await order_read(db_session, o) for o in rows],
                         next_cursor=encode_cursor(rows[-1].order_id) if len(rows) == limit else None)

    @get("/{order_id:str}", opt={**USER_READ, "owner": "account"}, summary="An order")
    async def read(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                   order_id: OrderId) -> OrderRead:
        order, account, user = await orders.load_order(db_session, principal, order_id)
        if order.state == "pending_approval":
            await orders.expire_due_approvals(db_session, clock=clock, account_id=order.account_id)
        return await order_read(db_session, order, account, user)

    @post("/{order_id:str}/cancel", opt={**USER_WRITE, "owner": "account"}, status_code=200,
          summary="Cancel an order that is not paid yet (releases held budget)")
    async def cancel(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                     order_id: OrderId) -> OrderRead:
        return await order_read(db_session, await orders.cancel_order(db_session, principal, order_id, clock=clock))

    @post("/{order_id:str}/pay", opt={**USER_WRITE, "owner": "account"}, status_code=200,
          summary="Pay a card order off-session with a saved card; requires an Idempotency-Key",
          description="Succeeded: the order is paid and fulfilled. The bank wants 3-D Secure: the order is "
                      "requires_action and payment.client_secret lets the widget confirm on-session (the order "
                      "completes on Stripe's webhook). Declined: the order is failed with a reason; pay again, "
                      "optionally with another card. No saved card: 422 card_setup_required.")
    async def pay(self, request: Request[Any, Any, Any], db_session: DbSession, principal: CurrentPrincipal,
                  clock: ClockDep, order_id: OrderId, data: JSONBody[PayIn]) -> Response[OrderRead]:
        async def produce() -> tuple[int, OrderRead]:
            gateway = provide_gateway(request.app.state)
            await stripe_flows.pay_order(request.app.state.sessionmaker, gateway, principal, order_id,
                                         payment_method_id=data.payment_method_id, clock=clock)
            order, account, user = await orders.load_order(db_session, principal, order_id)
            return 200, await order_read(db_session, order, account, user)

        return await run_idempotent(request, db_session, produce, required=True)

    @post("/{order_id:str}/refund", opt={"scope": "commerce:write", "user_access": "admin", "owner": "account"},
          status_code=200, summary="Refund a paid order (budget: in full to the budget; card: all or part)",
          description="A full refund revokes the order's access now and stops its renewals; a partial card "
                      "refund keeps access. Card refunds go through Stripe.")
    async def refund(self, request: Request[Any, Any, Any], db_session: DbSession, principal: CurrentPrincipal,
                     clock: ClockDep, order_id: OrderId, data: JSONBody[RefundIn]) -> OrderRead:
        await stripe_flows.refund_order(request.app.state.sessionmaker, request.app.state.get("stripe"), principal,
                                        order_id, amount_minor=data.amount_minor, note=data.note, clock=clock)
        order, account, user = await orders.load_order(db_session, principal, order_id)
        return await order_read(db_session, order, account, user)

    @post("/{order_id:str}/provisioned", opt={"scope": "commerce:write", "owner": "account"}, status_code=200,
          summary="The vendor's app acknowledges provisioning (or reports that it failed)")
    async def provisioned(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                          order_id: OrderId, data: JSONBody[ProvisionAck]) -> OrderRead:
        order = await orders.acknowledge_provisioning(db_session, principal, order_id, ok=data.status == "done",
                                                      note=data.note, clock=clock)
        return await order_read(db_session, order)


class AccountOrderController(Controller):
    path = "/v1/accounts/{account:str}"
    tags = ["Quotes and orders"]

    @get("/orders", opt={"scope": "commerce:read", "user_access": "admin", "owner": "account"},
         summary="The account's orders, newest first")
    async def list_orders(self, db_session: DbSession, principal: CurrentPrincipal, account: AccountRef,
                          order_state: OrderState = None, limit: Limit = 50, cursor: CursorParam = None) -> OrderPage:
        acc = await resolve_account(db_session, principal, account)
        rows = await orders.list_orders(db_session, account_id=acc.account_id, user_id=None, state=order_state,
                                        after=decode_cursor(cursor), limit=limit)
        return OrderPage(data=[await order_read(db_session, o) for o in rows],
                         next_cursor=encode_cursor(rows[-1].order_id) if len(rows) == limit else None)

    @get("/approvals", opt={**USER_READ, "owner": "account"},
         summary="The account's approval requests (for admins and the policy's approver roles)")
    async def list_approvals(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                             account: AccountRef, approval_state: ApprovalState = None,
                             limit: Limit = 50) -> ApprovalList:
        acc = await resolve_account(db_session, principal, account)
        if isinstance(principal, UserPrincipal) and not principal.is_admin:
            _, policy = await current_policy(db_session, acc)
            if not principal.roles & set(policy.approver_roles):
                raise Forbidden("Only admins and approvers see the approval queue.")
        await orders.expire_due_approvals(db_session, clock=clock, account_id=acc.account_id)
        rows = await orders.list_approvals(db_session, account_id=acc.account_id, state=approval_state, limit=limit,
                                           clock=clock)
        return ApprovalList(data=[await approval_read(db_session, a) for a in rows])


class ApprovalController(Controller):
    path = "/v1/approvals"
    tags = ["Approvals"]

    @get("/{approval_id:str}", opt={**USER_READ, "owner": "account"}, summary="An approval request")
    async def read(self, db_session: DbSession, principal: CurrentPrincipal, approval_id: ApprovalId) -> ApprovalRead:
        return await approval_read(db_session, await orders.load_approval(db_session, principal, approval_id))

    @post("/{approval_id:str}/approve", opt={**USER_WRITE, "owner": "account"}, status_code=200,
          summary="Approve: the held budget is captured and the purchase completes")
    async def approve(self, request: Request[Any, Any, Any], db_session: DbSession, principal: CurrentPrincipal,
                      clock: ClockDep, approval_id: ApprovalId, data: JSONBody[NoteIn]) -> ApprovalRead:
        await orders.expire_apart(request.app.state.sessionmaker, clock=clock, approval_id=approval_id)
        approval, _ = await orders.decide_approval(db_session, principal, approval_id, approve=True, note=data.note,
                                                   clock=clock)
        return await approval_read(db_session, approval)

    @post("/{approval_id:str}/deny", opt={**USER_WRITE, "owner": "account"}, status_code=200,
          summary="Deny with a reason: the held budget is released")
    async def deny(self, request: Request[Any, Any, Any], db_session: DbSession, principal: CurrentPrincipal,
                   clock: ClockDep, approval_id: ApprovalId, data: JSONBody[NoteIn]) -> ApprovalRead:
        await orders.expire_apart(request.app.state.sessionmaker, clock=clock, approval_id=approval_id)
        approval, _ = await orders.decide_approval(db_session, principal, approval_id, approve=False, note=data.note,
                                                   clock=clock)
        return await approval_read(db_session, approval)
