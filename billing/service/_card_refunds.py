"""Refunds and disputes of card orders, and the revocation rule (docs/payments.md, "Refunds and disputes").

Rule: a refund that brings the refunded amount to the order total, or a lost dispute, revokes the order's
grants now and cancels the subscriptions it started; a partial refund keeps access; an open dispute keeps
access until it closes (won: nothing changes; lost: revoked). Every step emits an order event.

A refund follows the payment rule: a ``pending`` OrderRefund row (with its idempotency key
``order:{id}:refund:{seq}``) is committed before Stripe is called, so a retry replays the same request.
``charge.refunded`` carries the cumulative ``amount_refunded`` and is applied as a maximum, so the
webhook and our own answer may arrive in any order, any number of times.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import entitlements
from app import audit, outbox
from app.accounts.models import Account, User
from app.auth import Principal
from app.clock import Clock
from app.errors import Unprocessable
from app.ids import new_id
from billing.errors import IllegalOrderTransition, PaymentInProgress
from billing.models import CardPayment, Order, OrderRefund
from billing.service import _subscriptions as subscriptions
from billing.service._orders import _move, load_order, order_payload, refund_budget_order
from billing.stripe_gateway import CardPaymentsDisabled, PaymentProviderUnavailable, StripeGateway, idem


async def refund_order(sessionmaker: async_sessionmaker[AsyncSession], gateway: StripeGateway | None,
                       principal: Principal, order_id: str, *, amount_minor: int | None, note: str | None,
                       clock: Clock) -> None:
    """Refund a paid order: budget orders in full to their budget, card orders (full or part) through Stripe."""
    async with sessionmaker() as session, session.begin():
        order, _, _ = await load_order(session, principal, order_id, lock=True)
        if order.route == "budget":
            if amount_minor is not None and amount_minor != order.total_minor - order.refunded_minor:
                raise Unprocessable("Budget orders are refunded in full.", field="amount_minor")
            await refund_budget_order(session, principal, order_id, clock=clock, note=note)
            return
        if gateway is None:
            raise CardPaymentsDisabled("Card payments are not configured on this service (STRIPE_SECRET_KEY).")
        refund = await _start_refund(session, order, amount_minor=amount_minor, note=note, actor=principal.actor,
                                     clock=clock)
        payment_intent_id = order.payment_intent_id
    assert payment_intent_id is not None
    try:
        stripe_refund = await gateway.refund(
            payment_intent_id=payment_intent_id, key=idem("order", order_id, "refund", refund.seq),
            amount_minor=refund.amount_minor, reason="requested_by_customer",
            metadata={"commerce_account_id": refund.account_id, "commerce_order_id": order_id,
                      "commerce_refund_id": refund.refund_id})
    except PaymentProviderUnavailable:
        raise  # stays pending: the next call (or reconcile) replays the same request
    except Exception:
        async with sessionmaker() as session, session.begin():
            row = await session.get_one(OrderRefund, (refund.account_id, refund.refund_id), with_for_update=True)
            row.status, row.resolved_at = "failed", clock.now()
        raise
    async with sessionmaker() as session, session.begin():
        await record_refund(session, refund, stripe_refund_id=stripe_refund.id, clock=clock)


async def _start_refund(session: AsyncSession, order: Order, *, amount_minor: int | None, note: str | None,
                        actor: str, clock: Clock) -> OrderRefund:
    if order.state not in ("paid", "fulfilled") or order.payment_intent_id is None:
        raise IllegalOrderTransition(f"A {order.state} order has nothing to refund.", state=order.state)
    pending = await session.scalar(select(OrderRefund).where(
        OrderRefund.account_id == order.account_id, OrderRefund.order_id == order.order_id,
        OrderRefund.status == "pending"))
    remaining = order.total_minor - order.refunded_minor
    if pending is not None:
        if amount_minor not in (None, pending.amount_minor):
            raise PaymentInProgress("A refund of this order is still in progress; retry it first.",
                                    amount_minor=pending.amount_minor)
        return pending
    amount = remaining if amount_minor is None else amount_minor
    if amount <= 0 or amount > remaining:
        raise Unprocessable(f"At most {remaining} can be refunded.", field="amount_minor", remaining_minor=remaining)
    seq = int(await session.scalar(select(func.coalesce(func.max(OrderRefund.seq), 0)).where(
        OrderRefund.account_id == order.account_id, OrderRefund.order_id == order.order_id)) or 0) + 1
    row = OrderRefund(account_id=order.account_id, refund_id=new_id("rfd"),
                      order_id=order.order_id, seq=seq, amount_minor=amount, status="pending", stripe_refund_id=None,
                      note=note, actor=actor, created_at=clock.now(), resolved_at=None)
    session.add(row)
    await session.flush()
    return row


async def record_refund(session: AsyncSession, refund: OrderRefund, *, stripe_refund_id: str, clock: Clock) -> None:
    row = await session.get_one(OrderRefund, (refund.account_id, refund.refund_id), with_for_update=True,
                                populate_existing=True)
    if row.status != "succeeded":
        row.status, row.stripe_refund_id, row.resolved_at = "succeeded", stripe_refund_id, clock.now()
        await audit.record(session, clock=clock, actor=row.actor, action="order.refund", target_type="order",
                           target_id=row.order_id, account_id=row.account_id,
                           after={"amount_minor": row.amount_minor, "note": row.note, "refund": stripe_refund_id})
        await session.flush()
    total = int(await session.scalar(select(func.coalesce(func.sum(OrderRefund.amount_minor), 0)).where(
        OrderRefund.account_id == row.account_id, OrderRefund.order_id == row.order_id,
        OrderRefund.status == "succeeded")) or 0)
    order = await _locked_order(session, row.account_id, row.order_id)
    await apply_refunded(session, order, cumulative_minor=total, clock=clock)


async def _locked_order(session: AsyncSession, account_id: str, order_id: str) -> Order:
    order = await session.scalar(select(Order).where(Order.account_id == account_id, Order.order_id == order_id)
                                 .with_for_update().execution_options(populate_existing=True))
    assert order is not None
    return order


async def order_for_payment_intent(session: AsyncSession, payment_intent_id: str) -> Order | None:
    """The order a PaymentIntent paid (locked), found by our records, never by the event's metadata alone."""
    order = await session.scalar(select(Order).where(Order.payment_intent_id == payment_intent_id))
    if order is None:
        payment = await session.scalar(select(CardPayment).where(CardPayment.payment_intent_id == payment_intent_id))
        if payment is None:
            return None
        order = await session.get_one(Order, (payment.account_id, payment.order_id))
    return await _locked_order(session, order.account_id, order.order_id)


async def apply_refunded(session: AsyncSession, order: Order, *, cumulative_minor: int, clock: Clock) -> None:
    """Apply Stripe's cumulative refunded amount (a maximum: replays and reordering change nothing)."""
    cumulative_minor = min(cumulative_minor, order.total_minor)
    if cumulative_minor <= order.refunded_minor:
        return
    delta, order.refunded_minor = cumulative_minor - order.refunded_minor, cumulative_minor
    account = await session.get_one(Account, order.account_id)
    user = await session.get_one(User, (order.account_id, order.user_id))
    if cumulative_minor < order.total_minor:
        order.updated_at = clock.now()
        await outbox.emit(session, clock=clock, type="order.partially_refunded", account_id=order.account_id,
                          payload={**order_payload(order, account, user), "amount_minor": delta,
                                   "refunded_minor": cumulative_minor, "access": "kept"})
        return
    await _revoke(session, order, reason="order refunded", clock=clock)
    if order.state in ("paid", "fulfilled"):
        await _move(session, order, "refunded", account=account, user=user, clock=clock, refunded_minor=delta)


async def _revoke(session: AsyncSession, order: Order, *, reason: str, clock: Clock) -> None:
    await entitlements.revoke_by_source(session, account_id=order.account_id, source="order",
                                        source_ref=order.order_id, reason=reason, clock=clock)
    await subscriptions.end_for_order(session, order, reason=reason, clock=clock)


async def dispute_opened(session: AsyncSession, order: Order, *, dispute_id: str, status: str,
                         clock: Clock) -> None:
    """Access stays while a dispute is open (documented choice); the vendor is told at once."""
    if order.dispute_status in ("won", "lost") and order.dispute_id == dispute_id:
        return  # the closing event came first
    if order.dispute_id == dispute_id and order.dispute_status == status:
        return
    order.dispute_id, order.dispute_status, order.updated_at = dispute_id, status, clock.now()
    account = await session.get_one(Account, order.account_id)
    user = await session.get_one(User, (order.account_id, order.user_id))
    await outbox.emit(session, clock=clock, type="order.disputed", account_id=order.account_id,
                      payload={**order_payload(order, account, user), "dispute": dispute_id, "status": status,
                               "access": "kept until the dispute closes"})


async def dispute_closed(session: AsyncSession, order: Order, *, dispute_id: str, status: str,
                         clock: Clock) -> None:
    """Won: nothing changes. Lost: the money went back to the card holder, so access is revoked now."""
    if order.dispute_id == dispute_id and order.dispute_status in ("won", "lost"):
        return
    order.dispute_id, order.dispute_status, order.updated_at = dispute_id, status, clock.now()
    account = await session.get_one(Account, order.account_id)
    user = await session.get_one(User, (order.account_id, order.user_id))
    await outbox.emit(session, clock=clock, type=f"order.dispute_{'lost' if status == 'lost' else 'closed'}",
                      account_id=order.account_id,
                      payload={**order_payload(order, account, user), "dispute": dispute_id, "status": status})
    if status != "lost":
        return
    await _revoke(session, order, reason="dispute lost", clock=clock)
    if order.state in ("paid", "fulfilled"):
        delta, order.refunded_minor = order.total_minor - order.refunded_minor, order.total_minor
        await _move(session, order, "refunded", account=account, user=user, clock=clock, refunded_minor=delta,
                    dispute=dispute_id)


async def pending_refunds(session: AsyncSession, *, limit: int = 200) -> list[OrderRefund]:
    return list((await session.scalars(select(OrderRefund).where(OrderRefund.status == "pending")
                                       .order_by(OrderRefund.created_at).limit(limit))).all())
