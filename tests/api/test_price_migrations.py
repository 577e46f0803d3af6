"""Scheduled price migrations through the API and the jobs: the plan names each owner with both amounts, owners
are told once ahead of the date, the renewal after the date bills the new version, the vendor can cancel."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from app.audit import AuditEntry
from app.clock import FrozenClock
from app.jobs.wiring import JobWiring
from app.outbox import OutboxEvent
from app.settings import Settings
from billing.models import Order, Subscription
from billing.stripe.flows import run_billing
from tests.api.stripe_app import CardWorld, idem_header
from tests.factories import bearer

MIGRATE_AT = "2027-01-15T00:00:00Z"


async def _subscribe(shop: CardWorld, sessionmaker: Any) -> Subscription:
    r = await shop.client.post(f"/v1/accounts/{shop.a.account}/budgets",
                               json={"name": "Main", "currency": "USD", "amount_minor": 100_000},
                               headers=bearer(shop.key))
    assert r.status_code == 201, r.text
    q = await shop.client.post("/v1/quotes", json={"user": shop.a.user, "items": [{"module": "reports_basic"}]},
                               headers=bearer(shop.a.user_token))
    o = await shop.client.post("/v1/orders", json={"quote_id": q.json()["id"]},
                               headers={**bearer(shop.a.user_token), **idem_header()})
    assert o.json()["state"] == "fulfilled", o.text
    return await _sub(sessionmaker)


async def _sub(sessionmaker: Any) -> Subscription:
    async with sessionmaker() as s:
        [sub] = (await s.scalars(select(Subscription))).all()
        return sub


async def _doc_with_new_price(shop: CardWorld, amount_minor: int, migrate_at: str | None) -> dict[str, Any]:
    doc = (await shop.client.get("/v1/catalog/document", headers=bearer(shop.key))).json()
    doc = copy.deepcopy(doc)
    [module] = [m for m in doc["modules"] if m["key"] == "reports_basic"]
    for price in module["prices"]:
        if price.get("interval") == "month" and price["currency"] == "USD":
            price["amount_minor"] = amount_minor
            if migrate_at is not None:
                price["migrate_existing_at"] = migrate_at
    return dict(doc)


async def _types(sessionmaker: Any, prefix: str) -> list[str]:
    async with sessionmaker() as s:
        return list((await s.scalars(select(OutboxEvent.type).where(OutboxEvent.type.startswith(prefix))
                                     .order_by(OutboxEvent.seq))).all())


async def _renewal_totals(sessionmaker: Any) -> list[int]:
    async with sessionmaker() as s:
        return list((await s.scalars(select(Order.total_minor).where(Order.subscription_id.is_not(None))
                                     .order_by(Order.renewal_period))).all())


async def test_a_scheduled_migration_lists_owners_notifies_them_once_and_moves_them_at_the_next_renewal(
        shop: CardWorld, sessionmaker: Any, settings: Settings, clock: FrozenClock) -> None:
    sub = await _subscribe(shop, sessionmaker)
    doc = await _doc_with_new_price(shop, 1200, MIGRATE_AT)
    plan = await shop.client.post("/v1/catalog/plan", json={"document": doc}, headers=bearer(shop.key))
    assert plan.status_code == 200, plan.text
    [change] = [c for c in plan.json()["changes"] if c["action"] == "new_version"]
    [owner] = change["affected_owners"]
    assert owner["holding"] == sub.subscription_id and owner["price_id"] == sub.price_id
    assert (owner["amount_minor_before"], owner["amount_minor_after"]) == (900, 1200)
    applied = await shop.client.post("/v1/catalog/apply", json={"document": doc}, headers=bearer(shop.key))
    assert applied.status_code == 200, applied.text
    assert await _types(sessionmaker, "price.") == ["price.migration_scheduled"]

    jobs = JobWiring(sessionmaker=sessionmaker, settings=settings, clock=clock, stripe=None)
    assert (await jobs.price_migrations(clock.now()))["notices_sent"] == 0  # 53 days ahead: not yet
    clock.set(datetime(2026, 12, 20, tzinfo=UTC))  # within the 30-day notice period
    assert (await jobs.price_migrations(clock.now()))["notices_sent"] == 1
    assert (await jobs.price_migrations(clock.now()))["notices_sent"] == 0  # once per owner
    async with sessionmaker() as s:
        notice = await s.scalar(select(OutboxEvent).where(OutboxEvent.type == "price.change_scheduled"))
    assert notice is not None and notice.account_id == sub.account_id
    assert (notice.payload["amount_minor_before"], notice.payload["amount_minor_after"]) == (900, 1200)

    gateway = shop.client.app.state.stripe
    clock.set(datetime(2027, 1, 1, 0, 5, tzinfo=UTC))  # December and January start before the date: old price
    assert (await run_billing(sessionmaker, gateway, settings=settings, clock=clock)).renewed == 2
    clock.set(datetime(2027, 2, 1, 0, 5, tzinfo=UTC))  # the first renewal from the date on: the new version
    assert (await run_billing(sessionmaker, gateway, settings=settings, clock=clock)).renewed == 1
    assert await _renewal_totals(sessionmaker) == [900, 900, 1200]
    moved = await _sub(sessionmaker)
    assert moved.price_id != sub.price_id and moved.unit_amount_minor == 1200
    assert await _types(sessionmaker, "subscription.price_migrated") == ["subscription.price_migrated"]


async def test_the_vendor_cancels_a_scheduled_migration_before_its_date_and_owners_keep_their_price(
        shop: CardWorld, sessionmaker: Any, settings: Settings, clock: FrozenClock) -> None:
    await _subscribe(shop, sessionmaker)
    doc = await _doc_with_new_price(shop, 1500, MIGRATE_AT)
    applied = await shop.client.post("/v1/catalog/apply", json={"document": doc}, headers=bearer(shop.key))
    [change] = [c for c in applied.json()["changes"] if c["action"] == "new_version"]
    prices = (await shop.client.get("/v1/catalog/modules/reports_basic/prices", params={"currency": "USD"},
                                    headers=bearer(shop.key))).json()["data"]
    [new] = [p for p in prices if p["interval"] == "month" and p["version"] == change["to_version"]]
    url = f"/v1/catalog/prices/{new['id']}/migration/cancel"
    assert (await shop.client.post(url, headers=bearer(shop.a.admin_token))).status_code == 403  # the vendor's
    r = await shop.client.post(url, headers=bearer(shop.key))
    assert r.status_code == 200, r.text
    assert r.json()["migrate_existing_at"] is None and r.json()["id"] == new["id"]
    again = await shop.client.post(url, headers=bearer(shop.key))
    assert again.status_code == 409 and again.json()["code"] == "migration_not_cancelable"
    exported = (await shop.client.get("/v1/catalog/document", headers=bearer(shop.key))).json()
    [module] = [m for m in exported["modules"] if m["key"] == "reports_basic"]
    assert all("migrate_existing_at" not in p for p in module["prices"])
    assert await _types(sessionmaker, "price.migration_") == ["price.migration_scheduled",
                                                             "price.migration_canceled"]
    async with sessionmaker() as s:
        audited = await s.scalar(select(AuditEntry).where(AuditEntry.action == "price.migration_canceled"))
    assert audited is not None and audited.target_id == new["id"]

    jobs = JobWiring(sessionmaker=sessionmaker, settings=settings, clock=clock, stripe=None)
    clock.set(datetime(2026, 12, 20, tzinfo=UTC))
    assert (await jobs.price_migrations(clock.now()))["notices_sent"] == 0  # nobody is told of a canceled move
    gateway = shop.client.app.state.stripe
    for month in (1, 2):
        clock.set(datetime(2027, month, 1, 0, 5, tzinfo=UTC))
        await run_billing(sessionmaker, gateway, settings=settings, clock=clock)
    assert await _renewal_totals(sessionmaker) == [900, 900, 900]


async def test_a_migration_whose_date_has_come_cannot_be_canceled(shop: CardWorld, clock: FrozenClock) -> None:
    doc = await _doc_with_new_price(shop, 1100, MIGRATE_AT)
    applied = await shop.client.post("/v1/catalog/apply", json={"document": doc}, headers=bearer(shop.key))
    [change] = [c for c in applied.json()["changes"] if c["action"] == "new_version"]
    prices = (await shop.client.get("/v1/catalog/modules/reports_basic/prices", params={"currency": "USD"},
                                    headers=bearer(shop.key))).json()["data"]
    [new] = [p for p in prices if p["interval"] == "month" and p["version"] == change["to_version"]]
    clock.set(datetime(2027, 1, 16, tzinfo=UTC))
    r = await shop.client.post(f"/v1/catalog/prices/{new['id']}/migration/cancel", headers=bearer(shop.key))
    assert r.status_code == 409 and "took effect" in r.json()["detail"]
