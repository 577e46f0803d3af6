"""Refunds and disputes of card orders: the revocation rule, events, replays and webhooks in any order."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import select

from app.outbox import OutboxEvent
from billing.models import OrderRefund, Subscription
from tests.api.stripe_app import CardWorld, allowed, card_order, pay, save_card
from tests.api.test_auth import assert_problem
from tests.factories import bearer
from tests.stripe_server import FaultKind


async def _paid_order(world: CardWorld) -> dict[str, Any]:
    await save_card(world)
    order = await card_order(world, "reports_basic")
    o = (await pay(world, order["id"])).json()
    assert o["state"] == "fulfilled" and await allowed(world)
    await world.deliver()
    return dict(o)


_keys = itertools.count()


async def _refund(world: CardWorld, order_id: str, **body: Any) -> Any:
    """A refund request (each call a new request: its own Idempotency-Key)."""
    return await world.client.post(f"/v1/orders/{order_id}/refund", json=body,
                                   headers={**bearer(world.a.admin_token), "Idempotency-Key": f"rf-{next(_keys)}"})


async def _events(sessionmaker: Any, *types: str) -> list[dict[str, Any]]:
    async with sessionmaker() as s:
        rows = (await s.scalars(select(OutboxEvent).where(OutboxEvent.type.in_(types)).order_by(OutboxEvent.seq)))
        return [{"type": e.type, **e.payload} for e in rows]


async def test_partial_refund_keeps_access_and_the_rest_revokes_it_and_stops_renewals(
        shop: CardWorld, sessionmaker: Any) -> None:
    o = await _paid_order(shop)
    part = await _refund(shop, o["id"], amount_minor=100, note="goodwill")
    assert part.status_code == 200, part.text
    assert (part.json()["state"], part.json()["refunded_minor"]) == ("fulfilled", 100) and await allowed(shop)
    assert_problem(await _refund(shop, o["id"], amount_minor=500), 422, "unprocessable")
    rest = await _refund(shop, o["id"])
    assert (rest.json()["state"], rest.json()["refunded_minor"]) == ("refunded", 225) and not await allowed(shop)
    [charge] = shop.fake.of_kind("charge")
    assert charge["amount_refunded"] == 225 and len(shop.fake.of_kind("refund")) == 2
    await shop.deliver()  # charge.refunded twice (cumulative 100, then 225), late: nothing changes
    got = (await shop.client.get(f"/v1/orders/{o['id']}", headers=bearer(shop.a.user_token))).json()
    assert (got["state"], got["refunded_minor"]) == ("refunded", 225)
    events = await _events(sessionmaker, "order.partially_refunded", "order.refunded", "subscription.canceled")
    assert [(e["type"], e.get("amount_minor") or e.get("refunded_minor")) for e in events] == [
        ("order.partially_refunded", 100), ("subscription.canceled", None), ("order.refunded", 125)]
    async with sessionmaker() as s:
        assert (await s.scalar(select(Subscription.status))) == "canceled"
        keys = [r.path for r in shop.fake.requests if r.path == "/v1/refunds"]
    assert len(keys) == 2
    assert_problem(await _refund(shop, o["id"]), 409, "illegal_transition")


async def test_a_refund_whose_answer_was_lost_is_replayed_not_repeated(shop: CardWorld, sessionmaker: Any) -> None:
    o = await _paid_order(shop)
    shop.fake.inject(FaultKind.LOST_RESPONSE, method="POST", path="/v1/refunds", times=3)
    assert_problem(await _refund(shop, o["id"], amount_minor=100), 503, "payment_provider_unavailable")
    async with sessionmaker() as s:
        assert [r.status for r in (await s.scalars(select(OrderRefund)))] == ["pending"]
    # another amount while the first is unresolved is refused; the same request replays it
    assert_problem(await _refund(shop, o["id"], amount_minor=50), 409, "payment_in_progress")
    r = await _refund(shop, o["id"], amount_minor=100)
    assert r.json()["refunded_minor"] == 100 and r.json()["state"] == "fulfilled"
    assert len(shop.fake.of_kind("refund")) == 1 and shop.fake.of_kind("charge")[0]["amount_refunded"] == 100


async def test_a_refund_made_in_the_stripe_dashboard_arrives_by_webhook(shop: CardWorld) -> None:
    o = await _paid_order(shop)
    gateway = shop.client.app.state.stripe
    await gateway.refund(payment_intent_id=o["payment"]["payment_intent"], key="dashboard-1")
    await shop.deliver()
    got = (await shop.client.get(f"/v1/orders/{o['id']}", headers=bearer(shop.a.user_token))).json()
    assert (got["state"], got["refunded_minor"]) == ("refunded", 225) and not await allowed(shop)


async def test_a_lost_dispute_revokes_access_and_a_won_one_keeps_it(shop: CardWorld, sessionmaker: Any) -> None:
    o = await _paid_order(shop)
    gateway = shop.client.app.state.stripe
    [charge] = shop.fake.of_kind("charge")
    dispute = (await gateway.client.raw_request_async("post", f"/v1/_fake/charges/{charge['id']}/dispute"))
    dispute_id = dispute.id if hasattr(dispute, "id") else shop.fake.of_kind("dispute")[0]["id"]
    await shop.deliver()
    got = (await shop.client.get(f"/v1/orders/{o['id']}", headers=bearer(shop.a.user_token))).json()
    assert (got["state"], got["dispute_status"]) == ("fulfilled", "needs_response") and await allowed(shop)
    created = list(shop.fake.events_of("charge.dispute.created"))
    await gateway.client.raw_request_async("post", f"/v1/_fake/disputes/{dispute_id}/close", status="lost")
    await shop.deliver()
    shop.fake._undelivered.extend(created)  # the opening event again, after the close: ignored
    await shop.deliver()
    got = (await shop.client.get(f"/v1/orders/{o['id']}", headers=bearer(shop.a.user_token))).json()
    assert (got["state"], got["dispute_status"], got["refunded_minor"]) == ("refunded", "lost", 225)
    assert not await allowed(shop)
    types = [e["type"] for e in await _events(sessionmaker, "order.disputed", "order.dispute_lost", "order.refunded")]
    assert types == ["order.disputed", "order.dispute_lost", "order.refunded"]


async def test_a_won_dispute_keeps_access(shop: CardWorld) -> None:
    o = await _paid_order(shop)
    gateway = shop.client.app.state.stripe
    [charge] = shop.fake.of_kind("charge")
    await gateway.client.raw_request_async("post", f"/v1/_fake/charges/{charge['id']}/dispute")
    dispute_id = shop.fake.of_kind("dispute")[0]["id"]
    await gateway.client.raw_request_async("post", f"/v1/_fake/disputes/{dispute_id}/close", status="won")
    await shop.deliver()
    got = (await shop.client.get(f"/v1/orders/{o['id']}", headers=bearer(shop.a.user_token))).json()
    assert (got["state"], got["dispute_status"]) == ("fulfilled", "won") and await allowed(shop)
