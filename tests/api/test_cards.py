"""Saved cards over HTTP: lazy Stripe customer, SetupIntent, list, default, remove, tenancy."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.accounts.models import User
from tests.api.stripe_app import CardWorld
from tests.factories import bearer
from tests.stripe_server import widget_saves_card


async def cards(world: CardWorld, headers: dict[str, str], user: str) -> list[dict[str, Any]]:
    r = await world.client.get(f"/v1/payment-methods?user={user}", headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


async def test_setup_creates_one_customer_lazily_and_returns_a_client_secret(world: CardWorld,
                                                                            sessionmaker: Any) -> None:
    h = bearer(world.a.user_token)
    assert await cards(world, h, world.a.user) == [] and world.fake.of_kind("customer") == []
    first = (await world.client.post(f"/v1/payment-methods/setup?user={world.a.user}", headers=h)).json()
    second = (await world.client.post(f"/v1/payment-methods/setup?user={world.a.user}", headers=h)).json()
    assert first["client_secret"].startswith(first["setup_intent"] + "_secret_") and first["status"] == \
        "requires_payment_method"
    assert first["setup_intent"] != second["setup_intent"]
    customers = world.fake.of_kind("customer")
    assert len(customers) == 1
    async with sessionmaker() as session:
        stored = await session.scalar(select(User.stripe_customer_id).where(User.external_id == world.a.user))
    assert stored == customers[0]["id"]
    seti = world.fake.objects[first["setup_intent"]]
    assert seti["usage"] == "off_session" and seti["customer"] == stored


async def test_saved_cards_are_listed_and_the_first_becomes_default_by_webhook(world: CardWorld) -> None:
    h = bearer(world.a.user_token)
    visa = await widget_saves_card(world.client, h, world.a.user)
    master = await widget_saves_card(world.client, h, world.a.user, "pm_card_mastercard")
    assert all(r.status_code == 200 for r in await world.deliver())
    listed = {c["id"]: c for c in await cards(world, h, world.a.user)}
    assert listed[visa] == {"id": visa, "brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2034,
                            "is_default": True}
    assert listed[master]["is_default"] is False and listed[master]["last4"] == "4444"
    r = await world.client.post(f"/v1/payment-methods/{master}/default?user={world.a.user}", headers=h)
    assert r.status_code == 200 and r.json()["is_default"] is True
    assert {c["id"]: c["is_default"] for c in await cards(world, h, world.a.user)} == {visa: False, master: True}
    r = await world.client.delete(f"/v1/payment-methods/{master}?user={world.a.user}", headers=h)
    assert r.status_code == 204
    assert [c["id"] for c in await cards(world, h, world.a.user)] == [visa]
    audit = (await world.client.get("/v1/accounts/acme/audit-log", headers=bearer(world.key))).json()["data"]
    assert {"card.default_set", "card.removed"} <= {e["action"] for e in audit}


async def test_the_vendor_acts_for_a_user_by_external_id(world: CardWorld) -> None:
    card = await widget_saves_card(world.client, bearer(world.key), world.a.user)
    assert [c["id"] for c in await cards(world, bearer(world.key), world.a.user)] == [card]
    admin = bearer(world.a.admin_token)  # a customer admin, for a user of its account
    assert [c["id"] for c in await cards(world, admin, world.a.user)] == [card]


async def test_other_users_and_other_accounts_cards_are_not_found(world: CardWorld) -> None:
    mine = await widget_saves_card(world.client, bearer(world.a.user_token), world.a.user)
    theirs = await widget_saves_card(world.client, bearer(world.b.user_token), world.b.user)
    h = bearer(world.a.user_token)
    for method, url in (("DELETE", f"/v1/payment-methods/{theirs}?user={world.a.user}"),
                        ("POST", f"/v1/payment-methods/{theirs}/default?user={world.a.user}"),
                        ("DELETE", f"/v1/payment-methods/pm_doesnotexist?user={world.a.user}"),
                        ("GET", f"/v1/payment-methods?user={world.b.user}"),
                        ("POST", f"/v1/payment-methods/setup?user={world.b.user}"),
                        ("GET", f"/v1/payment-methods?user={world.a.admin}")):  # an end user sees only itself
        r = await world.client.request(method, url, headers=h)
        assert r.status_code == 404, (method, url, r.text)
        assert theirs not in r.json()["detail"]
    assert world.fake.objects[theirs]["customer"] is not None  # untouched
    r = await world.client.get(f"/v1/payment-methods?user={world.a.user}", headers=bearer(world.b.admin_token))
    assert r.status_code == 404
    assert [c["id"] for c in await cards(world, h, world.a.user)] == [mine]


async def test_a_user_without_a_customer_has_no_cards_to_remove(world: CardWorld) -> None:
    r = await world.client.delete(f"/v1/payment-methods/pm_abc?user={world.a.user}", headers=bearer(world.a.user_token))
    assert r.status_code == 404 and world.fake.requests == []


async def test_stripe_outage_is_a_503_problem(world: CardWorld) -> None:
    from tests.stripe_server import FaultKind

    world.fake.inject(FaultKind.CONNECTION_ERROR, times=3)
    r = await world.client.post(f"/v1/payment-methods/setup?user={world.a.user}", headers=bearer(world.a.user_token))
    assert r.status_code == 503 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "payment_provider_unavailable"
