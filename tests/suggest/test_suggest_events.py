"""The engine learns about purchases and denials from billing's events (order.fulfilled, approval.decided),
through the API on both routes: budget orders, approvals, and card payments completed by Stripe's webhook."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from app.clock import FrozenClock
from app.settings import Settings
from tests.api.stripe_app import CardWorld, card_order, pay, save_card
from tests.api.test_catalog import seed_demo
from tests.api.test_purchase import budget, order, quote
from tests.factories import bearer, make_key, session_token
from tests.suggest.test_suggestions import grant, suggest

PDF = {"kind": "feature_denied", "feature": "pdf_export"}  # Ana lacks PDF export: two modules would grant it


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No holdout: user ids are random, so a share would move purchases out of the counted group at random."""
    return msgspec.structs.replace(settings, suggest_holdout_pct=0)


async def open_shop(client: AsyncTestClient[Any], key: str) -> None:
    """The demo accounts and catalog, Ana with Reports Basic, a budget for Acme that pays without approval."""
    await seed_demo(client, key)
    await grant(client, key, "acme", module="reports_basic", user="acme-ana", source_ref="rb")
    await budget(client, key, 500_000)
    r = await client.put("/v1/accounts/acme/guardrails", json={"auto_approve_limit_minor": 500_000},
                         headers=bearer(key))
    assert r.status_code == 200, r.text


@pytest.fixture
async def key(client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock) -> str:
    k = await make_key(sessionmaker, clock)
    await open_shop(client, k)
    return k


async def stats(client: AsyncTestClient[Any], key: str) -> dict[str, Any]:
    r = await client.get("/v1/suggestions/stats", params={"days": 7}, headers=bearer(key))
    assert r.status_code == 200, r.text
    return dict(r.json()["overall"])


def first_purchase(body: dict[str, Any]) -> str:
    """The module of the first suggested purchase that needs nothing else bought first."""
    return next(d["module"] for d in body["data"] if d["kind"] == "purchase" and not d["bundle"] and d["quote"])


async def buy(client: AsyncTestClient[Any], token: str, user: str, module: str) -> dict[str, Any]:
    r = await order(client, token, (await quote(client, token, user, module))["id"])
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_a_budget_purchase_is_attributed_to_the_suggestion_shown_before_it(
        client: AsyncTestClient[Any], key: str) -> None:
    ana = await session_token(client, key, "acme", "acme-ana")
    module = first_purchase(await suggest(client, ana, "acme-ana", surface="editor", trigger=PDF))
    assert (await stats(client, key))["purchases"] == 0
    bought = await buy(client, ana, "acme-ana", module)
    assert bought["state"] == "fulfilled"
    overall = await stats(client, key)
    assert overall["purchases"] == 1 and overall["revenue_minor"] == {"USD": bought["total_minor"]}
    later = await suggest(client, ana, "acme-ana", surface="editor", trigger=PDF)
    assert (module, "purchase") not in [(d["module"], d["kind"]) for d in later["data"]]  # owned: never sold again


async def test_an_admins_denial_keeps_the_module_out_of_the_requesters_suggestions(
        client: AsyncTestClient[Any], key: str) -> None:
    admin = await session_token(client, key, "acme", "acme-alice")
    r = await client.put("/v1/accounts/acme/guardrails", json={"auto_approve_limit_minor": 0}, headers=bearer(admin))
    assert r.status_code == 200, r.text
    ana = await session_token(client, key, "acme", "acme-ana")
    module = first_purchase(await suggest(client, ana, "acme-ana", surface="a", trigger=PDF))
    pending = await buy(client, ana, "acme-ana", module)
    assert pending["state"] == "pending_approval"
    denied = await client.post(f"/v1/approvals/{pending['approval_id']}/deny", json={"note": "not this quarter"},
                               headers=bearer(admin))
    assert denied.status_code == 200, denied.text
    after = await suggest(client, ana, "acme-ana", surface="b", trigger=PDF)
    assert module not in [d["module"] for d in after["data"]]
    assert (await stats(client, key))["purchases"] == 0  # a denial is no purchase


async def test_attribution_follows_the_configured_window(
        settings: Settings, sessionmaker: Any, clock: FrozenClock) -> None:
    from app.asgi import create_app

    one_day = msgspec.structs.replace(settings, suggest_attribution_days=1)
    async with AsyncTestClient(app=create_app(one_day, clock=clock)) as client:
        k = await make_key(sessionmaker, clock)
        await open_shop(client, k)
        ana = await session_token(client, k, "acme", "acme-ana", ttl_seconds=3600)
        module = first_purchase(await suggest(client, ana, "acme-ana", surface="editor", trigger=PDF))
        clock.advance(timedelta(days=2))
        ana = await session_token(client, k, "acme", "acme-ana", ttl_seconds=3600)
        assert (await buy(client, ana, "acme-ana", module))["state"] == "fulfilled"
        assert (await stats(client, k))["purchases"] == 0  # shown two days before: outside a one-day window


async def test_a_card_payment_completed_by_stripes_webhook_is_attributed(shop: CardWorld) -> None:
    c, who = shop.client, shop.a
    shown = await suggest(c, who.user_token, who.user, surface="reports", trigger={
        "kind": "feature_denied", "feature": "reports"})
    assert "reports_basic" in [d["module"] for d in shown["data"]]
    card = await save_card(shop, "pm_card_authenticationRequired")
    placed = await card_order(shop, "reports_basic")
    paying = (await pay(shop, placed["id"])).json()
    assert paying["state"] == "requires_action" and (await stats(c, shop.key))["purchases"] == 0
    gateway = c.app.state.stripe
    await gateway.client.v1.payment_intents.confirm_async(paying["payment"]["payment_intent"],
                                                          {"payment_method": card})
    await gateway.client.raw_request_async("post", f"/v1/_fake/authenticate/{paying['payment']['payment_intent']}",
                                           success="true")
    await shop.deliver()  # the webhook's transaction fulfils the order: the engine hears it there
    got = (await c.get(f"/v1/orders/{placed['id']}", headers=bearer(who.user_token))).json()
    assert got["state"] == "fulfilled"
    overall = await stats(c, shop.key)
    assert overall["purchases"] == 1 and overall["revenue_minor"] == {"USD": placed["total_minor"]}
