"""Idempotency-Key on refunds, trials, usage and webhook secrets: a retry answers the first result, never twice."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import select

from app.accounts.models import User
from app.webhooks.models import WebhookDelivery
from tests.api.stripe_app import CardWorld, allowed, card_order, pay, save_card
from tests.api.test_auth import assert_problem
from tests.api.test_catalog import seed_demo
from tests.factories import bearer, emit_test_event, make_key


async def _paid(world: CardWorld) -> dict[str, Any]:
    await save_card(world)
    order = await card_order(world, "reports_basic")
    o = (await pay(world, order["id"])).json()
    assert o["state"] == "fulfilled"
    return dict(o)


def _refund(world: CardWorld, order_id: str, key: str | None, **body: Any) -> Any:
    headers = bearer(world.a.admin_token) | ({"Idempotency-Key": key} if key else {})
    return world.client.post(f"/v1/orders/{order_id}/refund", json=body, headers=headers)


async def test_a_retried_partial_refund_refunds_once(shop: CardWorld) -> None:
    o = await _paid(shop)
    first = await _refund(shop, o["id"], "refund-1", amount_minor=100)
    again = await _refund(shop, o["id"], "refund-1", amount_minor=100)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.headers.get("idempotent-replayed") == "true" and again.json() == first.json()
    assert again.json()["refunded_minor"] == 100
    assert len(shop.fake.of_kind("refund")) == 1 and shop.fake.of_kind("charge")[0]["amount_refunded"] == 100
    other = await _refund(shop, o["id"], "refund-1", amount_minor=50)  # same key, another body
    assert_problem(other, 422, "unprocessable")
    assert len(shop.fake.of_kind("refund")) == 1


async def test_a_replayed_full_refund_answers_the_first_result_not_a_conflict(shop: CardWorld) -> None:
    o = await _paid(shop)
    first = await _refund(shop, o["id"], "refund-all")
    again = await _refund(shop, o["id"], "refund-all")
    assert first.status_code == again.status_code == 200
    assert again.json()["state"] == "refunded" and again.json() == first.json()
    assert not await allowed(shop) and len(shop.fake.of_kind("refund")) == 1


async def test_a_refund_without_an_idempotency_key_is_refused_and_moves_nothing(shop: CardWorld) -> None:
    o = await _paid(shop)
    assert_problem(await _refund(shop, o["id"], None, amount_minor=100), 400)
    assert shop.fake.of_kind("refund") == [] and await allowed(shop)


async def test_trials_and_usage_replay_their_first_answer_for_the_same_key(
        client: AsyncTestClient[Any], sessionmaker: Any, clock: Any) -> None:
    key = await make_key(sessionmaker, clock)
    await seed_demo(client, key)
    headers = bearer(key) | {"Idempotency-Key": "trial-ana-1"}
    body = {"user": "acme-ana", "module": "nl_query"}
    first = await client.post("/v1/trials", json=body, headers=headers)
    again = await client.post("/v1/trials", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201) and again.json() == first.json()
    assert_problem(await client.post("/v1/trials", json=body, headers=bearer(key)), 409, "trial_already_used")
    batch = {"events": [{"event_id": "k-1", "user": "acme-ana", "feature": "reports", "quantity": 2}]}
    u1 = await client.post("/v1/usage", json=batch, headers=bearer(key) | {"Idempotency-Key": "usage-1"})
    u2 = await client.post("/v1/usage", json=batch, headers=bearer(key) | {"Idempotency-Key": "usage-1"})
    assert u1.status_code == u2.status_code == 200 and u2.json() == u1.json()
    assert u2.headers.get("idempotent-replayed") == "true"


async def test_a_retried_secret_rotation_returns_the_same_secret(
        client: AsyncTestClient[Any], sessionmaker: Any, clock: Any) -> None:
    key = await make_key(sessionmaker, clock)
    created = await client.post("/v1/webhook-endpoints", json={"url": "https://hooks.example.com/x"},
                                headers=bearer(key) | {"Idempotency-Key": "whe-1"})
    replay = await client.post("/v1/webhook-endpoints", json={"url": "https://hooks.example.com/x"},
                               headers=bearer(key) | {"Idempotency-Key": "whe-1"})
    assert created.status_code == replay.status_code == 201 and replay.json() == created.json()
    listed = (await client.get("/v1/webhook-endpoints", headers=bearer(key))).json()["data"]
    assert len(listed) == 1
    path = f"/v1/webhook-endpoints/{created.json()['id']}/rotate-secret"
    first = await client.post(path, json={}, headers=bearer(key) | {"Idempotency-Key": "rot-1"})
    again = await client.post(path, json={}, headers=bearer(key) | {"Idempotency-Key": "rot-1"})
    assert first.status_code == again.status_code == 200
    assert again.json()["secret"] == first.json()["secret"] != created.json()["secret"]
    fresh = await client.post(path, json={}, headers=bearer(key) | {"Idempotency-Key": "rot-2"})
    assert fresh.json()["secret"] != first.json()["secret"]


async def test_a_deleted_webhook_endpoint_is_gone_and_gets_nothing_more(
        client: AsyncTestClient[Any], sessionmaker: Any, clock: Any, settings: Any) -> None:
    from app.webhooks.queue import fan_out

    key = await make_key(sessionmaker, clock)
    created = (await client.post("/v1/webhook-endpoints", json={"url": "https://hooks.example.com/x"},
                                 headers=bearer(key))).json()
    kept = (await client.post("/v1/webhook-endpoints", json={"url": "https://hooks.example.com/y"},
                              headers=bearer(key))).json()
    path = f"/v1/webhook-endpoints/{created['id']}"
    assert (await client.delete(path, headers=bearer(key))).status_code == 204
    assert_problem(await client.get(path, headers=bearer(key)), 404)
    assert_problem(await client.delete(path, headers=bearer(key)), 404)
    listed = (await client.get("/v1/webhook-endpoints", headers=bearer(key))).json()["data"]
    assert [e["id"] for e in listed] == [kept["id"]]
    await emit_test_event(sessionmaker, clock)
    async with sessionmaker() as s, s.begin():
        await fan_out(s, clock=clock, settings=settings, limit=100)
    async with sessionmaker() as s:
        assert list(await s.scalars(select(WebhookDelivery.endpoint_id))) == [kept["id"]]


async def test_accounts_and_users_can_be_fetched_by_our_ids_as_events_carry_them(
        client: AsyncTestClient[Any], sessionmaker: Any, clock: Any) -> None:
    key = await make_key(sessionmaker, clock)
    await seed_demo(client, key)
    async with sessionmaker() as s:
        account_id, user_id = (await s.execute(select(User.account_id, User.user_id)
                                               .where(User.external_id == "acme-ana"))).one()
    got = await client.get(f"/v1/accounts/{account_id}", headers=bearer(key))
    assert got.status_code == 200 and got.json()["external_id"] == "acme"
    offers = await client.get("/v1/offers", params={"user": user_id}, headers=bearer(key))
    assert offers.status_code == 200 and offers.json()["user"] == "acme-ana"
    assert_problem(await client.get("/v1/accounts/acct_00000000000000000000000000", headers=bearer(key)), 404)
