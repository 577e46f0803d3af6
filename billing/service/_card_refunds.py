"""Refunds and disputes of card orders, and the revocation rule (docs/payments.md, "Refunds and disputes").

Rule: a refund that brings the refunded amount to the order total, or a lost dispute, revokes the order's
grants now and cancels the subscriptions it started; a partial refund keeps access; an open dispute keeps
access until it closes (won: nothing changes; lost: revoked). Every step emits an order event.

A refund follows the payment rule (billing.stripe.flows.refund_order): a ``pending`` OrderRefund row (with its
idempotency key ``order:{id}:refund:{seq}``) is committed before Stripe is called, so a retry replays the same
request; its answer is recorded in a new transaction. No Stripe call here.
``charge.refunded`` carries the cumulative ``amount_refunded`` and is applied as a maximum, so the
webhook and our own answer may arrive in any order, any number of times.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

import entitlements
from app import audit
from app.accounts.models import Account, User
from app.clock import Clock
from app.errors import Unprocessable
from app.events import publish
from app.ids import new_id
from billing.domain.tax import net_share
from billing.errors import IllegalOrderTransition, PaymentInProgress
from billing.events import (
    OrderDisputeClosed,
    OrderDisputed,
    OrderDisputeLost,
    OrderPartiallyRefunded,
    OrderRefundFailed,
    OrderRefundPending,
    typed_event,
)
from billing.models import CardPayment, Order, OrderRefund
from billing.service import _subscriptions as subscriptions
from billing.service._credit import reverse_credit
from billing.service._orders import _move, order_payload
from billing.stripe.gateway import idem


def refund_key(refund: OrderRefund) -> str:
    """The Stripe idempotency key of a refund: a replay of the same refund sends the same request."""
    return idem("order", refund.order_id, "refund", refund.seq)


def refund_metadata(refund: OrderRefund) -> dict[str, str]:
    return {"commerce_account_id": refund.account_id, "commerce_order_id": refund.order_id,
            "commerce_refund_id": refund.refund_id}


async def start_refund(session: AsyncSession, order: Order, *, amount_minor: int | None, note: str | None,
                       actor: str, clock: Clock) -> OrderRefund:
    """The pending refund to send (an unresolved one is returned again, to be replayed, never doubled)."""
    if order.state not in ("paid", "fulfilled") or order.payment_intent_id is None:
        raise IllegalOrderTransition(f"A {order.state} order has nothing to refund.", state=order.state)
    pending = await session.scalar(select(OrderRefund).where(
        OrderRefund.account_id == order.account_id, OrderRefund.order_id == order.order_id,
        OrderRefund.status.in_(("pending", "processing"))))
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


async def refund_failed(session: AsyncSession, refund: OrderRefund, *, clock: Clock,
                        status: Literal["failed", "canceled"] = "failed", reason: str | None = None) -> None:
    """The refund did not return the money (Stripe refused it, or the bank sent it back): the order says so.

    A refund already counted as succeeded (Stripe can fail one later) is taken off ``refunded_minor``; access
    already revoked stays revoked, and ``order.refund_failed`` tells the vendor the customer is still owed.
    """
    row = await session.get_one(OrderRefund, (refund.account_id, refund.refund_id), with_for_update=True,
                                populate_existing=True)
    if row.status in ("failed", "canceled"):
        return
    was_counted = row.status == "succeeded"
    row.status, row.resolved_at = status, clock.now()
    order = await _locked_order(session, row.account_id, row.order_id)
    if was_counted:
        order.refunded_minor = max(0, order.refunded_minor - row.amount_minor)
    order.updated_at = clock.now()
    account = await session.get_one(Account, order.account_id)
    user = await session.get_one(User, (order.account_id, order.user_id))
    await audit.record(session, clock=clock, actor="stripe", action=f"order.refund_{status}", target_type="order",
                       target_id=row.order_id, account_id=row.account_id,
                       after={"amount_minor": row.amount_minor, "refund": row.stripe_refund_id, "reason": reason})
    failed, beside = typed_event(OrderRefundFailed, {
        **order_payload(order, account, user), "amount_minor": row.amount_minor, "refund": row.stripe_refund_id,
        "status": status, "reason": reason, "money_returned": False})
    await publish(session, failed, clock=clock, account_id=order.account_id, extra=beside)


async def refund_processing(session: AsyncSession, refund: OrderRefund, *, stripe_refund_id: str,
                            clock: Clock) -> None:
    """Stripe accepted the refund but the money is still on its way: recorded, the order not yet changed."""
    row = await session.get_one(OrderRefund, (refund.account_id, refund.refund_id), with_for_update=True,
                                populate_existing=True)
    if row.status != "pending":
        return
    row.status, row.stripe_refund_id = "processing", stripe_refund_id
    order = await _locked_order(session, row.account_id, row.order_id)
    account = await session.get_one(Account, order.account_id)
    user = await session.get_one(User, (order.account_id, order.user_id))
    pending, beside = typed_event(OrderRefundPending, {
        **order_payload(order, account, user), "amount_minor": row.amount_minor, "refund": stripe_refund_id})
    await publish(session, pending, clock=clock, account_id=order.account_id, extra=beside)


async def refund_by_stripe_id(session: AsyncSession, stripe_refund_id: str,
                              metadata: dict[str, str]) -> OrderRefund | None:
    """Our refund row for a Stripe refund: by its id, else by the metadata we sent (a crash lost the id)."""
    row = await session.scalar(select(OrderRefund).where(OrderRefund.stripe_refund_id == stripe_refund_id))
    if row is not None:
        return row
    account_id, refund_id = metadata.get("commerce_account_id"), metadata.get("commerce_refund_id")
    if not account_id or not refund_id:
        return None
    return await session.get(OrderRefund, (account_id, refund_id))


async def unsettled_minor(session: AsyncSession, order: Order) -> int:
    """What Stripe counts in a charge's ``amount_refunded`` that has not (or not yet) returned money."""
    return int(await session.scalar(select(func.coalesce(func.sum(OrderRefund.amount_minor), 0)).where(
        OrderRefund.account_id == order.account_id, OrderRefund.order_id == order.order_id,
        OrderRefund.stripe_refund_id.is_not(None),
        OrderRefund.status.in_(("processing", "failed", "canceled")))) or 0)


async def refund_target(session: AsyncSession, refund: OrderRefund) -> str:
    """The PaymentIntent a refund goes back to."""
    pi_id = await session.scalar(select(Order.payment_intent_id).where(
        Order.account_id == refund.account_id, Order.order_id == refund.order_id))
    assert pi_id is not None, "only paid card orders are refunded"
    return pi_id


async def record_refund(session: AsyncSession, refund: OrderRefund, *, stripe_refund_id: str, clock: Clock) -> None:
    """Step 3 of a refund: it succeeded; the order follows Stripe's cumulative amount."""
    row = await session.get_one(OrderRefund, (refund.account_id, refund.refund_id), with_for_update=True,
                                populate_existing=True)
    if row.status in ("failed", "canceled"):
        return  # a final failure is not undone by a late or replayed success
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
    await reverse_credit(session, order, amount_minor=net_share(delta, charged_minor=order.total_minor,
                                                                tax_minor=order.tax_minor),
                         reference=f"refunded:{cumulative_minor}", clock=clock)
    account = await session.get_one(Account, order.account_id)
    user = await session.get_one(User, (order.account_id, order.user_id))
    if cumulative_minor < order.total_minor:
        order.updated_at = clock.now()
        partial, beside = typed_event(OrderPartiallyRefunded, {
            **order_payload(order, account, user), "amount_minor": delta, "refunded_minor": cumulative_minor,
            "access": "kept"})
        await publish(session, partial, clock=clock, account_id=order.account_id, extra=beside)
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
    disputed, beside = typed_event(OrderDisputed, {
        **order_payload(order, account, user), "dispute": dispute_id, "status": status,
        "access": "kept until the dispute closes"})
    await publish(session, disputed, clock=clock, account_id=order.account_id, extra=beside)


async def dispute_closed(session: AsyncSession, order: Order, *, dispute_id: str, status: str,
                         clock: Clock) -> None:
    """Won: nothing changes. Lost: the money went back to the card holder, so access is revoked now."""
    if order.dispute_id == dispute_id and order.dispute_status in ("won", "lost"):
        return
    order.dispute_id, order.dispute_status, order.updated_at = dispute_id, status, clock.now()
    account = await session.get_one(Account, order.account_id)
    user = await session.get_one(User, (order.account_id, order.user_id))
    closed, beside = typed_event(OrderDisputeLost if status == "lost" else OrderDisputeClosed, {
        **order_payload(order, account, user), "dispute": dispute_id, "status": status})
    await publish(session, closed, clock=clock, account_id=order.account_id, extra=beside)
    if status != "lost":
        return
    await _revoke(session, order, reason="dispute lost", clock=clock)
    if order.state in ("paid", "fulfilled"):
        delta, order.refunded_minor = order.total_minor - order.refunded_minor, order.total_minor
        await reverse_credit(session, order, amount_minor=net_share(delta, charged_minor=order.total_minor,
                                                                    tax_minor=order.tax_minor),
                             reference=f"dispute:{dispute_id}", clock=clock)
        await _move(session, order, "refunded", account=account, user=user, clock=clock, refunded_minor=delta,
                    dispute=dispute_id)


async def pending_refunds(session: AsyncSession, *, limit: int = 200) -> list[OrderRefund]:
    return list((await session.scalars(select(OrderRefund).where(OrderRefund.status == "pending")
                                       .order_by(OrderRefund.created_at).limit(limit))).all())


async def refunds_for_orphans(session: AsyncSession, *, clock: Clock, limit: int = 100) -> list[OrderRefund]:
    """Pending refunds for payments that succeeded on orders closed without them (the flow commits them)."""
    rows = (await session.execute(
        select(CardPayment, Order).join(Order, (Order.account_id == CardPayment.account_id)
                                        & (Order.order_id == CardPayment.order_id))
        .where(CardPayment.status == "succeeded", Order.state.in_(("canceled", "expired", "denied")),
               Order.refunded_minor == 0, ~exists().where(OrderRefund.account_id == Order.account_id,
                                                           OrderRefund.order_id == Order.order_id))
        .limit(limit).with_for_update(of=Order, skip_locked=True))).all()
    made: list[OrderRefund] = []
    for payment, order in rows:
        row = OrderRefund(account_id=order.account_id, refund_id=new_id("rfd"), order_id=order.order_id, seq=1,
                          amount_minor=payment.amount_minor, status="pending", stripe_refund_id=None,
                          note="paid after the order was closed", actor="reconcile", created_at=clock.now(),
                          resolved_at=None)
        session.add(row)
        made.append(row)
    await session.flush()
    return made
