"""HTTP routes of billing.stripe: saved cards, and Stripe's webhook endpoint. Decode, call one flow, encode.

Saved cards: an end user acts for itself with its session token (``?user=`` names itself; a customer admin
may name its account's users); the vendor acts for any user with an API key naming it in ``?user=``. The
routes hold no transaction while Stripe answers: each flow reads, calls Stripe, then records in its own
transaction (billing.stripe.flows).
"""

from __future__ import annotations

import hashlib
from typing import Any, TypeAlias

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi import ResponseSpec
from litestar.params import SkipValidation

from app.deps import ClockDep, CurrentPrincipal, DbSession
from app.errors import Problem
from app.idempotency import HEADER, run_idempotent
from app.ids import new_id
from app.params import UserRef
from billing.stripe import flows, inbound
from billing.stripe.gateway import StripeGateway, provide_gateway
from billing.stripe.schemas import CardList, CardRead, CardSetupRead, PaymentMethodId, WebhookReceipt

# saving, removing and choosing cards: the tighter rate-limit class (card testing is a known abuse)
CARD_WRITE = {"scope": "commerce:write", "user_access": "self", "owner": "user", "rate_limit": "money"}

GatewayDep: TypeAlias = NamedDependency[SkipValidation[StripeGateway]]


def _attempt(request: Request[Any, Any, Any]) -> str:
    """A per-attempt id: derived from the caller's Idempotency-Key when sent, so its retries reuse it."""
    key = request.headers.get(HEADER)
    return hashlib.sha256(key.encode()).hexdigest()[:32] if key else new_id("att")


class CardController(Controller):
    path = "/v1/payment-methods"
    tags = ["Cards"]
    dependencies = {"gateway": Provide(provide_gateway, sync_to_thread=False)}

    @post("/setup", opt={**CARD_WRITE, "idempotency": "optional"}, status_code=201,
          summary="Start saving a card (SetupIntent client secret for the widget)")
    async def setup(
        self, request: Request[Any, Any, Any], db_session: DbSession, principal: CurrentPrincipal,
        gateway: GatewayDep, user: UserRef,
    ) -> Response[CardSetupRead]:
        async def produce() -> tuple[int, CardSetupRead]:
            return 201, await flows.start_card_setup(request.app.state.sessionmaker, gateway, principal, user,
                                                     attempt=_attempt(request))

        return await run_idempotent(request, db_session, produce)

    @get("/", opt={"scope": "commerce:read", "user_access": "self", "owner": "user"},
         summary="List the user's saved cards")
    async def list_cards(
        self, request: Request[Any, Any, Any], principal: CurrentPrincipal, gateway: GatewayDep, user: UserRef,
    ) -> CardList:
        return await flows.list_saved_cards(request.app.state.sessionmaker, gateway, principal, user)

    @delete("/{payment_method_id:str}", opt=CARD_WRITE,
            summary="Remove a saved card")
    async def remove(
        self, request: Request[Any, Any, Any], principal: CurrentPrincipal, clock: ClockDep, gateway: GatewayDep,
        user: UserRef, payment_method_id: PaymentMethodId,
    ) -> None:
        await flows.remove_card(request.app.state.sessionmaker, gateway, principal, user, payment_method_id,
                                clock=clock)

    @post("/{payment_method_id:str}/default", opt=CARD_WRITE,
          status_code=200, summary="Make a saved card the default")
    async def make_default(
        self, request: Request[Any, Any, Any], principal: CurrentPrincipal, clock: ClockDep, gateway: GatewayDep,
        user: UserRef, payment_method_id: PaymentMethodId,
    ) -> CardRead:
        return await flows.set_default_card(request.app.state.sessionmaker, gateway, principal, user,
                                            payment_method_id, clock=clock)


@post("/v1/stripe/webhook", opt={"public": True, "owner": "public"}, status_code=200, tags=["Stripe"],
      summary="Stripe webhook endpoint (signature-verified)",
      description="Verifies the Stripe-Signature header on the raw body, stores the event once by id and "
                  "handles it. A bad or old signature answers 400 and nothing is done; a repeated event "
                  "answers 200 with duplicate=true.",
      responses={400: ResponseSpec(Problem, description="Bad or old signature, or not a Stripe event",
                                   media_type="application/problem+json")})
async def stripe_webhook(request: Request[Any, Any, Any], clock: ClockDep) -> WebhookReceipt:
    gateway = provide_gateway(request.app.state)
    payload = await request.body()
    receipt = await inbound.receive(
        request.app.state.sessionmaker, gateway, payload, request.headers.get("stripe-signature"), clock=clock)
    return WebhookReceipt(received=True, event=receipt.event_id, duplicate=receipt.duplicate)
