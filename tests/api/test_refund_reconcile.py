"""Refunds Stripe left pending whose outcome webhook never arrived: reconcile asks Stripe and records the outcome."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.clock import FrozenClock
from app.settings import Settings
from billing.models import OrderRefund
from billing.stripe.flows import reconcile
from tests.api.stripe_app import CardWorld, allowed
from tests.api.test_stripe_rules import _order, _paid, _refund


async def _statuses(sessionmaker: Any) -> list[str]:
    async with sessionmaker() as s:
        return list((await s.scalars(select(OrderRefund.status))).all())


@pytest.mark.parametrize(("outcome", "state", "refunded", "access"),
                         [("succeeded", "refunded", 225, False), ("failed", "fulfilled", 0, True)])
async def test_reconcile_reads_a_processing_refund_from_stripe_and_records_its_outcome(
        shop: CardWorld, sessionmaker: Any, clock: FrozenClock, settings: Settings, outcome: str, state: str,
        refunded: int, access: bool) -> None:
    o = await _paid(shop)
    shop.fake.refunds_pending = True
    assert (await _refund(shop, o["id"], f"stuck-{outcome}")).status_code == 200
    assert await _statuses(sessionmaker) == ["processing"]
    gateway = shop.client.app.state.stripe
    [refund] = shop.fake.of_kind("refund")
    await gateway.client.raw_request_async("post", f"/v1/_fake/refunds/{refund['id']}/settle", status=outcome)
    shop.fake._undelivered.clear()  # the refund.updated webhook is lost
    counts = await reconcile(sessionmaker, gateway, settings=settings, clock=clock)
    assert counts["refunds_settled"] == 0  # too young: a webhook may still come
    clock.advance(timedelta(seconds=settings.reconcile_after_seconds + 1))
    counts = await reconcile(sessionmaker, gateway, settings=settings, clock=clock)
    assert (counts["refunds_settled"], counts["errors"]) == (1, 0)
    assert await _statuses(sessionmaker) == [outcome]
    got = await _order(shop, o["id"])
    assert (got["state"], got["refunded_minor"]) == (state, refunded) and await allowed(shop) is access
    again = await reconcile(sessionmaker, gateway, settings=settings, clock=clock)
    assert again["refunds_settled"] == 0 and await _statuses(sessionmaker) == [outcome]


async def test_a_refund_still_pending_at_stripe_stays_processing(
        shop: CardWorld, sessionmaker: Any, clock: FrozenClock, settings: Settings) -> None:
    o = await _paid(shop)
    shop.fake.refunds_pending = True
    assert (await _refund(shop, o["id"], "still")).status_code == 200
    clock.advance(timedelta(seconds=settings.reconcile_after_seconds + 1))
    counts = await reconcile(sessionmaker, shop.client.app.state.stripe, settings=settings, clock=clock)
    assert (counts["refunds_settled"], counts["errors"]) == (0, 0)
    assert await _statuses(sessionmaker) == ["processing"] and await allowed(shop)
