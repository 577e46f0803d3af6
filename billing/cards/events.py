"""Stripe events about saved cards."""

from __future__ import annotations

import stripe
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import outbox
from app.accounts.models import User
from billing.cards.service import _default_of, make_default
from billing.stripe_events import EventContext, register
from billing.stripe_gateway import idem


@register("setup_intent.succeeded")
async def card_saved(session: AsyncSession, event: stripe.Event, ctx: EventContext) -> None:
    """A card was saved: make it the default when the customer has none, and tell the vendor's app.

    Order-safe: the customer and the card are re-read from Stripe (a card removed since is left alone).
    """
    seti = event.data.object
    customer_id, pm_id = getattr(seti, "customer", None), getattr(seti, "payment_method", None)
    if not isinstance(customer_id, str) or not isinstance(pm_id, str):
        return
    user = await session.scalar(select(User).where(User.stripe_customer_id == customer_id))
    if user is None:
        return  # not one of our users' customers
    pm = await ctx.gateway.get_payment_method(pm_id)
    if pm.customer != customer_id:
        return  # removed again before this event arrived
    customer = await ctx.gateway.get_customer(customer_id)
    made_default = _default_of(customer) is None
    if made_default:
        await make_default(ctx.gateway, customer_id, pm_id, key=idem("seti", seti.id, "default"))
    await outbox.emit(session, clock=ctx.clock, type="payment_method.saved", account_id=user.account_id,
                      payload={"user": user.external_id, "payment_method": pm_id, "is_default": made_default,
                               "brand": pm.card.brand if pm.card else None,
                               "last4": pm.card.last4 if pm.card else None})
