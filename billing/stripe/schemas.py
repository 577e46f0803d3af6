"""HTTP contract of billing.stripe: saved cards and the webhook receipt."""

from __future__ import annotations

from typing import Annotated

from litestar.params import Parameter

from app.schemas import Output

PaymentMethodId = Annotated[str, Parameter(
    description="A saved card's id (pm_...)", pattern=r"^pm_[A-Za-z0-9_]{1,120}$", max_length=123)]


class CardSetupRead(Output, frozen=True):
    """Hand ``client_secret`` to Stripe.js (``stripe.confirmCardSetup``) in the widget to save a card."""

    setup_intent: str
    client_secret: str
    status: str


class CardRead(Output, frozen=True):
    id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    is_default: bool


class CardList(Output, frozen=True):
    data: list[CardRead]


class WebhookReceipt(Output, frozen=True):
    received: bool
    event: str
    duplicate: bool
