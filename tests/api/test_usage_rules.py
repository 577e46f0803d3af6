"""Usage ids and who may report usage: every event sent is accepted, a duplicate or a conflict."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.clock import FrozenClock
from tests.api.test_auth import assert_problem
from tests.api.test_catalog import seed_demo
from tests.factories import bearer, make_key, session_token


@pytest.fixture
async def key(client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock) -> str:
    k = await make_key(sessionmaker, clock)
    await seed_demo(client, k)
    return k


def _ev(event_id: str, quantity: int = 1, **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "user": "acme-ana", "feature": "reports", "quantity": quantity, **extra}


async def _used(client: AsyncTestClient[Any], key: str) -> int:
    r = await client.get("/v1/usage/history", params={"user": "acme-ana", "feature": "reports"}, headers=bearer(key))
    return int(r.json()["data"][0]["used"]) if r.json()["data"] else 0


async def test_an_event_id_reused_for_another_event_is_a_conflict_and_not_counted(
        client: AsyncTestClient[Any], key: str) -> None:
    first = (await client.post("/v1/usage", json={"events": [_ev("e-1", 3)]}, headers=bearer(key))).json()
    assert (first["accepted"], first["duplicates"], first["conflicts"]) == (1, 0, 0)
    r = (await client.post("/v1/usage", json={"events": [_ev("e-1", 3), _ev("e-1", 5), _ev("e-2")]},
                           headers=bearer(key))).json()
    assert (r["accepted"], r["duplicates"], r["conflicts"]) == (1, 1, 1)
    assert r["duplicate_event_ids"] == ["e-1"] and r["conflict_event_ids"] == ["e-1"]
    assert await _used(client, key) == 4


async def test_the_same_id_twice_in_one_batch_adds_up_to_the_events_sent(client: AsyncTestClient[Any],
                                                                         key: str) -> None:
    r = (await client.post("/v1/usage", json={"events": [_ev("b-1", 2), _ev("b-1", 2), _ev("b-1", 7)]},
                           headers=bearer(key))).json()
    assert (r["accepted"], r["duplicates"], r["conflicts"]) == (1, 1, 1)
    assert r["accepted"] + r["duplicates"] + r["conflicts"] == 3 and await _used(client, key) == 2


async def test_a_session_token_reports_only_bounded_attempts(client: AsyncTestClient[Any], key: str) -> None:
    ana = await session_token(client, key, "acme", "acme-ana")
    usage = await client.post("/v1/usage", json={"events": [_ev("s-1", 1_000_000_000)]}, headers=bearer(ana))
    assert_problem(usage, 403)
    big = await client.post("/v1/usage", json={"events": [_ev("s-2", 11, kind="attempt")]}, headers=bearer(ana))
    assert_problem(big, 422)
    ok = await client.post("/v1/usage", json={"events": [_ev("s-3", 1, kind="attempt")]}, headers=bearer(ana))
    assert ok.status_code == 200 and ok.json()["accepted"] == 1
    assert await _used(client, key) == 0  # attempts are demand signals, never counted usage


async def test_a_grant_reusing_another_users_source_ref_is_a_conflict_not_a_silent_success(
        client: AsyncTestClient[Any], key: str) -> None:
    ana = await client.post("/v1/accounts/acme/grants", json={"module": "reports_pro", "user": "acme-ana",
                                                              "source_ref": "deal-7"}, headers=bearer(key))
    assert ana.status_code == 201
    again = await client.post("/v1/accounts/acme/grants", json={"module": "reports_pro", "user": "acme-ana",
                                                                "source_ref": "deal-7"}, headers=bearer(key))
    assert again.status_code == 200 and again.json()["id"] == ana.json()["id"]
    bob = await client.post("/v1/accounts/acme/grants", json={"module": "reports_pro", "user": "acme-vic",
                                                              "source_ref": "deal-7"}, headers=bearer(key))
    assert assert_problem(bob, 409, "grant_source_conflict")["grant"] == ana.json()["id"]
    check = await client.get("/v1/entitlements/check", params={"user": "acme-vic", "feature": "pdf_export"},
                             headers=bearer(key))
    assert check.json()["allowed"] is False


async def test_one_batch_counts_usage_per_period_and_attempts_per_day_once(
        client: AsyncTestClient[Any], key: str, sessionmaker: Any, clock: FrozenClock) -> None:
    """The batch is one statement: usage of two periods, attempts of two days, and a replay inside it."""
    from datetime import timedelta

    from sqlalchemy import select

    from entitlements.models import DemandSignal

    last_month = (clock.now() - timedelta(days=31)).isoformat()
    yesterday = (clock.now() - timedelta(days=1)).isoformat()
    batch = [_ev("m-1", 2), _ev("m-2", 3), _ev("m-old", 4, occurred_at=last_month), _ev("m-1", 2),
             _ev("t-1", 2, kind="attempt", feature="pdf_export"),
             _ev("t-2", 1, kind="attempt", feature="pdf_export", occurred_at=yesterday)]
    r = (await client.post("/v1/usage", json={"events": batch}, headers=bearer(key))).json()
    assert (r["accepted"], r["duplicates"], r["conflicts"]) == (5, 1, 0)
    history = (await client.get("/v1/usage/history", params={"user": "acme-ana", "feature": "reports"},
                                headers=bearer(key))).json()["data"]
    assert [p["used"] for p in history] == [5, 4]  # this month, last month: the replay counted once
    async with sessionmaker() as s:
        days = sorted((d.day, d.attempts, d.denied_checks) for d in await s.scalars(
            select(DemandSignal).where(DemandSignal.feature == "pdf_export")))
    assert days == [((clock.now() - timedelta(days=1)).date(), 1, 0), (clock.now().date(), 2, 0)]
    again = (await client.post("/v1/usage", json={"events": batch}, headers=bearer(key))).json()
    assert (again["accepted"], again["duplicates"]) == (0, 6)
    history = (await client.get("/v1/usage/history", params={"user": "acme-ana", "feature": "reports"},
                                headers=bearer(key))).json()["data"]
    assert [p["used"] for p in history] == [5, 4]
