"""Saved cards: a Stripe customer per paying user, the card to charge, and the card-saved event.

The pieces the card flows (billing.stripe.flows) are made of: Stripe reads and writes that never run inside a
transaction, and the small recording steps that do. Tenancy: the user is resolved by the caller (another
account's user is a 404); a card of another customer is a 404 too.
"""

from __future__ import annotations

import stripe
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.errors import NotFound
from app.events import publish
from app.ids import new_id
from billing.events import PaymentMethodSaved
from billing.stripe.errors import CardSetupRequired
from billing.stripe.gateway import StripeGateway, idem
from billing.stripe.inbound import EventContext, Step, register_prepared
from billing.stripe.schemas import CardRead

SETUP_URL = "/v1/payment-methods/setup"


def customer_metadata(user: User) -> dict[str, str]:
    return {"commerce_account_id": user.account_id, "commerce_user_id": user.user_id}


async def create_customer(gateway: StripeGateway, user: User) -> str:
    """The user's Stripe customer, made once by key (a retry, or a racing request, replays the same one)."""
    customer = await gateway.create_customer(key=idem("user", user.user_id, "customer"),
                                             metadata=customer_metadata(user))
    return customer.id


async def store_customer(session: AsyncSession, user: User, customer_id: str) -> None:
    """Remember the user's customer id (a guarded UPDATE: the first writer wins, the same id anyway)."""
    await session.execute(
        update(User).where(User.account_id == user.account_id, User.user_id == user.user_id,
                           User.stripe_customer_id.is_(None))
        .values(stripe_customer_id=customer_id))


def card_read(pm: stripe.PaymentMethod, default_id: str | None) -> CardRead:
    card = pm.card
    assert card is not None, "only card payment methods are listed"
    return CardRead(id=pm.id, brand=card.brand, last4=card.last4, exp_month=card.exp_month,
                    exp_year=card.exp_year, is_default=pm.id == default_id)


def default_of(customer: stripe.Customer) -> str | None:
    """The customer's default card id (``invoice_settings.default_payment_method``), if any."""
    settings = customer.invoice_settings
    pm = settings.default_payment_method if settings is not None else None
    return pm if isinstance(pm, str) or pm is None else pm.id


async def own_card(gateway: StripeGateway, user: User, payment_method_id: str) -> stripe.PaymentMethod:
    """The card if it is saved on this user's customer; anything else (another customer's) is a 404."""
    not_found = NotFound("This card does not exist (or is not saved for this user).")
    if not user.stripe_customer_id:
        raise not_found
    try:
        pm = await gateway.get_payment_method(payment_method_id)
    except NotFound:
        raise not_found from None
    owner = pm.customer if isinstance(pm.customer, str) or pm.customer is None else pm.customer.id
    if owner != user.stripe_customer_id or pm.card is None:
        raise not_found
    return pm


async def make_default(gateway: StripeGateway, customer_id: str, payment_method_id: str, *,
                       key: str | None = None) -> None:
    """Setting the default is naturally idempotent, so a fresh request id per call is enough (the SDK keeps
    it across its retries); a key per (customer, card) would replay an old answer after A -> B -> A."""
    await gateway.set_default_payment_method(
        customer_id, payment_method_id, key=key or idem("customer", customer_id, "default", new_id("req")))


async def choose_card(gateway: StripeGateway, customer_id: str | None, payment_method_id: str | None) -> str:
    """The card to charge: the one asked for (if saved on this customer), else the default, else the only one."""
    setup = CardSetupRequired("No saved card: run card setup first (POST /v1/payment-methods/setup), then pay.",
                              setup_url=SETUP_URL)
    if not customer_id:
        raise setup
    ids = [c.id for c in await gateway.list_cards(customer_id)]
    if payment_method_id is not None:
        if payment_method_id not in ids:
            raise NotFound("This card is not saved for this user.")
        return payment_method_id
    default_id = default_of(await gateway.get_customer(customer_id))
    if default_id is not None and default_id in ids:
        return default_id
    if not ids:
        raise setup
    return ids[0]


@register_prepared("setup_intent.succeeded")
async def card_saved(event: stripe.Event, gateway: StripeGateway) -> Step | None:
    """A card was saved: make it the default when the customer has none (Stripe, before the transaction), then
    tell the vendor's app (in the event's transaction).

    Order-safe: the card and the customer are re-read from Stripe (a card removed since is left alone, a
    newer default is kept); the default is set under a key per SetupIntent, so a redelivery replays it.
    """
    seti = event.data.object
    customer_id, pm_id = getattr(seti, "customer", None), getattr(seti, "payment_method", None)
    if not isinstance(customer_id, str) or not isinstance(pm_id, str):
        return None
    pm = await gateway.get_payment_method(pm_id)
    if pm.customer != customer_id:
        return None  # removed again before this event arrived
    customer = await gateway.get_customer(customer_id)
    if "commerce_user_id" not in (customer.metadata or {}):
        return None  # not one of our users' customers
    made_default = default_of(customer) is None
    if made_default:
        await make_default(gateway, customer_id, pm_id, key=idem("seti", seti.id, "default"))
    brand, last4 = (pm.card.brand, pm.card.last4) if pm.card else (None, None)

    async def record(session: AsyncSession, ctx: EventContext) -> None:
        user = await session.scalar(select(User).where(User.stripe_customer_id == customer_id))
        if user is None:
            return
        await publish(session, PaymentMethodSaved(user=user.external_id, payment_method=pm_id,
                                                  is_default=made_default, brand=brand, last4=last4),
                      clock=ctx.clock, account_id=user.account_id)

    return record
