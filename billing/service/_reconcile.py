"""``commerce billing reconcile``: repair what a lost webhook or a crash left unfinished, from Stripe's answers.

* card attempts still ``pending`` (we crashed or timed out after committing the attempt): replay the same
  request under the same idempotency key; Stripe answers with the first outcome (a charge made before the
  crash is recorded and fulfilled, never made twice);
* attempts waiting for the customer (``requires_action``): re-read the PaymentIntent; a success whose
  webhook was lost completes the order, a canceled one fails it;
* refunds still ``pending``: replay the refund under its key and record it;
* stored Stripe events whose handler failed: run them again.
Only attempts older than ``reconcile_after_seconds`` are touched, so requests in flight are left alone.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import Clock
from app.ids import new_id
from app.settings import Settings
from billing import stripe_events
from billing.models import CardPayment, Order, OrderRefund
from billing.service._card_refunds import pending_refunds, record_refund
from billing.service._payments import Outcome, record_outcome, settle, unresolved_attempts
from billing.stripe_gateway import StripeGateway, idem

log = logging.getLogger("commerce.reconcile")


async def reconcile(sessionmaker: async_sessionmaker[AsyncSession], gateway: StripeGateway, *, settings: Settings,
                    clock: Clock) -> dict[str, int]:
    counts = {"payments_replayed": 0, "payments_completed": 0, "refunds_replayed": 0, "orphans_refunded": 0,
              "events_reprocessed": 0, "errors": 0}
    older = timedelta(seconds=settings.reconcile_after_seconds)
    async with sessionmaker() as session:
        attempts = await unresolved_attempts(session, older_than=older, clock=clock)
        refunds = [r for r in await pending_refunds(session) if r.created_at <= clock.now() - older]
    for payment in attempts:
        try:
            if payment.status == "pending":
                if await _order_state(sessionmaker, payment) in ("canceled", "expired", "denied"):
                    log.error("payment %s of a closed order is unresolved; check it in Stripe", payment.payment_id)
                    continue
                await settle(sessionmaker, gateway, payment, clock=clock)
                counts["payments_replayed"] += 1
            elif payment.payment_intent_id is not None:
                pi = await gateway.get_payment_intent(payment.payment_intent_id)
                outcome = {"succeeded": Outcome("succeeded", pi.id),
                           "canceled": Outcome("failed", pi.id, None, "canceled", "The payment was canceled.")
                           }.get(pi.status)
                if outcome is not None:
                    async with sessionmaker() as session, session.begin():
                        await record_outcome(session, payment, outcome, clock=clock)
                    counts["payments_completed"] += 1
        except Exception:
            log.exception("reconciling payment %s failed", payment.payment_id)
            counts["errors"] += 1
    for refund in await _refund_orphans(sessionmaker, clock=clock):
        refunds.append(refund)
        counts["orphans_refunded"] += 1
    for refund in refunds:
        try:
            await _replay_refund(sessionmaker, gateway, refund, clock=clock)
            counts["refunds_replayed"] += 1
        except Exception:
            log.exception("reconciling refund %s failed", refund.refund_id)
            counts["errors"] += 1
    done, failed = await stripe_events.reprocess_pending(sessionmaker, gateway, clock=clock)
    counts["events_reprocessed"], counts["errors"] = done, counts["errors"] + failed
    return counts


async def _refund_orphans(sessionmaker: async_sessionmaker[AsyncSession], *, clock: Clock) -> list[OrderRefund]:
    """Pending refunds (committed here) for payments that succeeded on orders closed without them."""
    made: list[OrderRefund] = []
    async with sessionmaker() as session, session.begin():
        rows = (await session.execute(
            select(CardPayment, Order).join(Order, (Order.account_id == CardPayment.account_id)
                                            & (Order.order_id == CardPayment.order_id))
            .where(CardPayment.status == "succeeded", Order.state.in_(("canceled", "expired", "denied")),
                   Order.refunded_minor == 0, ~exists().where(OrderRefund.account_id == Order.account_id,
                                                               OrderRefund.order_id == Order.order_id))
            .limit(100).with_for_update(of=Order, skip_locked=True))).all()
        for payment, order in rows:
            row = OrderRefund(account_id=order.account_id, refund_id=new_id("rfd"), order_id=order.order_id, seq=1,
                              amount_minor=payment.amount_minor, status="pending", stripe_refund_id=None,
                              note="paid after the order was closed", actor="reconcile", created_at=clock.now(),
                              resolved_at=None)
            session.add(row)
            made.append(row)
    return made


async def _order_state(sessionmaker: async_sessionmaker[AsyncSession], payment: CardPayment) -> str | None:
    async with sessionmaker() as session:
        return await session.scalar(select(Order.state).where(Order.account_id == payment.account_id,
                                                              Order.order_id == payment.order_id))


async def _replay_refund(sessionmaker: async_sessionmaker[AsyncSession], gateway: StripeGateway,
                         refund: OrderRefund, *, clock: Clock) -> None:
    async with sessionmaker() as session:
        pi_id = await session.scalar(select(Order.payment_intent_id).where(
            Order.account_id == refund.account_id, Order.order_id == refund.order_id))
    assert pi_id is not None, "only paid card orders are refunded"
    stripe_refund = await gateway.refund(
        payment_intent_id=pi_id, key=idem("order", refund.order_id, "refund", refund.seq),
        amount_minor=refund.amount_minor, reason="requested_by_customer",
        metadata={"commerce_account_id": refund.account_id, "commerce_order_id": refund.order_id,
                  "commerce_refund_id": refund.refund_id})
    async with sessionmaker() as session, session.begin():
        await record_refund(session, refund, stripe_refund_id=stripe_refund.id, clock=clock)
