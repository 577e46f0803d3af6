"""Suggestions over HTTP: two users of different roles, feedback, respect rules, holdout, advisor, stats."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.clock import FrozenClock
from app.demo import DEMO_USERS
from app.settings import Settings
from suggest import record_purchase
from suggest.service import in_holdout
from tests.api.test_auth import assert_problem
from tests.api.test_catalog import seed_demo
from tests.factories import bearer, make_key, make_user, session_token


async def grant(client: AsyncTestClient[Any], key: str, account: str, **body: Any) -> None:
    r = await client.post(f"/v1/accounts/{account}/grants", json=body, headers=bearer(key))
    assert r.status_code in (200, 201), r.text


async def usage(client: AsyncTestClient[Any], key: str, user: str, feature: str, quantity: int, tag: str) -> None:
    body = {"events": [{"event_id": f"{tag}-{user}-{feature}", "user": user, "feature": feature,
                        "quantity": quantity}]}
    assert (await client.post("/v1/usage", json=body, headers=bearer(key))).status_code in (200, 201, 202)


async def suggest(client: AsyncTestClient[Any], token: str, user: str, **body: Any) -> dict[str, Any]:
    r = await client.post("/v1/suggestions", json={"user": user, **body}, headers=bearer(token))
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No holdout here (user ids are random, so a share would skip tests at random); holdout has its own test."""
    import msgspec

    return msgspec.structs.replace(settings, suggest_holdout_pct=0)


@pytest.fixture
async def key(client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock) -> str:
    """Acme with six more analysts, most of whom use Advanced Charts; Ana has Reports Basic, nearly used up."""
    k = await make_key(sessionmaker, clock)
    await seed_demo(client, k)
    for i in range(6):
        await make_user(client, k, "acme", f"acme-an{i}", roles=["analyst"])
        if i < 5:
            await grant(client, k, "acme", module="advanced_charts", user=f"acme-an{i}", source_ref=f"ac{i}")
            await usage(client, k, f"acme-an{i}", "advanced_charts", 3, "seed")
    await grant(client, k, "acme", module="reports_basic", user="acme-ana", source_ref="rb")
    await usage(client, k, "acme-ana", "reports", 46, "seed")
    return k


async def test_a_denied_feature_puts_the_module_that_grants_it_first(client: AsyncTestClient[Any], key: str,
                                                                     settings: Settings) -> None:
    ana = await session_token(client, key, "acme", "acme-ana")
    body = await suggest(client, ana, "acme-ana", surface="report-editor",
                         trigger={"kind": "feature_denied", "feature": "pdf_export"})
    assert body["holdout"] is False
    first = body["data"][0]
    assert first["module"] == "reports_pro" and first["kind"] == "purchase"
    assert "PDF export" in first["reason"] and first["score_breakdown"]["trigger"] > 0
    assert first["quote"]["currency"] == "USD" and first["quote"]["total_minor"] > 0
    assert first["payment_route"] in ("budget_auto_approved", "needs_approval", "card")
    modules = [d["module"] for d in body["data"]]
    assert "reports_basic" not in modules  # owned: never offered for purchase
    assert len(body["data"]) <= 3
    charts = next((d for d in body["data"] if d["module"] == "advanced_charts"), None)
    if charts is not None:
        assert any("of the 5 other analysts" in r or "other analysts in your team" in r for r in charts["reasons"])


async def test_a_viewer_and_an_analyst_get_different_answers(client: AsyncTestClient[Any], key: str) -> None:
    ana = await suggest(client, key, "acme-ana", surface="home")
    vic = await suggest(client, key, "acme-vic", surface="home")
    assert ana["user"] == "acme-ana" and vic["user"] == "acme-vic"
    for body in (ana, vic):
        for item in body["data"]:
            assert item["reasons"] and item["payment_route"] in (
                "budget_auto_approved", "needs_approval", "card", "not_buyable")
            assert "limited time" not in item["reason"].lower()


async def test_dismissed_module_is_not_suggested_again_during_the_cooldown(
        client: AsyncTestClient[Any], key: str, clock: FrozenClock) -> None:
    trigger = {"kind": "feature_denied", "feature": "pdf_export"}
    first = await suggest(client, key, "acme-ana", surface="s1", trigger=trigger)
    sid = first["data"][0]["id"]
    r = await client.post(f"/v1/suggestions/{sid}/feedback", json={"user": "acme-ana", "action": "dismiss"},
                          headers=bearer(key))
    assert r.status_code == 200 and r.json()["recorded"] is True
    again = await client.post(f"/v1/suggestions/{sid}/feedback", json={"user": "acme-ana", "action": "dismiss"},
                              headers=bearer(key))
    assert again.json()["recorded"] is False
    later = await suggest(client, key, "acme-ana", surface="s2", trigger=trigger)
    assert "reports_pro" not in [d["module"] for d in later["data"]]
    clock.advance(timedelta(days=31))
    back = await suggest(client, key, "acme-ana", surface="s3", trigger=trigger)
    assert "reports_pro" in [d["module"] for d in back["data"]]


async def test_feedback_on_someone_elses_suggestion_is_not_found(client: AsyncTestClient[Any], key: str) -> None:
    body = await suggest(client, key, "acme-ana", surface="x", trigger={"kind": "feature_denied",
                                                                        "feature": "pdf_export"})
    vic = await session_token(client, key, "acme", "acme-vic")
    r = await client.post(f"/v1/suggestions/{body['data'][0]['id']}/feedback",
                          json={"user": "acme-vic", "action": "click"}, headers=bearer(vic))
    assert_problem(r, 404)


async def test_the_frequency_cap_pauses_a_surface(client: AsyncTestClient[Any], key: str) -> None:
    shown = [await suggest(client, key, "acme-an5", surface="dash") for _ in range(4)]
    assert shown[0]["data"], "an analyst among analysts who use Advanced Charts gets a suggestion"
    assert [b["capped"] for b in shown] == [False, False, False, True]
    assert shown[3]["data"] == [] and "paused" in shown[3]["note"]
    other = await suggest(client, key, "acme-an5", surface="elsewhere")
    assert other["capped"] is False


async def test_holdout_users_get_nothing_and_are_told(client: AsyncTestClient[Any], sessionmaker: Any,
                                                      settings: Settings, clock: FrozenClock) -> None:
    import msgspec

    everyone = msgspec.structs.replace(settings, suggest_holdout_pct=50)
    app = create_app(everyone, clock=clock)
    async with AsyncTestClient(app=app) as c:
        k = await make_key(sessionmaker, clock)
        await seed_demo(c, k)
        users = [u.external_id for us in DEMO_USERS.values() for u in us]
        answers = {u: await suggest(c, k, u) for u in users}
        held = [u for u, a in answers.items() if a["holdout"]]
        for u in held:
            again = await suggest(c, k, u)
            assert again["holdout"] is True and again["data"] == [] and "holdout" in again["note"]
        for u in set(users) - set(held):
            assert (await suggest(c, k, u))["holdout"] is False  # stable both ways


async def test_purchase_is_attributed_and_counted_in_stats(client: AsyncTestClient[Any], key: str,
                                                           sessionmaker: Any, clock: FrozenClock) -> None:
    body = await suggest(client, key, "acme-ana", surface="editor", trigger={"kind": "feature_denied",
                                                                             "feature": "pdf_export"})
    sid = body["data"][0]["id"]
    await client.post(f"/v1/suggestions/{sid}/feedback", json={"user": "acme-ana", "action": "click"},
                      headers=bearer(key))
    async with sessionmaker() as s, s.begin():
        from sqlalchemy import select

        from app.accounts.models import User
        user = await s.scalar(select(User).where(User.external_id == "acme-ana"))
        assert user is not None
        got = await record_purchase(s, account_id=user.account_id, user_id=user.user_id, module="reports_pro",
                                    order_id="ord_1", amount_minor=1800, currency="USD",
                                    at=clock.now() + timedelta(hours=1))
    assert got == sid
    stats = (await client.get("/v1/suggestions/stats", params={"days": 7}, headers=bearer(key))).json()
    assert stats["overall"]["clicks"] == 1 and stats["overall"]["purchases"] == 1
    assert stats["overall"]["revenue_minor"] == {"USD": 1800}
    row = next(m for m in stats["modules"] if m["module"] == "reports_pro")
    assert row["funnel"]["ctr"] == 1.0 and row["lift"]["treatment_converted"] == 1


async def test_advisor_for_a_user_and_for_the_account(client: AsyncTestClient[Any], key: str) -> None:
    await grant(client, key, "acme", module="dashboards_plus", user="acme-an0", source_ref="dp")
    free = (await client.get("/v1/advisor", params={"user": "acme-an0"}, headers=bearer(key))).json()
    assert free["saving_monthly_minor"] == 0 and free["remove"] == []  # an admin grant costs the user nothing
    listed = (await client.get("/v1/accounts/acme/grants", params={"user": "acme-an0"}, headers=bearer(key))).json()
    [dp] = [g for g in listed["data"] if g["module"] == "dashboards_plus" and g["source"] == "admin"]
    revoked = await client.post(f"/v1/accounts/acme/grants/{dp['id']}/revoke", json={"reason": "bought instead"},
                                headers=bearer(key))
    assert revoked.status_code == 200, revoked.text
    assert (await client.post("/v1/accounts/acme/budgets", json={"name": "Main", "currency": "USD",
                                                                 "amount_minor": 100_000},
                              headers=bearer(key))).status_code == 201
    q = await client.post("/v1/quotes", json={"user": "acme-an0", "items": [{"module": "dashboards_plus"}]},
                          headers=bearer(key))
    assert q.status_code == 201, q.text
    o = await client.post("/v1/orders", json={"quote_id": q.json()["id"]},
                          headers={**bearer(key), "Idempotency-Key": "advisor-dp"})
    assert o.json()["state"] == "fulfilled", o.text
    r = await client.get("/v1/advisor", params={"user": "acme-an0"}, headers=bearer(key))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["remove"] == ["dashboards_plus"] and body["saving_monthly_minor"] == 2900
    assert "save" in body["message"]
    admin = await session_token(client, key, "acme", "acme-alice")
    acct = await client.get("/v1/accounts/acme/advisor", headers=bearer(admin))
    assert acct.status_code == 200 and acct.json()["users_with_saving"] >= 1
    ana = await session_token(client, key, "acme", "acme-ana")
    assert_problem(await client.get("/v1/accounts/acme/advisor", headers=bearer(ana)), 403)


def test_holdout_assignment_is_stable_and_near_the_share() -> None:
    ids = [f"usr_{i:026d}" for i in range(4000)]
    first = [in_holdout(u, salt="s", pct=10) for u in ids]
    assert first == [in_holdout(u, salt="s", pct=10) for u in ids]
    assert 0.08 < sum(first) / len(first) < 0.12
    assert not any(in_holdout(u, salt="s", pct=0) for u in ids[:100])


async def test_advisor_counts_access_from_every_source_and_only_recurring_purchases_as_costs(
        client: AsyncTestClient[Any], key: str) -> None:
    assert (await client.post("/v1/accounts/acme/budgets", json={"name": "Main", "currency": "USD",
                                                                 "amount_minor": 100_000},
                              headers=bearer(key))).status_code == 201
    q = await client.post("/v1/quotes", json={"user": "acme-an0", "items": [{"module": "reports_basic"}]},
                          headers=bearer(key))
    o = await client.post("/v1/orders", json={"quote_id": q.json()["id"]},
                          headers={**bearer(key), "Idempotency-Key": "advisor-rb"})
    assert o.json()["state"] == "fulfilled", o.text
    await usage(client, key, "acme-an0", "reports", 10, "adv")
    paid = (await client.get("/v1/advisor", params={"user": "acme-an0"}, headers=bearer(key))).json()
    assert paid["current"] == ["reports_basic"] and paid["saving_monthly_minor"] == 0
    await grant(client, key, "acme", module="reports_pro", source_ref="account-wide")  # the whole account has it
    covered = (await client.get("/v1/advisor", params={"user": "acme-an0"}, headers=bearer(key))).json()
    assert covered["remove"] == ["reports_basic"] and covered["saving_monthly_minor"] == 900
    assert covered["add"] == [] and "a month" in covered["message"]
