"""Trials and purchases: buy during a trial (it converts once and ends), offered once, no notices for
trials that were revoked or converted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from app.clock import FrozenClock
from app.outbox import OutboxEvent
from entitlements.service import sweep
from tests.api.test_catalog import seed_demo
from tests.factories import bearer, make_key


@pytest.fixture
async def key(client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock) -> str:
    k = await make_key(sessionmaker, clock)
    await seed_demo(client, k)
    return k


async def _count(sessionmaker: Any, type_: str) -> int:
    async with sessionmaker() as s:
        return int(await s.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.type == type_)))


async def _grants(client: AsyncTestClient[Any], key: str) -> list[dict[str, Any]]:
    r = await client.get("/v1/accounts/acme/grants", params={"user": "acme-ana"}, headers=bearer(key))
    return [g for g in r.json()["data"] if g["module"] == "nl_query"]


async def _sweep(sessionmaker: Any, clock: FrozenClock) -> dict[str, int]:
    async with sessionmaker() as session, session.begin():
        return await sweep(session, clock=clock, trial_ending_days=3)


async def test_a_user_on_a_trial_can_buy_the_module_and_the_trial_converts_once(
        client: AsyncTestClient[Any], key: str, sessionmaker: Any, clock: FrozenClock) -> None:
    assert (await client.post("/v1/trials", json={"user": "acme-ana", "module": "nl_query"},
                              headers=bearer(key))).status_code == 201
    b = await client.post("/v1/accounts/acme/budgets", json={"name": "Main", "currency": "USD",
                                                             "amount_minor": 100_000}, headers=bearer(key))
    assert b.status_code == 201, b.text
    q = await client.post("/v1/quotes", json={"user": "acme-ana", "items": [{"module": "nl_query"}]},
                          headers=bearer(key))
    assert q.status_code == 201, q.text
    o = await client.post("/v1/orders", json={"quote_id": q.json()["id"]},
                          headers={**bearer(key), "Idempotency-Key": "buy-trial"})
    assert o.status_code == 201 and o.json()["state"] == "fulfilled", o.text
    grants = {g["source"]: g for g in await _grants(client, key)}
    assert grants["trial"]["status"] == "revoked" and grants["order"]["status"] == "active"
    assert await _count(sessionmaker, "trial.converted") == 1
    check = await client.get("/v1/entitlements/check", params={"user": "acme-ana", "feature": "nl_query"},
                             headers=bearer(key))
    assert check.json()["allowed"] is True
    clock.advance(timedelta(days=12))  # inside the trial's planned last days: no "trial ending" for a buyer
    assert (await _sweep(sessionmaker, clock))["trial.ending"] == 0
    assert await _count(sessionmaker, "trial.converted") == 1 and await _count(sessionmaker, "trial.ending") == 0


async def test_offers_and_checks_stop_offering_a_trial_once_it_was_used(
        client: AsyncTestClient[Any], key: str, clock: FrozenClock) -> None:
    async def offered() -> tuple[bool, bool]:
        offers = (await client.get("/v1/offers", params={"user": "acme-ana"}, headers=bearer(key))).json()["data"]
        check = (await client.get("/v1/entitlements/check", params={"user": "acme-ana", "feature": "nl_query"},
                                  headers=bearer(key))).json()
        hint = check["offer"]["trial_available"] if check.get("offer") else None
        return {o["module"]: o for o in offers}["nl_query"]["trial_available"], bool(hint)

    assert await offered() == (True, True)
    assert (await client.post("/v1/trials", json={"user": "acme-ana", "module": "nl_query"},
                              headers=bearer(key))).status_code == 201
    clock.advance(timedelta(days=30))  # the trial ended: the module is on offer again, its trial is not
    assert await offered() == (False, False)
    again = await client.post("/v1/trials", json={"user": "acme-ana", "module": "nl_query"}, headers=bearer(key))
    assert again.status_code == 409


async def test_no_trial_ending_notice_for_a_revoked_trial(client: AsyncTestClient[Any], key: str,
                                                          sessionmaker: Any, clock: FrozenClock) -> None:
    t = await client.post("/v1/trials", json={"user": "acme-ana", "module": "nl_query"}, headers=bearer(key))
    r = await client.post(f"/v1/accounts/acme/grants/{t.json()['grant_id']}/revoke", json={"reason": "abuse"},
                          headers=bearer(key))
    assert r.status_code == 200, r.text
    clock.advance(timedelta(days=12))
    assert (await _sweep(sessionmaker, clock))["trial.ending"] == 0
    clock.advance(timedelta(days=5))
    assert await _sweep(sessionmaker, clock) == {"entitlement.expired": 0, "trial.ending": 0, "trial.ended": 0}
    assert await _count(sessionmaker, "trial.ending") == 0
