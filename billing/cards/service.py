"""Use cases of saved cards: a Stripe customer per paying user (made lazily), SetupIntents, list/remove/default.

Tenancy: the user is resolved by the caller (another account's user is a 404); a card of another
customer is a 404 too. Stripe calls use keys derived from our ids; the request transaction holds no
row lock while Stripe answers (the customer id is written with a guarded UPDATE afterwards).
"""

from __future__ import annotations

import stripe
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.accounts.models import User
from app.clock import Clock
from app.errors import NotFound
from app.ids import new_id
from billing.cards.schemas import CardList, CardRead, CardSetupRead
from billing.stripe_gateway import StripeGateway, idem


def customer_metadata(user: User) -> dict[str, str]:
    return {"commerce_account_id": user.account_id, "commerce_user_id": user.user_id}


async def ensure_customer(session: AsyncSession, gateway: StripeGateway, user: User) -> str:
    """The user's Stripe customer id, creating the customer once (concurrent callers share one by key)."""
    if user.stripe_customer_id:
        return user.stripe_customer_id
    # The body is a pure function of the key, so a retry (or a racing request) replays, never conflicts.
    customer = await gateway.create_customer(key=idem("user", user.user_id, "customer"),
                                             metadata=customer_metadata(user))
    await session.execute(
        update(User).where(User.account_id == user.account_id, User.user_id == user.user_id,
                           User.stripe_customer_id.is_(None))
        .values(stripe_customer_id=customer.id))
    user.stripe_customer_id = customer.id
    return customer.id


async def start_setup(
    session: AsyncSession, gateway: StripeGateway, user: User, *, attempt: str,
) -> CardSetupRead:
    """A SetupIntent (usage off_session) for the widget to save a card with."""
    customer_id = await ensure_customer(session, gateway, user)
    seti = await gateway.create_setup_intent(
        customer_id=customer_id, key=idem("user", user.user_id, "setup", attempt), metadata=customer_metadata(user))
    assert seti.client_secret is not None
    return CardSetupRead(setup_intent=seti.id, client_secret=seti.client_secret, status=seti.status)


def card_read(pm: stripe.PaymentMethod, default_id: str | None) -> CardRead:
    card = pm.card
    assert card is not None, "only card payment methods are listed"
    return CardRead(id=pm.id, brand=card.brand, last4=card.last4, exp_month=card.exp_month,
                    exp_year=card.exp_year, is_default=pm.id == default_id)


def _default_of(customer: stripe.Customer) -> str | None:
    settings = customer.invoice_settings
    pm = settings.default_payment_method if settings is not None else None
    return pm if isinstance(pm, str) or pm is None else pm.id


async def list_cards(gateway: StripeGateway, user: User) -> CardList:
    if not user.stripe_customer_id:
        return CardList(data=[])
    customer = await gateway.get_customer(user.stripe_customer_id)
    default_id = _default_of(customer)
    cards = await gateway.list_cards(user.stripe_customer_id)
    return CardList(data=[card_read(pm, default_id) for pm in cards])


async def _own_card(gateway: StripeGateway, user: User, payment_method_id: str) -> stripe.PaymentMethod:
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


async def remove_card(session: AsyncSession, gateway: StripeGateway, user: User, payment_method_id: str, *,
                      actor: str, clock: Clock) -> None:
    pm = await _own_card(gateway, user, payment_method_id)
    await gateway.detach_payment_method(pm.id, key=idem("pm", pm.id, "detach"))
    await audit.record(session, clock=clock, actor=actor, action="card.removed", target_type="user",
                       target_id=user.external_id, account_id=user.account_id, after={"payment_method": pm.id})


async def set_default_card(session: AsyncSession, gateway: StripeGateway, user: User, payment_method_id: str, *,
                           actor: str, clock: Clock) -> CardRead:
    pm = await _own_card(gateway, user, payment_method_id)
    assert user.stripe_customer_id is not None
    await make_default(gateway, user.stripe_customer_id, pm.id)
    await audit.record(session, clock=clock, actor=actor, action="card.default_set", target_type="user",
                       target_id=user.external_id, account_id=user.account_id, after={"payment_method": pm.id})
    return card_read(pm, pm.id)


async def make_default(gateway: StripeGateway, customer_id: str, payment_method_id: str, *,
                       key: str | None = None) -> None:
    """Setting the default is naturally idempotent, so a fresh request id per call is enough (the SDK keeps
    it across its retries); a key per (customer, card) would replay an old answer after A -> B -> A."""
    await gateway.set_default_payment_method(
        customer_id, payment_method_id, key=key or idem("customer", customer_id, "default", new_id("req")))
