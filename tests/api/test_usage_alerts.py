"""Usage alerts: ``usage.limit_near`` at 80 % of a user's summed limit and ``entitlement.unused`` for a paid module
left idle, each told once per episode by the app's jobs (never by the ingestion request)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import select

from app.accounts.service import get_account, get_user
from app.clock import FrozenClock
from app.jobs.wiring import JobWiring
from app.outbox import OutboxEvent
from app.settings import Settings
from entitlements.service import grant as grant_module
from tests.api.test_entitlements import grant, key  # noqa: F401  (fixture)
from tests.factories import bearer


async def outbox(sessionmaker: Any, type_: str) -> list[dict[str, Any]]:
    async with sessionmaker() as s:
        return [dict(p) for p in await s.scalars(
            select(OutboxEvent.payload).where(OutboxEvent.type == type_).order_by(OutboxEvent.seq))]


async def use(client: AsyncTestClient[Any], key: str, user: str, feature: str, n: int, tag: str) -> None:  # noqa: F811
    r = await client.post("/v1/usage", headers=bearer(key), json={"events": [
        {"event_id": tag, "user": user, "feature": feature, "quantity": n}]})
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text


def jobs(sessionmaker: Any, settings: Settings, clock: FrozenClock) -> JobWiring:
    return JobWiring(sessionmaker=sessionmaker, settings=settings, clock=clock, stripe=None)


async def test_limit_near_is_told_once_per_period_at_80_percent_of_the_summed_limit(
        client: AsyncTestClient[Any], key: str, sessionmaker: Any, clock: FrozenClock,  # noqa: F811
        settings: Settings) -> None:
    await grant(client, key, "acme", module="reports_basic", user="acme-ana", source_ref="ln1")  # 50 reports
    for m in ("reports_basic", "reports_pro"):  # 50 + 500 reports: 45 used is far from the limit
        await grant(client, key, "acme", module=m, user="acme-vic", source_ref=f"ln-{m}")
    wiring = jobs(sessionmaker, settings, clock)
    await use(client, key, "acme-ana", "reports", 39, "a1")
    await use(client, key, "acme-vic", "reports", 45, "v1")
    assert (await wiring.limit_near_alerts(clock.now()))["usage.limit_near"] == 0
    assert await outbox(sessionmaker, "usage.limit_near") == []
    await use(client, key, "acme-ana", "reports", 1, "a2")  # 40 of 50: 80 %
    await wiring.limit_near_alerts(clock.now())
    sent = await outbox(sessionmaker, "usage.limit_near")
    assert [(e["feature"], e["used"], e["limit"], e["threshold_pct"]) for e in sent] == [("reports", 40, 50, 80)]
    await use(client, key, "acme-ana", "reports", 5, "a3")  # still the same episode: nothing new
    assert (await wiring.limit_near_alerts(clock.now()))["usage.limit_near"] == 0
    assert len(await outbox(sessionmaker, "usage.limit_near")) == 1
    clock.advance(timedelta(days=32))  # a new month: a new counter, a new episode
    await use(client, key, "acme-ana", "reports", 42, "a4")
    await wiring.limit_near_alerts(clock.now())
    sent = await outbox(sessionmaker, "usage.limit_near")
    assert [e["used"] for e in sent] == [40, 42] and sent[1]["period_start"] > sent[0]["period_start"]


async def test_the_ingestion_request_itself_tells_nothing(
        client: AsyncTestClient[Any], key: str, sessionmaker: Any) -> None:  # noqa: F811
    await grant(client, key, "acme", module="reports_basic", user="acme-ana", source_ref="ln2")
    await use(client, key, "acme-ana", "reports", 50, "b1")
    assert await outbox(sessionmaker, "usage.limit_near") == []


async def paid(sessionmaker: Any, clock: FrozenClock, user: str, module: str, *, days_ago: int,
               source: Any = "order") -> None:
    async with sessionmaker() as s, s.begin():
        account, person = await get_account(s, "acme"), await get_user(s, user)
        assert account is not None and person is not None
        await grant_module(s, account_id=account.account_id, user_id=person.user_id, module=module, source=source,
                           source_ref=f"{user}-{module}", starts_at=clock.now() - timedelta(days=days_ago),
                           ends_at=None, clock=clock)


async def test_unused_is_told_once_per_idle_spell_of_a_paid_module(
        client: AsyncTestClient[Any], key: str, sessionmaker: Any, clock: FrozenClock,  # noqa: F811
        settings: Settings) -> None:
    await paid(sessionmaker, clock, "acme-ana", "advanced_charts", days_ago=40)  # bought, never used
    await paid(sessionmaker, clock, "acme-vic", "advanced_charts", days_ago=40)  # bought and used
    await paid(sessionmaker, clock, "acme-cara", "advanced_charts", days_ago=40, source="admin")  # not paid for
    await paid(sessionmaker, clock, "acme-alice", "advanced_charts", days_ago=5)  # bought too recently to judge
    await use(client, key, "acme-vic", "advanced_charts", 1, "c1")
    wiring = jobs(sessionmaker, settings, clock)
    assert (await wiring.unused_alerts(clock.now()))["entitlement.unused"] == 1
    sent = await outbox(sessionmaker, "entitlement.unused")
    async with sessionmaker() as s:
        ana = await get_user(s, "acme-ana")
    assert ana is not None
    assert [(e["user_id"], e["module"], e["source"], e["unused_days"]) for e in sent] == [
        (ana.user_id, "advanced_charts", "order", settings.unused_alert_days)]
    assert (await wiring.unused_alerts(clock.now()))["entitlement.unused"] == 0  # the same spell: told once
    clock.advance(timedelta(days=1))
    await use(client, key, "acme-ana", "advanced_charts", 1, "c2")  # used again: the spell ends
    assert (await wiring.unused_alerts(clock.now()))["idle_spells_ended"] == 1
    assert len(await outbox(sessionmaker, "entitlement.unused")) == 1
    clock.advance(timedelta(days=70))  # idle again long enough (vic and alice too): a new spell each
    await wiring.unused_alerts(clock.now())
    users = [e["user_id"] for e in await outbox(sessionmaker, "entitlement.unused")]
    assert len(users) == 4 and users.count(ana.user_id) == 2


async def test_two_sweeps_at_once_tell_an_episode_once(
        client: AsyncTestClient[Any], key: str, sessionmaker: Any, clock: FrozenClock) -> None:  # noqa: F811
    import asyncio

    from entitlements.service import alert_limits_near, catalog_view

    await grant(client, key, "acme", module="reports_basic", user="acme-ana", source_ref="ln3")
    await use(client, key, "acme-ana", "reports", 45, "d1")

    async def sweep() -> int:
        async with sessionmaker() as s, s.begin():  # its own connection and transaction
            return await alert_limits_near(s, view=await catalog_view(s), clock=clock)

    told = await asyncio.gather(sweep(), sweep())
    assert sorted(told) == [0, 1]
    assert len(await outbox(sessionmaker, "usage.limit_near")) == 1
