"""Card payments of orders, the database side: attempts and their outcomes (no Stripe call here).

billing.stripe.flows.pay_order runs the three steps (STYLE.md, "Transactions"):
1. ``start_attempt`` records a ``pending`` CardPayment with the exact request (customer, card, amount) and
   its idempotency key ``order:{id}:pi:{attempt}``; the flow commits it;
2. the flow calls Stripe with that key (``flows.charge``), outside any transaction;
3. ``record_outcome`` stores the answer and moves the order (paid -> fulfilled, requires_action, failed).
A crash or timeout between 1 and 3 leaves the attempt ``pending``: the next ``pay`` (or reconcile) replays
the *same* request under the *same* key, so Stripe answers with the first outcome and never charges twice.
Webhooks (billing.stripe.handlers) feed the same ``record_outcome``; it is idempotent and order-safe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Account, User
from app.clock import Clock
from app.events import publish
from app.ids import new_id
from billing.errors import CardSetupRequired, IllegalOrderTransition
from billing.events import PaymentOrphaned
from billing.models import CardPayment, Order
from billing.service._orders import _move, _pay_and_fulfil
from billing.stripe.gateway import idem

log = logging.getLogger("commerce.payments")


@dataclass(frozen=True)
class Outcome:
    """What Stripe said about one attempt (synchronously, by webhook, or when reconcile asked)."""

    status: str  # succeeded | requires_action | failed | pending
    payment_intent_id: str | None = None
    client_secret: str | None = None
    failure_code: str | None = None
    failure_reason: str | None = None


def metadata(payment: CardPayment) -> dict[str, str]:
    meta = {"commerce_account_id": payment.account_id, "commerce_order_id": payment.order_id,
            "commerce_payment_id": payment.payment_id, "commerce_attempt": str(payment.attempt)}
    if payment.tax_calculation_id:
        meta["commerce_tax_calculation"] = payment.tax_calculation_id
    return meta


async def latest_attempt(session: AsyncSession, order: Order) -> CardPayment | None:
    return await session.scalar(select(CardPayment).where(
        CardPayment.account_id == order.account_id, CardPayment.order_id == order.order_id)
        .order_by(CardPayment.attempt.desc()).limit(1))


async def start_attempt(session: AsyncSession, order: Order, account: Account, user: User, *,
                        payment_method_id: str | None, clock: Clock) -> CardPayment | None:
    """Record the attempt to make (or return the unresolved one to replay); None: nothing to charge now."""
    if order.route != "card":
        raise IllegalOrderTransition("Budget orders are not paid by card.", state=order.state)
    if order.state in ("paid", "fulfilled", "requires_action"):
        return None
    if order.state not in ("payment_pending", "failed"):
        raise IllegalOrderTransition(f"A {order.state} order cannot be paid.", state=order.state)
    last = await latest_attempt(session, order)
    if last is not None and last.status == "pending":
        return last  # the outcome of that request is unknown: replay it, never start a second charge
    if payment_method_id is None or user.stripe_customer_id is None:
        raise CardSetupRequired("No saved card: run card setup first (POST /v1/payment-methods/setup), then pay.",
                                setup_url="/v1/payment-methods/setup")
    if order.state == "failed":
        order.failure_reason = None
        await _move(session, order, "payment_pending", account=account, user=user, clock=clock, retry=True)
    attempt = (last.attempt if last else 0) + 1
    payment = CardPayment(
        account_id=order.account_id, payment_id=new_id("cpay"), order_id=order.order_id, attempt=attempt,
        idempotency_key=idem("order", order.order_id, "pi", attempt), customer_id=user.stripe_customer_id,
        payment_method_id=payment_method_id, amount_minor=order.total_minor, currency=order.currency,
        status="pending", payment_intent_id=None, client_secret=None, failure_code=None, failure_reason=None,
        created_at=clock.now(), resolved_at=None, tax_calculation_id=order.tax_calculation_id)
    session.add(payment)
    await session.flush()
    return payment


async def record_outcome(session: AsyncSession, payment: CardPayment, outcome: Outcome, *, clock: Clock) -> Order:
    """Step 3 (also webhooks and reconcile): store the answer and move the order. Idempotent, order-safe."""
    payment = await session.get_one(CardPayment, (payment.account_id, payment.payment_id), with_for_update=True,
                                    populate_existing=True)
    order = await session.scalar(select(Order).where(Order.account_id == payment.account_id,
                                                     Order.order_id == payment.order_id).with_for_update()
                                 .execution_options(populate_existing=True))
    assert order is not None
    account = await session.get_one(Account, order.account_id)
    user = await session.get_one(User, (order.account_id, order.user_id))
    if outcome.payment_intent_id:
        payment.payment_intent_id = outcome.payment_intent_id
    if payment.status == "succeeded" or outcome.status == "pending":
        return order  # a success is final; "pending" only learns the PaymentIntent id
    last = await latest_attempt(session, order)
    current = last is not None and last.payment_id == payment.payment_id
    if outcome.status == "succeeded":
        payment.status, payment.resolved_at, payment.client_secret = "succeeded", clock.now(), None
        payment.failure_code = payment.failure_reason = None
        await _paid(session, order, account, user, payment, clock=clock)
        return order
    if payment.status == "failed" or not current:
        return order  # a late failure of an attempt already failed, or of an older attempt
    if outcome.status == "requires_action":
        payment.status, payment.client_secret = "requires_action", outcome.client_secret
        payment.failure_code, payment.failure_reason = outcome.failure_code, outcome.failure_reason
        if order.state == "payment_pending":
            await _move(session, order, "requires_action", account=account, user=user, clock=clock,
                        payment_intent=payment.payment_intent_id)
        return order
    payment.status, payment.resolved_at, payment.client_secret = "failed", clock.now(), None
    payment.failure_code, payment.failure_reason = outcome.failure_code, outcome.failure_reason
    if order.state in ("payment_pending", "requires_action"):
        order.failure_reason = outcome.failure_reason
        await _move(session, order, "failed", account=account, user=user, clock=clock,
                    reason=outcome.failure_reason, code=outcome.failure_code)
    return order


async def _paid(session: AsyncSession, order: Order, account: Account, user: User, payment: CardPayment, *,
                clock: Clock) -> None:
    order.payment_intent_id = payment.payment_intent_id
    if order.state in ("paid", "fulfilled", "refunded"):
        return
    if order.state == "failed":
        await _move(session, order, "payment_pending", account=account, user=user, clock=clock, retry=True)
    if order.state in ("payment_pending", "requires_action"):
        order.failure_reason = None
        await _pay_and_fulfil(session, order, account, user, clock=clock)
        return
    # Canceled (or expired) while the bank still took the money: keep the fact loud; reconcile refunds it.
    log.error("order %s is %s but its payment %s succeeded", order.order_id, order.state, payment.payment_id)
    await publish(session, PaymentOrphaned(
        order_id=order.order_id, state=order.state, payment_intent=payment.payment_intent_id,
        amount_minor=payment.amount_minor, currency=payment.currency), clock=clock, account_id=order.account_id)


async def unresolved_attempts(session: AsyncSession, *, older_than: timedelta, clock: Clock,
                              limit: int = 200) -> list[CardPayment]:
    """Attempts whose outcome we never recorded (or that wait for the customer), for reconcile."""
    return list((await session.scalars(select(CardPayment).where(
        CardPayment.status.in_(("pending", "requires_action")),
        CardPayment.created_at <= clock.now() - older_than).order_by(CardPayment.created_at).limit(limit))).all())
