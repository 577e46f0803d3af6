"""``POST /v1/stripe/webhook``: Stripe's events in (public; authenticated by the signature on the raw body)."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.openapi import ResponseSpec

from app.deps import ClockDep
from app.errors import Problem
from app.schemas import Output
from billing import stripe_events
from billing.stripe_gateway import provide_gateway


class WebhookReceipt(Output, frozen=True):
    received: bool
    event: str
    duplicate: bool


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
    receipt = await stripe_events.receive(
        request.app.state.sessionmaker, gateway, payload, request.headers.get("stripe-signature"), clock=clock)
    return WebhookReceipt(received=True, event=receipt.event_id, duplicate=receipt.duplicate)
