"""Usage events in monthly partitions: replays still count once; months are prepared ahead and retired."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, text

from app.clock import FrozenClock
from app.jobs.wiring import JobWiring
from app.settings import Settings
from entitlements.models import UsageEventKey
from entitlements.service import ensure_partitions
from entitlements.service._partitions import partitions
from tests.api.test_entitlements import check, grant, key  # noqa: F401  (fixture)
from tests.factories import bearer


async def where_stored(sessionmaker: Any, event_id: str) -> list[str]:
    async with sessionmaker() as s:
        return list((await s.scalars(text("SELECT tableoid::regclass::text FROM ent_usage_events WHERE event_id = :e"),
                                     {"e": event_id})).all())


async def test_events_land_in_their_month_and_a_replay_at_another_time_counts_once(
        client: AsyncTestClient[Any], key: str, sessionmaker: Any, clock: FrozenClock) -> None:  # noqa: F811
    async with sessionmaker() as s, s.begin():  # the months of the frozen clock (the migration made today's)
        await ensure_partitions(s, now=clock.now())
    await grant(client, key, "acme", module="reports_basic", user="acme-ana", source_ref="p1")
    last_month = (clock.now() - timedelta(days=25)).isoformat()
    first = {"events": [{"event_id": "late", "user": "acme-ana", "feature": "reports", "quantity": 4,
                         "occurred_at": last_month},
                        {"event_id": "now", "user": "acme-ana", "feature": "reports", "quantity": 3}]}
    assert (await client.post("/v1/usage", json=first, headers=bearer(key))).json()["accepted"] == 2
    assert await where_stored(sessionmaker, "late") == ["ent_usage_events_y2026m10"]
    assert await where_stored(sessionmaker, "now") == ["ent_usage_events_y2026m11"]
    clock.advance(timedelta(hours=5))  # the replay has no occurred_at: "now" is another time, same event
    replay = {"events": [{"event_id": "now", "user": "acme-ana", "feature": "reports", "quantity": 3}]}
    body = (await client.post("/v1/usage", json=replay, headers=bearer(key))).json()
    assert (body["accepted"], body["duplicates"]) == (0, 1)
    assert (await check(client, key, "acme-ana", "reports"))["used"] == 3
    assert len(await where_stored(sessionmaker, "now")) == 1


async def test_the_partitions_job_prepares_months_ahead_and_drops_those_past_the_retention(
        client: AsyncTestClient[Any], key: str, sessionmaker: Any, clock: FrozenClock,  # noqa: F811
        settings: Settings) -> None:
    await grant(client, key, "acme", module="reports_basic", user="acme-ana", source_ref="p2")
    wiring = JobWiring(sessionmaker=sessionmaker, settings=settings, clock=clock, stripe=None)
    await wiring.usage_partitions(clock.now())
    async with sessionmaker() as s:
        names = set(await partitions(s))
    assert {"ent_usage_events_y2026m11", "ent_usage_events_y2027m02", "ent_usage_events_default"} <= names
    r = await client.post("/v1/usage", headers=bearer(key), json={"events": [
        {"event_id": "old-1", "user": "acme-ana", "feature": "reports", "quantity": 2}]})
    assert r.json()["accepted"] == 1
    clock.advance(timedelta(days=31 * 14))  # past the 13-month retention
    # an event for a month nobody prepared yet lands in the default partition ...
    far = (await client.post("/v1/usage", headers=bearer(key), json={"events": [
        {"event_id": "far-1", "user": "acme-ana", "feature": "reports", "quantity": 1}]})).json()
    assert far["accepted"] == 1 and await where_stored(sessionmaker, "far-1") == ["ent_usage_events_default"]
    detail = await wiring.usage_partitions(clock.now())
    # ... and preparing that month moves it out; the old month is gone with its event keys
    month = clock.now().strftime("ent_usage_events_y%Ym%m")
    assert await where_stored(sessionmaker, "far-1") == [month]
    assert await where_stored(sessionmaker, "old-1") == [] and detail["dropped"] >= 1
    async with sessionmaker() as s:
        names = set(await partitions(s))
        keys = set((await s.scalars(select(UsageEventKey.event_id))).all())
        count = await s.scalar(select(func.count()).select_from(text("ent_usage_events")))
    assert "ent_usage_events_y2026m11" not in names and month in names
    assert keys == {"far-1"} and count == 1
