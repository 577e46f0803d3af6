"""HTTP routes of saved cards: decode, resolve the user (tenancy), call one use case, encode.

An end user acts for itself with its session token (``?user=`` names itself; a customer admin may name
its account's users); the vendor acts for any user with an API key naming it in ``?user=``.
"""

from __future__ import annotations

import hashlib
from typing import Any, TypeAlias

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import SkipValidation

from app.accounts import resolve_user
from app.deps import ClockDep, CurrentPrincipal, DbSession
from app.idempotency import HEADER, run_idempotent
from app.ids import new_id
from app.params import UserRef
from billing.cards import service
from billing.cards.schemas import CardList, CardRead, CardSetupRead, PaymentMethodId
from billing.stripe_gateway import StripeGateway, provide_gateway

GatewayDep: TypeAlias = NamedDependency[SkipValidation[StripeGateway]]


def _attempt(request: Request[Any, Any, Any]) -> str:
    """A per-attempt id: derived from the caller's Idempotency-Key when sent, so its retries reuse it."""
    key = request.headers.get(HEADER)
    return hashlib.sha256(key.encode()).hexdigest()[:32] if key else new_id("att")


# saving, removing and choosing cards: the tighter rate-limit class (card testing is a known abuse)
CARD_WRITE = {"scope": "commerce:write", "user_access": "self", "owner": "user", "rate_limit": "money"}


class CardController(Controller):
    path = "/v1/payment-methods"
    tags = ["Cards"]
    dependencies = {"gateway": Provide(provide_gateway, sync_to_thread=False)}

    @post("/setup", opt=CARD_WRITE, status_code=201,
          summary="Start saving a card (SetupIntent client secret for the widget)")
    async def setup(
        self, request: Request[Any, Any, Any], db_session: DbSession, principal: CurrentPrincipal,
        gateway: GatewayDep, user: UserRef,
    ) -> Response[CardSetupRead]:
        async def produce() -> tuple[int, CardSetupRead]:
            who = await resolve_user(db_session, principal, user)
            return 201, await service.start_setup(db_session, gateway, who, attempt=_attempt(request))

        return await run_idempotent(request, db_session, produce)

    @get("/", opt={"scope": "commerce:read", "user_access": "self", "owner": "user"},
         summary="List the user's saved cards")
    async def list_cards(
        self, db_session: DbSession, principal: CurrentPrincipal, gateway: GatewayDep, user: UserRef,
    ) -> CardList:
        return await service.list_cards(gateway, await resolve_user(db_session, principal, user))

    @delete("/{payment_method_id:str}", opt=CARD_WRITE,
            summary="Remove a saved card")
    async def remove(
        self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep, gateway: GatewayDep,
        user: UserRef, payment_method_id: PaymentMethodId,
    ) -> None:
        who = await resolve_user(db_session, principal, user)
        await service.remove_card(db_session, gateway, who, payment_method_id, actor=principal.actor, clock=clock)

    @post("/{payment_method_id:str}/default", opt=CARD_WRITE,
          status_code=200, summary="Make a saved card the default")
    async def make_default(
        self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep, gateway: GatewayDep,
        user: UserRef, payment_method_id: PaymentMethodId,
    ) -> CardRead:
        who = await resolve_user(db_session, principal, user)
        return await service.set_default_card(db_session, gateway, who, payment_method_id, actor=principal.actor,
                                              clock=clock)
