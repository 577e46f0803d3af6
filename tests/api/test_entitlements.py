"""Entitlements over HTTP: grants, seats, checks with offers, snapshot + ETag, usage, trials, bad input."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from app.asgi import create_app
from app.clock import FrozenClock
from app.outbox import OutboxEvent
from app.settings import Settings
from entitlements.service import sweep
from tests.api.test_auth import assert_problem
from tests.api.test_catalog import seed_demo
from tests.factories import bearer, make_key, session_token
from tests.support.database import wait_for


@pytest.fixture
async def key(client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock) -> str:
    k = await make_key(sessionmaker, clock)
    await seed_demo(client, k)
    return k


async def grant(client: AsyncTestClient[Any], key: str, account: str, **body: Any) -> dict[str, Any]:
    r = await client.post(f"/v1/accounts/{account}/grants", json=body, headers=bearer(key))
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


async def check(client: AsyncTestClient[Any], token: str, user: str, feature: str, quantity: int = 1) -> dict[str, Any]:
    r = await client.get("/v1/entitlements/check", params={"user": user, "feature": feature, "quantity": quantity},
                         headers=bearer(token))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def events_of(sessionmaker: Any, type_: str) -> int:
    async with sessionmaker() as s:
        return int(await s.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.type == type_)))


async def test_grant_is_idempotent_and_check_sees_it(client: AsyncTestClient[Any], key: str, sessionmaker: Any) -> None:
    denied = await check(client, key, "acme-ana", "pdf_export")
    assert denied["allowed"] is False and denied["reason"] == "not_entitled"
    assert denied["offer"]["module"] == "reports_pro" and denied["offer"]["amount_minor"] == 2400
    assert denied["offer"]["effect"] == "purchasable" and denied["offer"]["currency"] == "USD"
    body = {"module": "reports_pro", "user": "acme-ana", "source_ref": "deal-1"}
    first = (await client.post("/v1/accounts/acme/grants", json=body, headers=bearer(key)))
    again = (await client.post("/v1/accounts/acme/grants", json=body, headers=bearer(key)))
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"] and first.json()["id"].startswith("grt_")
    assert first.json()["status"] == "active" and first.json()["user"] == "acme-ana"
    assert await events_of(sessionmaker, "entitlement.granted") == 1
    allowed = await check(client, key, "acme-ana", "pdf_export")
    assert allowed["allowed"] is True and allowed["modules"] == ["reports_pro"] and allowed["offer"] is None
    # another user of the account does not get a user grant
    assert (await check(client, key, "acme-alice", "pdf_export"))["allowed"] is False


async def test_expiry_is_by_the_clock_and_revocation_ends_at_once(
    client: AsyncTestClient[Any], key: str, clock: FrozenClock, sessionmaker: Any,
) -> None:
    ends = (clock.now() + timedelta(days=2)).isoformat()
    g = await grant(client, key, "acme", module="advanced_charts", user="acme-ana", source_ref="t1", ends_at=ends)
    assert (await check(client, key, "acme-ana", "advanced_charts"))["allowed"]
    clock.advance(timedelta(days=2))
    assert not (await check(client, key, "acme-ana", "advanced_charts"))["allowed"]  # no cron needed
    r = await client.get(f"/v1/accounts/acme/grants/{g['id']}", headers=bearer(key))
    assert r.json()["status"] == "ended"
    g2 = await grant(client, key, "acme", module="comments", source_ref="acct-wide")
    assert (await check(client, key, "acme-vic", "comments"))["allowed"]  # account-wide reaches everyone
    r = await client.post(f"/v1/accounts/acme/grants/{g2['id']}/revoke", json={"reason": "refund"},
                          headers=bearer(key))
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    assert not (await check(client, key, "acme-vic", "comments"))["allowed"]
    assert await events_of(sessionmaker, "entitlement.revoked") == 1


async def test_future_revocation_keeps_the_grant_until_then(client: AsyncTestClient[Any], key: str,
                                                           clock: FrozenClock) -> None:
    g = await grant(client, key, "acme", module="comments", user="acme-ana", source_ref="r1")
    at = (clock.now() + timedelta(days=5)).isoformat()
    r = await client.post(f"/v1/accounts/acme/grants/{g['id']}/revoke", json={"reason": "downgrade", "at": at},
                          headers=bearer(key))
    assert r.json()["status"] == "active"
    assert (await check(client, key, "acme-ana", "comments"))["allowed"]
    clock.advance(timedelta(days=5))
    assert not (await check(client, key, "acme-ana", "comments"))["allowed"]


async def test_seats_are_assigned_up_to_the_pool_and_freed_at_once(client: AsyncTestClient[Any], key: str) -> None:
    pool = await grant(client, key, "acme", module="nl_query", source_ref="seats-1", seats=2)
    assert pool["user"] is None and pool["seats"] == 2
    assert not (await check(client, key, "acme-ana", "nl_query"))["allowed"]  # a pool reaches only seat holders
    admin = await session_token(client, key, "acme", "acme-alice")
    for user in ("acme-ana", "acme-vic", "acme-ana"):  # the repeat is idempotent
        r = await client.post(f"/v1/accounts/acme/grants/{pool['id']}/seats", json={"user": user},
                              headers=bearer(admin))
        assert r.status_code == 200, r.text
    assert r.json()["seats_assigned"] == 2 and r.json()["assigned_users"] == ["acme-ana", "acme-vic"]
    full = await client.post(f"/v1/accounts/acme/grants/{pool['id']}/seats", json={"user": "acme-alice"},
                             headers=bearer(admin))
    assert_problem(full, 409, "seats_exhausted")
    assert (await check(client, key, "acme-ana", "nl_query"))["allowed"]
    r = await client.delete(f"/v1/accounts/acme/grants/{pool['id']}/seats/acme-ana", headers=bearer(admin))
    assert r.status_code == 200 and r.json()["seats_assigned"] == 1
    assert not (await check(client, key, "acme-ana", "nl_query"))["allowed"]
    r = await client.post(f"/v1/accounts/acme/grants/{pool['id']}/seats", json={"user": "acme-alice"},
                          headers=bearer(admin))
    assert r.status_code == 200 and r.json()["seats_assigned"] == 2
    user_token = await session_token(client, key, "acme", "acme-ana")
    r = await client.post(f"/v1/accounts/acme/grants/{pool['id']}/seats", json={"user": "acme-ana"},
                          headers=bearer(user_token))
    assert_problem(r, 403)  # end users do not hand out seats


async def test_batch_check_and_snapshot_with_etag(client: AsyncTestClient[Any], key: str) -> None:
    await grant(client, key, "acme", module="reports_basic", user="acme-ana", source_ref="b1")
    await grant(client, key, "acme", module="reports_pro", source_ref="b2")
    r = await client.post("/v1/entitlements/check", headers=bearer(key), json={
        "user": "acme-ana", "checks": [{"feature": "reports", "quantity": 550}, {"feature": "reports", "quantity": 551},
                                       {"feature": "geo_maps"}]})
    results = r.json()["results"]
    assert [x["allowed"] for x in results] == [True, False, False] and results[0]["limit"] == 550
    assert results[2]["offer"]["module"] == "geo_maps"
    snap = await client.get("/v1/entitlements/snapshot", params={"user": "acme-ana"}, headers=bearer(key))
    assert snap.status_code == 200 and snap.headers["etag"] == f'"{snap.json()["version"]}"'
    assert snap.json()["modules"] == ["reports_basic", "reports_pro"]
    assert snap.json()["features"]["reports"]["limit"] == 550
    again = await client.get("/v1/entitlements/snapshot", params={"user": "acme-ana"},
                             headers={**bearer(key), "If-None-Match": snap.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    await client.post("/v1/usage", headers=bearer(key), json={"events": [
        {"event_id": "e1", "user": "acme-ana", "feature": "reports", "quantity": 3}]})
    changed = await client.get("/v1/entitlements/snapshot", params={"user": "acme-ana"},
                               headers={**bearer(key), "If-None-Match": snap.headers["etag"]})
    assert changed.status_code == 200 and changed.json()["features"]["reports"]["used"] == 3


async def test_session_tokens_check_only_what_they_may_see(client: AsyncTestClient[Any], key: str) -> None:
    ana = await session_token(client, key, "acme", "acme-ana")
    assert (await check(client, ana, "acme-ana", "reports"))["allowed"] is False
    r = await client.get("/v1/entitlements/check", params={"user": "acme-vic", "feature": "reports"},
                         headers=bearer(ana))
    assert_problem(r, 404)
    gert = await session_token(client, key, "globex", "globex-gert")
    r = await client.get("/v1/entitlements/check", params={"user": "acme-ana", "feature": "reports"},
                         headers=bearer(gert))
    assert_problem(r, 404)  # cached snapshot or not, another account's user does not exist


async def test_usage_is_idempotent_and_enforced(client: AsyncTestClient[Any], key: str) -> None:
    await grant(client, key, "acme", module="reports_basic", user="acme-ana", source_ref="u1")
    batch = {"events": [{"event_id": f"ev-{i}", "user": "acme-ana", "feature": "reports", "quantity": 10}
                        for i in range(4)]}
    first = (await client.post("/v1/usage", json=batch, headers=bearer(key))).json()
    replay = (await client.post("/v1/usage", json=batch, headers=bearer(key))).json()
    assert (first["accepted"], first["duplicates"]) == (4, 0)
    assert (replay["accepted"], replay["duplicates"]) == (0, 4)
    c = await check(client, key, "acme-ana", "reports", 10)
    assert (c["used"], c["remaining"], c["allowed"]) == (40, 10, True)
    over = {"enforce": True, "events": [{"event_id": "ev-a", "user": "acme-ana", "feature": "reports", "quantity": 5},
                                        {"event_id": "ev-b", "user": "acme-ana", "feature": "reports", "quantity": 6}]}
    assert_problem(await client.post("/v1/usage", json=over, headers=bearer(key)), 409, "limit_exceeded")
    assert (await check(client, key, "acme-ana", "reports"))["used"] == 40  # nothing half-written
    fits = {**over, "events": over["events"][:1]}
    assert (await client.post("/v1/usage", json=fits, headers=bearer(key))).json()["accepted"] == 1
    hist = (await client.get("/v1/usage/history", params={"user": "acme-ana", "feature": "reports"},
                             headers=bearer(key))).json()
    assert hist["limit"] == 50 and hist["period"] == "month" and hist["data"][0]["used"] == 45


async def test_backfilled_usage_counts_in_its_own_period(client: AsyncTestClient[Any], key: str,
                                                         clock: FrozenClock) -> None:
    past = (clock.now() - timedelta(days=30)).isoformat()
    r = await client.post("/v1/usage", headers=bearer(key), json={"events": [
        {"event_id": "old", "user": "acme-ana", "feature": "reports", "quantity": 7, "occurred_at": past},
        {"event_id": "try", "user": "acme-ana", "feature": "forecasting", "kind": "attempt"}]})
    assert r.status_code == 200 and r.json()["accepted"] == 2
    assert (await check(client, key, "acme-ana", "reports"))["used"] == 0
    hist = (await client.get("/v1/usage/history", params={"user": "acme-ana", "feature": "reports"},
                             headers=bearer(key))).json()
    assert [p["used"] for p in hist["data"]] == [7]
    too_old = (clock.now() - timedelta(days=400)).isoformat()
    r = await client.post("/v1/usage", headers=bearer(key), json={"events": [
        {"event_id": "x", "user": "acme-ana", "feature": "reports", "occurred_at": too_old}]})
    assert_problem(r, 422, "occurred_at_out_of_range")


@pytest.mark.parametrize(("body", "status"), [
    ({"events": []}, 400),
    ({"events": [{"event_id": "a", "user": "acme-ana", "feature": "reports", "quantity": 0}]}, 400),
    ({"events": [{"event_id": "a", "user": "acme-ana", "feature": "reports", "quantity": -1}]}, 400),
    ({"events": [{"event_id": "a", "user": "acme-ana", "feature": "reports", "occurred_at": "yesterday"}]}, 400),
    ({"events": [{"event_id": "a", "user": "acme-ana", "feature": "nope"}]}, 404),
    ({"events": [{"event_id": "a", "user": "nobody", "feature": "reports"}]}, 404),
    ({"events": [{"event_id": f"e{i}", "user": "acme-ana", "feature": "reports"} for i in range(1001)]}, 400),
])
async def test_bad_usage_is_a_problem_and_writes_nothing(client: AsyncTestClient[Any], key: str,
                                                         body: dict[str, Any], status: int) -> None:
    assert_problem(await client.post("/v1/usage", json=body, headers=bearer(key)), status)
    assert (await check(client, key, "acme-ana", "reports"))["used"] == 0


async def test_bad_checks_are_problems(client: AsyncTestClient[Any], key: str) -> None:
    for params, status in (({"user": "nobody", "feature": "reports"}, 404),
                           ({"user": "acme-ana", "feature": "nope"}, 404),
                           ({"user": "acme-ana", "feature": "reports", "quantity": 0}, 400),
                           ({"user": "acme-ana", "feature": "reports", "quantity": -3}, 400)):
        assert_problem(await client.get("/v1/entitlements/check", params=params, headers=bearer(key)), status)
    r = await client.post("/v1/accounts/acme/grants", headers=bearer(key), json={
        "module": "nope", "source_ref": "x"})
    assert_problem(r, 404)


async def test_trial_lifecycle_with_the_clock(client: AsyncTestClient[Any], key: str, clock: FrozenClock,
                                             sessionmaker: Any) -> None:
    ana = await session_token(client, key, "acme", "acme-ana")
    r = await client.post("/v1/trials", json={"user": "acme-ana", "module": "nl_query"}, headers=bearer(ana))
    assert r.status_code == 201, r.text
    assert (await check(client, key, "acme-ana", "nl_query"))["allowed"]
    again = await client.post("/v1/trials", json={"user": "acme-ana", "module": "nl_query"}, headers=bearer(ana))
    assert_problem(again, 409, "trial_already_used")
    no_trial = await client.post("/v1/trials", json={"user": "acme-ana", "module": "sso_saml"}, headers=bearer(ana))
    assert_problem(no_trial, 422, "trial_not_available")
    async def sweep_once() -> dict[str, int]:
        async with sessionmaker() as session, session.begin():
            return await sweep(session, clock=clock, trial_ending_days=3)

    assert await sweep_once() == {"entitlement.expired": 0, "trial.ending": 0, "trial.ended": 0}
    clock.advance(timedelta(days=12))
    assert (await sweep_once())["trial.ending"] == 1
    assert (await sweep_once())["trial.ending"] == 0  # once
    clock.advance(timedelta(days=2))
    assert not (await check(client, key, "acme-ana", "nl_query"))["allowed"]
    assert await sweep_once() == {"entitlement.expired": 1, "trial.ending": 0, "trial.ended": 1}
    assert await sweep_once() == {"entitlement.expired": 0, "trial.ending": 0, "trial.ended": 0}
    for t in ("trial.started", "trial.ending", "trial.ended", "entitlement.expired"):
        assert await events_of(sessionmaker, t) == 1, t


async def test_offers_know_what_the_user_owns(client: AsyncTestClient[Any], key: str) -> None:
    await grant(client, key, "acme", module="forecasting", user="acme-ana", source_ref="o1")
    offers = (await client.get("/v1/offers", params={"user": "acme-ana"}, headers=bearer(key))).json()["data"]
    by_key = {o["module"]: o for o in offers}
    assert by_key["forecasting"]["owned"] is True and by_key["forecasting"]["trial_available"] is False
    assert "not_owns" not in by_key["anomaly_detection"]["reason"]  # owning forecasting unlocks the purchase
    assert by_key["anomaly_detection"]["effect"] == "purchasable"


async def test_denied_checks_become_demand_signals_off_the_hot_path(
    settings: Settings, clock: FrozenClock, sessionmaker: Any,
) -> None:
    from entitlements.models import DemandSignal

    app = create_app(msgspec.structs.replace(settings, demand_flush_seconds=0.05), clock=clock)
    async with AsyncTestClient(app=app) as client:
        k = await make_key(sessionmaker, clock)
        await seed_demo(client, k)
        for _ in range(3):
            await check(client, k, "acme-ana", "forecasting")

        async def flushed() -> bool:
            async with sessionmaker() as s:
                return (await s.scalar(select(func.sum(DemandSignal.denied_checks)))) == 3

        assert await wait_for(flushed, timeout=5)
        await client.post("/v1/usage", headers=bearer(k), json={"events": [
            {"event_id": "a1", "user": "acme-ana", "feature": "forecasting", "kind": "attempt", "quantity": 2}]})
    async with sessionmaker() as s:
        row = (await s.scalars(select(DemandSignal))).one()
    assert (row.feature, row.denied_checks, row.attempts, row.day) == ("forecasting", 3, 2, clock.now().date())


async def payloads(sessionmaker: Any, *types: str) -> list[tuple[str, dict[str, Any]]]:
    async with sessionmaker() as s:
        rows = await s.execute(select(OutboxEvent.type, OutboxEvent.payload).where(OutboxEvent.type.in_(types))
                               .order_by(OutboxEvent.seq))
        return [(t, dict(p)) for t, p in rows]


async def test_entitlement_seat_and_trial_events_name_the_account_and_user_by_the_vendors_ids(
        client: AsyncTestClient[Any], key: str, clock: FrozenClock, sessionmaker: Any) -> None:
    await grant(client, key, "acme", module="reports_pro", user="acme-ana", source_ref="deal-9")
    pool = await grant(client, key, "acme", module="shared_workspaces", source_ref="seats-9", seats=2)
    admin = await session_token(client, key, "acme", "acme-alice")
    assert (await client.post(f"/v1/accounts/acme/grants/{pool['id']}/seats", json={"user": "acme-vic"},
                              headers=bearer(admin))).status_code == 200
    ana = await session_token(client, key, "acme", "acme-ana")
    assert (await client.post("/v1/trials", json={"user": "acme-ana", "module": "nl_query"},
                              headers=bearer(ana))).status_code == 201
    clock.advance(timedelta(days=40))
    async with sessionmaker() as session, session.begin():
        await sweep(session, clock=clock, trial_ending_days=3)
    types = ("entitlement.granted", "entitlement.seat_assigned", "trial.started", "trial.ended", "entitlement.expired")
    seen = await payloads(sessionmaker, *types)
    assert {t for t, _ in seen} == set(types)
    for type_, body in seen:
        assert body["account"] == "acme", (type_, body)
        expected_user = None if body.get("user_id") is None else (
            "acme-vic" if type_ == "entitlement.seat_assigned" else "acme-ana")
        assert body.get("user") == expected_user, (type_, body)
        assert body.get("user_id") is None or body["user_id"].startswith("usr_")  # ours stays beside theirs
    # and either id fetches the object
    account_id = next(b["account_id"] for t, b in seen if t == "entitlement.granted")
    for ref in ("acme", account_id):
        r = await client.get(f"/v1/accounts/{ref}", headers=bearer(key))
        assert r.status_code == 200 and r.json()["external_id"] == "acme", (ref, r.text)
