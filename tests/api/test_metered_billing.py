"""Metered billing through the API and the jobs: quotes state the tiers, usage is charged once per period at
the version in force, late usage becomes an adjustment in the next period, both routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from app.clock import FrozenClock
from app.jobs.wiring import JobWiring
from app.outbox import OutboxEvent
from app.settings import Settings
from billing.models import MeteredPlan, UsageCharge
from billing.stripe.flows import invoice_usage
from tests.api.stripe_app import CardWorld, idem_header
from tests.factories import bearer
from tests.stripe_server import FaultKind


async def _budget(shop: CardWorld, amount_minor: int = 100_000) -> None:
    r = await shop.client.post(f"/v1/accounts/{shop.a.account}/budgets",
                               json={"name": "Main", "currency": "USD", "amount_minor": amount_minor},
                               headers=bearer(shop.key))
    assert r.status_code == 201, r.text


async def _buy(shop: CardWorld, module: str = "api_access") -> dict[str, Any]:
    """The account's admin buys (data modules are purchasable for admins in the demo catalog)."""
    q = await shop.client.post("/v1/quotes", json={"user": shop.a.admin, "items": [{"module": module}]},
                               headers=bearer(shop.a.admin_token))
    assert q.status_code == 201, q.text
    o = await shop.client.post("/v1/orders", json={"quote_id": q.json()["id"]},
                               headers={**bearer(shop.a.admin_token), **idem_header()})
    assert o.status_code == 201, o.text
    assert o.json()["state"] == "fulfilled", o.json()
    return dict(o.json())


async def _use(shop: CardWorld, event_id: str, quantity: int, *, at: datetime | None = None,
               feature: str = "api_calls") -> None:
    ev: dict[str, Any] = {"event_id": event_id, "user": shop.a.admin, "feature": feature, "quantity": quantity}
    if at is not None:
        ev["occurred_at"] = at.isoformat()
    r = await shop.client.post("/v1/usage", json={"events": [ev]}, headers=bearer(shop.key))
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1, r.json()


async def _close(shop: CardWorld, period: str) -> dict[str, Any]:
    r = await shop.client.post("/v1/billing/statements/close", json={"period": period}, headers=bearer(shop.key))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _charges(sessionmaker: Any) -> list[UsageCharge]:
    async with sessionmaker() as s:
        return list((await s.scalars(select(UsageCharge).order_by(UsageCharge.created_at,
                                                                  UsageCharge.charge_id))).all())


async def test_a_quote_of_a_metered_module_states_its_tiers_and_included_units(shop: CardWorld) -> None:
    q = await shop.client.post("/v1/quotes", json={"user": shop.a.admin, "items": [{"module": "api_access"}]},
                               headers=bearer(shop.a.admin_token))
    assert q.status_code == 201, q.text
    [line] = q.json()["lines"]
    assert line["model"] == "metered" and line["total_minor"] == 0  # nothing due at purchase
    terms = line["metered"]
    assert terms["unit"] == "call" and terms["tier_mode"] == "volume" and terms["included_quantity"] == 100_000
    assert terms["per_units"] == 1000
    assert [t["unit_amount_minor"] for t in terms["tiers"]] == [40, 25, 15]
    assert terms["tiers"][1] == {"up_to": 10_000_000, "unit_amount_minor": 25, "flat_amount_minor": 5000}
    assert "first 100000 calls included" in terms["description"]


async def test_budget_route_usage_is_charged_once_on_the_statement_and_late_usage_next_period(
        shop: CardWorld, sessionmaker: Any, clock: FrozenClock) -> None:
    await _budget(shop)
    await _buy(shop)
    await _use(shop, "u-1", 300_000)
    await _use(shop, "u-other", 5, feature="reports")  # another feature's usage is not this plan's
    running = await shop.client.get(f"/v1/accounts/{shop.a.account}/usage-charges", headers=bearer(shop.a.admin_token))
    assert running.status_code == 200, running.text
    body = running.json()
    [line] = body["lines"]
    # volume: 300,000 calls fall in the first tier; 200,000 billable at 40 per 1,000 = 8000
    assert (line["quantity"], line["billable_quantity"], line["amount_minor"]) == (300_000, 200_000, 8000)
    assert body["total_minor"] == 8000 and body["users"] == [{"user": shop.a.admin, "amount_minor": 8000}]
    assert (await shop.client.get(f"/v1/accounts/{shop.a.account}/usage-charges",
                                  headers=bearer(shop.b.admin_token))).status_code == 404

    assert (await _close(shop, "2026-11"))["closed"] == []  # the month has not ended: nothing is charged
    assert await _charges(sessionmaker) == []
    clock.set(datetime(2026, 12, 1, 1, tzinfo=UTC))
    closed = await _close(shop, "2026-11")
    [statement] = closed["closed"]
    usage_lines = [x for x in statement["lines"] if x["kind"] == "usage"]
    assert [x["net_minor"] for x in usage_lines] == [8000] and statement["total_minor"] == 8000
    again = await _close(shop, "2026-11")
    assert again["closed"] == [] and len(again["already_closed"]) == 1
    [charge] = await _charges(sessionmaker)
    assert (charge.kind, charge.amount_minor, charge.quantity, charge.billed_period) == ("period", 8000, 300_000,
                                                                                          "2026-11")

    clock.set(datetime(2026, 12, 5, tzinfo=UTC))  # late usage of November, inside the backfill window
    await _use(shop, "u-late", 50_000, at=datetime(2026, 11, 30, 12, tzinfo=UTC))
    clock.set(datetime(2027, 1, 1, 1, tzinfo=UTC))
    december = (await _close(shop, "2026-12"))["closed"]
    [stmt] = december
    [adjust] = [x for x in stmt["lines"] if x["kind"] == "usage_adjustment"]
    # 350,000 calls: 250,000 billable = 10000; 8000 already billed, so 2000 more
    assert adjust["net_minor"] == 2000 and "2026-11" in adjust["description"]
    await _close(shop, "2026-12")
    kinds = [(c.kind, c.usage_period, c.billed_period, c.amount_minor) for c in await _charges(sessionmaker)]
    assert kinds == [("period", "2026-11", "2026-11", 8000), ("period", "2026-12", "2026-12", 0),
                     ("adjustment", "2026-11", "2026-12", 2000)]
    async with sessionmaker() as s:
        events = (await s.scalars(select(OutboxEvent.type).where(OutboxEvent.type == "usage.charged"))).all()
    assert len(events) == 3


async def test_card_route_usage_becomes_one_stripe_invoice_even_when_the_job_runs_twice(
        shop: CardWorld, sessionmaker: Any, settings: Settings, clock: FrozenClock) -> None:
    await _buy(shop)  # no budget: the card route (nothing is due now, so nothing is charged now)
    async with sessionmaker() as s:
        [plan] = (await s.scalars(select(MeteredPlan))).all()
    assert plan.route == "card"
    await _use(shop, "c-1", 2_000_000)
    clock.set(datetime(2026, 12, 1, 0, 5, tzinfo=UTC))
    gateway = shop.client.app.state.stripe
    jobs = JobWiring(sessionmaker=sessionmaker, settings=settings, clock=clock, stripe=gateway)
    slot = datetime(2026, 12, 1, tzinfo=UTC)
    first = await jobs.usage_billing(slot)
    assert first["charges"] == 1 and (await jobs.usage_billing(slot))["charges"] == 0  # the job run twice
    [pending] = await _charges(sessionmaker)
    assert pending.status == "invoice_pending"
    # the in-process fake is per process, so the job invoices only with real Stripe; the flow it calls:
    shop.fake.inject(FaultKind.LOST_RESPONSE, method="POST", path="/v1/invoices", times=3)
    assert await invoice_usage(sessionmaker, gateway, clock=clock) == {"invoiced": 0, "failed": 1}  # a crash
    for _ in range(2):
        await invoice_usage(sessionmaker, gateway, clock=clock)
    [charge] = await _charges(sessionmaker)
    # volume: 2,000,000 falls in the second tier: 1,900,000 billable at 25 per 1,000 + 5000 flat = 52500
    assert (charge.amount_minor, charge.status) == (52_500, "invoiced")
    [item] = shop.fake.of_kind("invoiceitem")
    assert item["amount"] == 52_500 and item["metadata"]["commerce_usage_charge_id"] == charge.charge_id
    [invoice] = shop.fake.of_kind("invoice")
    assert invoice["id"] == charge.stripe_invoice_id and invoice["amount_due"] == 52_500


async def test_a_month_no_close_ever_charged_is_charged_at_the_next_close(
        shop: CardWorld, sessionmaker: Any, clock: FrozenClock) -> None:
    await _budget(shop)
    await _buy(shop)
    await _use(shop, "m-1", 150_000)
    clock.set(datetime(2027, 1, 1, 1, tzinfo=UTC))  # November's close never ran (downtime)
    [statement] = (await _close(shop, "2026-12"))["closed"]
    [line] = [x for x in statement["lines"] if x["kind"] == "usage"]
    assert line["net_minor"] == 2000 and "2026-11" in line["description"]  # 50,000 billable at 40 per 1,000
    periods = sorted((c.usage_period, c.billed_period) for c in await _charges(sessionmaker))
    assert periods == [("2026-11", "2026-12"), ("2026-12", "2026-12")]


async def test_each_month_is_billed_at_the_version_in_force_when_its_usage_happened(
        shop: CardWorld, sessionmaker: Any, clock: FrozenClock) -> None:
    await _budget(shop)
    await _buy(shop)
    doc = (await shop.client.get("/v1/catalog/document", headers=bearer(shop.key))).json()
    [module] = [m for m in doc["modules"] if m["key"] == "api_access"]
    [usd] = [p for p in module["prices"] if p["currency"] == "USD"]
    usd["tiers"][0]["unit_amount_minor"] = 50  # v2: 50 per 1,000 in the first tier, owners move on Dec 1
    usd["migrate_existing_at"] = "2026-12-01T00:00:00Z"
    plan = await shop.client.post("/v1/catalog/plan", json={"document": doc}, headers=bearer(shop.key))
    [change] = [c for c in plan.json()["changes"] if c["action"] == "new_version"]
    [owner] = change["affected_owners"]
    assert owner["holding"].startswith("mtr_") and owner["amount_minor_before"] is None  # priced by usage
    assert (await shop.client.post("/v1/catalog/apply", json={"document": doc},
                                   headers=bearer(shop.key))).status_code == 200
    await _use(shop, "v-nov", 300_000)
    clock.set(datetime(2026, 12, 10, tzinfo=UTC))
    await _use(shop, "v-dec", 300_000)
    running = (await shop.client.get(f"/v1/accounts/{shop.a.account}/usage-charges",
                                     headers=bearer(shop.key))).json()
    assert [(x["price_version"], x["amount_minor"]) for x in running["lines"]] == [(2, 10_000)]
    clock.set(datetime(2027, 1, 1, 1, tzinfo=UTC))
    await _close(shop, "2026-11")
    await _close(shop, "2026-12")
    billed = [(c.usage_period, c.price_version, c.amount_minor) for c in await _charges(sessionmaker)]
    assert billed == [("2026-11", 1, 8000), ("2026-12", 2, 10_000)]


async def test_a_commitment_from_the_catalog_is_quoted_and_drawn_down_before_overage(
        shop: CardWorld, sessionmaker: Any, clock: FrozenClock) -> None:
    doc = (await shop.client.get("/v1/catalog/document", headers=bearer(shop.key))).json()
    [module] = [m for m in doc["modules"] if m["key"] == "api_access"]
    [usd] = [p for p in module["prices"] if p["currency"] == "USD"]
    usd["commitment_minor"] = 10_000
    assert (await shop.client.post("/v1/catalog/apply", json={"document": doc},
                                   headers=bearer(shop.key))).status_code == 200
    await _budget(shop)
    order = await _buy(shop)
    assert order["lines"][0]["metered"]["commitment_minor"] == 10_000
    await _use(shop, "k-1", 300_000)  # 8000 of usage: inside the commitment
    [line] = (await shop.client.get(f"/v1/accounts/{shop.a.account}/usage-charges",
                                    headers=bearer(shop.key))).json()["lines"]
    assert (line["usage_minor"], line["drawn_minor"], line["overage_minor"], line["amount_minor"]) == (
        8000, 8000, 0, 10_000)
    await _use(shop, "k-2", 200_000)  # 500,000 calls, 400,000 billable: 16000, 6000 beyond the commitment
    clock.set(datetime(2026, 12, 1, 1, tzinfo=UTC))
    [statement] = (await _close(shop, "2026-11"))["closed"]
    assert [x["net_minor"] for x in statement["lines"] if x["kind"] == "usage"] == [16_000]
    [charge] = await _charges(sessionmaker)
    assert (charge.detail["drawn_minor"], charge.detail["overage_minor"]) == (10_000, 6000)
