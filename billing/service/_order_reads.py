"""Read models of quotes, orders and approvals: each answer (one object or a whole page) is one query."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Row, Select, and_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Account, User
from app.auth import Principal
from app.errors import NotFound
from app.schemas import encode_cursor
from billing.domain.orders import ApprovalState, OrderState
from billing.domain.quotes import MeteredTerms, QuoteLine, modules_of
from billing.domain.tax import NOT_CONFIGURED, QuoteTax, not_computed
from billing.errors import OrderNotFound
from billing.models import Approval, CardPayment, Order, Quote
from billing.schemas import (
    ApprovalRead,
    DecisionRead,
    MeteredTermsRead,
    MeteredTierRead,
    OrderPage,
    OrderRead,
    PaymentRead,
    QuoteLineRead,
    QuoteRead,
    QuoteTaxRead,
    TaxLineRead,
)


def line_read(line: QuoteLine) -> QuoteLineRead:
    """A line as the API shows it (period bounds as ISO 8601 text, as they always were)."""
    return QuoteLineRead(
        module=line.module, name=line.name, category=line.category, price_id=line.price_id,
        price_version=line.price_version, model=line.model, interval=line.interval, per_seat=line.per_seat,
        quantity=line.quantity, unit_amount_minor=line.unit_amount_minor, full_period_minor=line.full_period_minor,
        prorated_minor=line.prorated_minor, discount_minor=line.discount_minor, total_minor=line.total_minor,
        period_start=line.period_start.isoformat() if line.period_start else None,
        period_end=line.period_end.isoformat() if line.period_end else None, proration=line.proration,
        trial_days=line.trial_days, metered=_terms_read(line.metered) if line.metered else None,
        tax_code=line.tax_code, tax_behavior=line.tax_behavior, tax_minor=line.tax_minor)


def _terms_read(t: MeteredTerms) -> MeteredTermsRead:
    return MeteredTermsRead(
        unit=t.unit, interval=t.interval, tier_mode=t.tier_mode, included_quantity=t.included_quantity,
        per_units=t.per_units, commitment_minor=t.commitment_minor, description=t.description,
        tiers=[MeteredTierRead(up_to=x.up_to, unit_amount_minor=x.unit_amount_minor,
                               flat_amount_minor=x.flat_amount_minor) for x in t.tiers])


def quote_read(q: Quote, *, account_ref: str, user_ref: str) -> QuoteRead:
    """A quote as the API shows it (the account's and user's external ids given)."""
    return QuoteRead(
        id=q.quote_id, account=account_ref, user=user_ref, currency=q.currency,
        lines=[line_read(x) for x in q.lines], subtotal_minor=q.subtotal_minor, discount_minor=q.discount_minor,
        total_minor=q.total_minor, unmet_requires=list(q.unmet_requires),
        decision=DecisionRead(route=q.decision.route, outcome=q.decision.outcome, reasons=list(q.decision.reasons)),
        status=q.status, created_at=q.created_at, expires_at=q.expires_at, **tax_fields(q.tax))


def tax_fields(tax: QuoteTax | None) -> dict[str, Any]:
    """A quote's net, tax, gross and how they were worked out (no tax row: Stripe Tax was not configured)."""
    t = tax if tax is not None else not_computed(NOT_CONFIGURED)
    return {"net_minor": t.net_minor, "tax_minor": t.tax_minor, "gross_minor": t.gross_minor,
            "tax": QuoteTaxRead(status=t.status, reason=t.reason, calculation_id=t.calculation_id,
                                breakdown=[TaxLineRead(**msgspec.structs.asdict(b)) for b in t.breakdown],
                                reverse_charge=t.reverse_charge, exempt=t.exempt)}


async def load_quote(session: AsyncSession, principal: Principal, quote_id: str) -> tuple[Quote, Account, User]:
    """The quote as this principal may see it (end users: their own; admins: their account's), in one query."""
    query = (select(Quote, Account, User).join(Account, Account.account_id == Quote.account_id)
             .join(User, and_(User.account_id == Quote.account_id, User.user_id == Quote.user_id))
             .where(Quote.quote_id == quote_id))
    row = (await session.execute(query)).first()
    if row is None or not principal.may_access_user(row[0].account_id, row[0].user_id):
        raise NotFound(f"Quote {quote_id!r} does not exist.")
    quote, account, user = row
    return quote, account, user


async def read_quote(session: AsyncSession, principal: Principal, quote_id: str) -> QuoteRead:
    """GET /v1/quotes/{id}."""
    quote, account, user = await load_quote(session, principal, quote_id)
    return quote_read(quote, account_ref=account.external_id, user_ref=user.external_id)


def _orders() -> Select[Order, str, str, str | None, Any, Any, Any, Any, Any]:
    """Orders with everything their read shows: account, buyer, approval and the latest card payment."""
    latest = (select(CardPayment.attempt, CardPayment.status, CardPayment.payment_intent_id,
                     CardPayment.failure_reason, CardPayment.client_secret)
              .where(CardPayment.account_id == Order.account_id, CardPayment.order_id == Order.order_id)
              .order_by(CardPayment.attempt.desc()).limit(1).lateral("latest_payment"))
    return (select(Order, Account.external_id, User.external_id, Approval.approval_id, latest.c.attempt,
                   latest.c.status, latest.c.payment_intent_id, latest.c.failure_reason, latest.c.client_secret)
            .join(Account, Account.account_id == Order.account_id)
            .join(User, and_(User.account_id == Order.account_id, User.user_id == Order.user_id))
            .outerjoin(Approval, and_(Approval.account_id == Order.account_id, Approval.order_id == Order.order_id))
            .outerjoin(latest, true()))


def _order_read(row: Row[Order, str, str, str | None, Any, Any, Any, Any, Any]) -> OrderRead:
    o, account_ref, user_ref, approval_id, attempt, status, intent, failure, secret = row
    payment = None
    if o.route == "card" and attempt is not None:
        payment = PaymentRead(attempt=attempt, status=status, payment_intent=intent, failure_reason=failure,
                              client_secret=secret if status == "requires_action" else None)
    return order_read_of(o, account_ref=account_ref, user_ref=user_ref, approval_id=approval_id, payment=payment)


def order_read_of(o: Order, *, account_ref: str, user_ref: str, approval_id: str | None = None,
                  payment: PaymentRead | None = None) -> OrderRead:
    """The order as the API shows it, from values the caller already holds."""
    return OrderRead(
        id=o.order_id, account=account_ref, user=user_ref, quote_id=o.quote_id, route=o.route,
        state=o.state, currency=o.currency, total_minor=o.total_minor, refunded_minor=o.refunded_minor,
        lines=[line_read(x) for x in o.lines], reason=o.reason, failure_reason=o.failure_reason,
        provision_status=o.provision_status, provision_note=o.provision_note, approval_id=approval_id,
        created_at=o.created_at, updated_at=o.updated_at, paid_at=o.paid_at, fulfilled_at=o.fulfilled_at,
        payment=payment, subscription_id=o.subscription_id, dispute_status=o.dispute_status,
        tax_minor=o.tax_minor, tax_transaction=o.tax_transaction_id)


async def order_read(session: AsyncSession, order: Order) -> OrderRead:
    """An order as the API shows it, read in one query."""
    row = (await session.execute(_orders().where(Order.account_id == order.account_id,
                                                 Order.order_id == order.order_id))).one()
    return _order_read(row)


async def order_view(session: AsyncSession, principal: Principal, order_id: str) -> OrderRead:
    """The order as this principal may see it (end users: their own; admins: their account's), in one query."""
    query = _orders().where(Order.order_id == order_id)
    row = (await session.execute(query)).first()
    if row is None or not principal.may_access_user(row[0].account_id, row[0].user_id):
        raise OrderNotFound(f"Order {order_id!r} does not exist.")
    return _order_read(row)


async def order_page(session: AsyncSession, *, account_id: str, user_id: str | None, state: OrderState | None,
                     after: str | None, limit: int) -> OrderPage:
    """Orders newest first, in one query; one row past ``limit`` tells whether a next page exists."""
    query = _orders().where(Order.account_id == account_id).order_by(Order.order_id.desc()).limit(limit + 1)
    if user_id is not None:
        query = query.where(Order.user_id == user_id)
    if state is not None:
        query = query.where(Order.state == state)
    if after is not None:
        query = query.where(Order.order_id < after)
    rows = (await session.execute(query)).all()
    data = [_order_read(r) for r in rows[:limit]]
    return OrderPage(data=data, next_cursor=encode_cursor(data[-1].id) if len(rows) > limit else None)


def _approvals() -> Select[Approval, Order, str, str, str | None]:
    return (select(Approval, Order, Account.external_id, User.external_id, User.name)
            .join(Order, and_(Order.account_id == Approval.account_id, Order.order_id == Approval.order_id))
            .join(Account, Account.account_id == Approval.account_id)
            .join(User, and_(User.account_id == Approval.account_id, User.user_id == Approval.requester_user_id)))


def _approval_read(a: Approval, order: Order, account_ref: str, requester_ref: str,
                   requester_name: str | None) -> ApprovalRead:
    return ApprovalRead(
        id=a.approval_id, order_id=a.order_id, account=account_ref, requester=requester_ref,
        requester_name=requester_name, reason=a.reason, why=list(a.reasons), approver_roles=list(a.approver_roles),
        state=a.state, total_minor=order.total_minor, currency=order.currency, modules=list(modules_of(order.lines)),
        module_names=[line.name for line in order.lines],
        decided_by=a.decided_by, decision_note=a.decision_note, created_at=a.created_at, expires_at=a.expires_at,
        decided_at=a.decided_at, temporary_access_until=a.temporary_access_until)


async def approval_read(session: AsyncSession, approval: Approval) -> ApprovalRead:
    """An approval request as the API shows it, read in one query."""
    row = (await session.execute(_approvals().where(Approval.account_id == approval.account_id,
                                                    Approval.approval_id == approval.approval_id))).one()
    return _approval_read(*row)




async def approval_reads(session: AsyncSession, *, account_id: str, state: ApprovalState | None, limit: int,
                         now: datetime) -> Sequence[ApprovalRead]:
    """The account's approval requests, newest first, in one query (``pending``: those not yet due only)."""
    query = _approvals().where(Approval.account_id == account_id).order_by(Approval.created_at.desc()).limit(limit)
    if state is not None:
        query = query.where(Approval.state == state)
    if state == "pending":
        query = query.where(Approval.expires_at > now)
    return [_approval_read(*r) for r in (await session.execute(query)).all()]
