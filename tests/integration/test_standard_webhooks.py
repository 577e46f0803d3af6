"""Deliveries follow the Standard Webhooks specification: the maintained verifier (the ``standardwebhooks``
package) and the SDK's helper accept them, with either secret during a rotation."""

from __future__ import annotations

import pytest
import standardwebhooks
from commerce_sdk import WebhookVerificationError, verify
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import SystemClock
from app.settings import Settings
from app.webhooks import service
from app.webhooks.dispatcher import Dispatcher
from tests.factories import emit_test_event, make_endpoint
from tests.support.receiver import Receiver


async def test_a_delivery_verifies_with_the_standard_webhooks_library(
        sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    clock = SystemClock()  # the library checks the timestamp against the real time
    async with Receiver() as rx:
        _, secret = await make_endpoint(sessionmaker, clock, settings, rx.url)
        event_id = await emit_test_event(sessionmaker, clock, n=7)
        d = Dispatcher(sessionmaker, settings=settings, clock=clock)
        await d.run_once()
        await d.aclose()
    [req] = rx.requests
    assert secret.startswith("whsec_") and req.headers["webhook-id"] == event_id
    payload = standardwebhooks.Webhook(secret).verify(req.body, req.headers)
    assert payload["id"] == event_id and payload["data"] == {"n": 7}
    assert verify(req.body, req.headers, secret).id == event_id
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook("whsec_" + "A" * 43).verify(req.body, req.headers)
    with pytest.raises(WebhookVerificationError):
        verify(req.body + b" ", req.headers, secret)


async def test_during_a_rotation_both_secrets_verify_with_the_library(
        sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    clock = SystemClock()
    async with Receiver() as rx:
        endpoint_id, old = await make_endpoint(sessionmaker, clock, settings, rx.url)
        async with sessionmaker() as s, s.begin():
            rotated = await service.rotate_secret(s, endpoint_id, overlap_seconds=3600, actor="test",
                                                  settings=settings, clock=clock)
        await emit_test_event(sessionmaker, clock)
        d = Dispatcher(sessionmaker, settings=settings, clock=clock)
        await d.run_once()
        await d.aclose()
    [req] = rx.requests
    assert req.headers["webhook-signature"].count("v1,") == 2
    for secret in (old, rotated.secret):
        standardwebhooks.Webhook(secret).verify(req.body, req.headers)
        verify(req.body, req.headers, secret)
