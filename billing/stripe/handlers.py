"""Handlers of Stripe's webhook events (registered on import; billing.stripe.inbound stores and dispatches).

Every handler is idempotent and order-safe: it finds our own record (payment attempt, order, statement)
and merges the event into it monotonically (a success is final, a late failure of an older attempt is
ignored, refunds are cumulative maxima, a closed dispute is not reopened, a paid invoice stays paid).
They run inside the event's transaction, so they never call Stripe (their context has no gateway); the
snapshots they trust are the terminal facts of the object (a succeeded PaymentIntent, a charge's cumulative
refunds, a dispute's status). The one handler that needs Stripe, a saved card, is in billing.stripe.cards.
"""

from __future__ import annotations

import logging
from typing import Any

import stripe
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.models import CardPayment
from billing.service._card_refunds import (
    apply_refunded,
    dispute_closed,
    dispute_opened,
    order_for_payment_intent,
    record_refund,
    refund_by_stripe_id,
    refund_failed,
    refund_processing,
    unsettled_minor,
)
from billing.service._invoices import invoice_status_changed
from billing.service._payments import Outcome, record_outcome
from billing.stripe import cards as _cards  # noqa: F401  (registers the card-saved handler)
from billing.stripe.gateway import decline_message
from billing.stripe.inbound import EventContext, register

log = logging.getLogger("commerce.stripe.handlers")


def _id(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return str(value.id)


async def _payment(session: AsyncSession, pi: Any) -> CardPayment | None:
    """Our attempt for this PaymentIntent: by its id, else by the metadata we sent (a crash lost the id)."""
    row = await session.scalar(select(CardPayment).where(CardPayment.payment_intent_id == pi.id))
    if row is not None:
        return row
    metadata = pi.metadata.to_dict() if pi.metadata is not None else {}
    account_id, payment_id = metadata.get("commerce_account_id"), metadata.get("commerce_payment_id")
    if not account_id or not payment_id:
        return None
    return await session.get(CardPayment, (account_id, payment_id))


@register("payment_intent.succeeded")
async def payment_succeeded(session: AsyncSession, event: stripe.Event, ctx: EventContext) -> None:
    pi = event.data.object
    payment = await _payment(session, pi)
    if payment is not None:
        await record_outcome(session, payment, Outcome("succeeded", pi.id), clock=ctx.clock)


@register("payment_intent.payment_failed")
async def payment_failed(session: AsyncSession, event: stripe.Event, ctx: EventContext) -> None:
    pi = event.data.object
    payment = await _payment(session, pi)
    if payment is None:
        return
    error = pi.last_payment_error
    code = getattr(error, "code", None) if error is not None else None
    decline = getattr(error, "decline_code", None) if error is not None else None
    if code == "authentication_required":  # off-session 3DS: the customer can still confirm on-session
        outcome = Outcome("requires_action", pi.id, pi.client_secret, code, decline_message(code, None))
    else:
        outcome = Outcome("failed", pi.id, None, decline or code or "card_declined", decline_message(code, decline))
    await record_outcome(session, payment, outcome, clock=ctx.clock)


@register("payment_intent.requires_action")
async def payment_requires_action(session: AsyncSession, event: stripe.Event, ctx: EventContext) -> None:
    pi = event.data.object
    payment = await _payment(session, pi)
    if payment is not None:
        await record_outcome(session, payment, Outcome(
            "requires_action", pi.id, pi.client_secret, "authentication_required",
            decline_message("authentication_required", None)), clock=ctx.clock)


@register("charge.refunded")
async def charge_refunded(session: AsyncSession, event: stripe.Event, ctx: EventContext) -> None:
    charge = event.data.object
    pi_id = _id(charge.payment_intent)
    order = await order_for_payment_intent(session, pi_id) if pi_id else None
    if order is not None:  # Stripe counts refunds still on their way (and, in old snapshots, failed ones)
        cumulative = int(charge.amount_refunded) - await unsettled_minor(session, order)
        await apply_refunded(session, order, cumulative_minor=cumulative, clock=ctx.clock)


@register("refund.created")
@register("refund.updated")
@register("refund.failed")
async def refund_changed(session: AsyncSession, event: stripe.Event, ctx: EventContext) -> None:
    """A refund's status: succeeded counts, failed or canceled returns nothing, pending waits."""
    refund = event.data.object
    metadata = refund.metadata.to_dict() if refund.metadata is not None else {}
    row = await refund_by_stripe_id(session, refund.id, metadata)
    if row is None:
        return  # a refund made outside the service: charge.refunded carries it
    if refund.status == "succeeded":
        await record_refund(session, row, stripe_refund_id=refund.id, clock=ctx.clock)
    elif refund.status in ("failed", "canceled"):
        row.stripe_refund_id = row.stripe_refund_id or refund.id
        await refund_failed(session, row, clock=ctx.clock, status="canceled" if refund.status == "canceled"
                            else "failed", reason=refund.failure_reason)
    elif refund.status == "pending":
        await refund_processing(session, row, stripe_refund_id=refund.id, clock=ctx.clock)


@register("charge.dispute.created")
async def dispute_created(session: AsyncSession, event: stripe.Event, ctx: EventContext) -> None:
    dispute = event.data.object
    pi_id = _id(getattr(dispute, "payment_intent", None))
    order = await order_for_payment_intent(session, pi_id) if pi_id else None
    if order is None:
        log.warning("dispute %s names no payment of ours", dispute.id)
        return
    await dispute_opened(session, order, dispute_id=dispute.id, status=dispute.status, clock=ctx.clock)


@register("charge.dispute.closed")
async def dispute_closed_(session: AsyncSession, event: stripe.Event, ctx: EventContext) -> None:
    dispute = event.data.object
    pi_id = _id(getattr(dispute, "payment_intent", None))
    order = await order_for_payment_intent(session, pi_id) if pi_id else None
    if order is not None:
        await dispute_closed(session, order, dispute_id=dispute.id, status=dispute.status, clock=ctx.clock)


async def invoice_changed(session: AsyncSession, event: stripe.Event, ctx: EventContext) -> None:
    """invoice.finalized / paid / payment_failed / voided: the statement of the invoice follows."""
    invoice = event.data.object
    metadata = invoice.metadata.to_dict() if invoice.metadata is not None else {}
    await invoice_status_changed(session, invoice_id=invoice.id, metadata=metadata, event_type=event.type,
                                 clock=ctx.clock)


for _type in ("invoice.finalized", "invoice.paid", "invoice.payment_failed", "invoice.voided"):
    register(_type)(invoice_changed)
