"""GET /v1/ops/jobs and the jobs that keep the database tidy, through the real app."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, update

from app.clock import FrozenClock
from app.db import create_lock_engine
from app.idempotency import IdempotencyRecord
from app.jobs.scheduler import Scheduler
from app.jobs.wiring import JobsLoop
from app.settings import Settings
from entitlements.models import EntitlementChange
from tests.api.test_auth import assert_problem
from tests.api.test_purchase import acme, budget, key, order, quote  # noqa: F401  (fixtures)
from tests.factories import Tenant, bearer, make_key

JOBS = {"billing_run", "statement_close", "reconcile", "approval_expiry", "idempotency_purge", "price_migrations",
        "usage_billing",
        "entitlement_changes_prune",
        "suggestion_stats", "webhook_dispatch", "job_history_purge", "trial_sweep", "usage_partitions",
        "limit_near_alerts", "unused_alerts"}


@pytest.fixture
async def scheduler(database_url: str, sessionmaker: Any, settings: Settings, clock: FrozenClock) -> Any:
    """The app's own jobs, ticked by the test (the app under test runs its lifespan on another loop)."""
    lock_engine = create_lock_engine(database_url, pool_size=2, max_overflow=2)
    yield JobsLoop(sessionmaker=sessionmaker, lock_engine=lock_engine, settings=settings, clock=clock,
                   stripe=None).scheduler
    await lock_engine.dispose()


async def test_jobs_list_shows_every_job_due_before_its_first_run(client: AsyncTestClient[Any], sessionmaker: Any,
                                                                  clock: FrozenClock) -> None:
    ops = await make_key(sessionmaker, clock, scopes="ops:read")
    body = (await client.get("/v1/ops/jobs", headers=bearer(ops))).json()
    assert body["scheduler"] == "off" and {j["name"] for j in body["data"]} == JOBS
    for job in body["data"]:
        assert job["last_status"] is None and job["next_run_at"] <= clock.now().isoformat().replace("+00:00", "Z")


async def test_jobs_list_shows_last_outcome_duration_and_next_run_after_a_tick(
        client: AsyncTestClient[Any], sessionmaker: Any, clock: FrozenClock, scheduler: Scheduler) -> None:
    ops = await make_key(sessionmaker, clock, scopes="ops:read")
    ran = await scheduler.tick()
    assert {r.job for r in ran} == JOBS and all(r.status == "succeeded" for r in ran), ran
    assert await scheduler.tick() == []  # nothing is due twice
    jobs = {j["name"]: j for j in (await client.get("/v1/ops/jobs", headers=bearer(ops))).json()["data"]}
    close = jobs["statement_close"]
    assert close["last_status"] == "succeeded" and close["last_detail"]["period"] == "2026-10"
    assert close["last_duration_ms"] >= 0 and close["last_attempts"] == 1 and close["last_success_at"]
    assert close["next_run_at"].startswith("2026-12-01T01:00:00")
    assert jobs["reconcile"]["last_detail"] == {"skipped": "no Stripe secret key"}
    assert jobs["approval_expiry"]["schedule"] == "every 5 minutes"
    assert jobs["billing_run"]["schedule"] == "hourly at :05"
    assert jobs["job_history_purge"]["schedule"] == "daily at 03:00 UTC"


async def test_jobs_list_needs_the_ops_scope_and_a_vendor_key(client: AsyncTestClient[Any], sessionmaker: Any,
                                                               clock: FrozenClock) -> None:
    other = await make_key(sessionmaker, clock, scopes="commerce:read")
    assert_problem(await client.get("/v1/ops/jobs", headers=bearer(other)), 403)
    assert_problem(await client.get("/v1/ops/jobs"), 401)


async def test_expired_idempotency_keys_are_purged_by_the_scheduled_job(
        client: AsyncTestClient[Any], key: str, acme: Tenant, sessionmaker: Any, clock: FrozenClock,  # noqa: F811
        scheduler: Scheduler) -> None:
    await budget(client, key, 100_000)
    q = await quote(client, acme.user_token, acme.user, "reports_basic")
    first = await order(client, acme.user_token, q["id"], **{"Idempotency-Key": "order-once"})
    assert first.status_code == 201, first.text

    async def stored() -> int:
        async with sessionmaker() as s:
            return int(await s.scalar(select(func.count()).select_from(IdempotencyRecord)) or 0)

    await scheduler.tick()
    assert await stored() == 1  # still within its TTL: kept for replays
    clock.advance(timedelta(days=1, hours=1))
    ran = {r.job: r for r in await scheduler.tick()}
    assert ran["idempotency_purge"].detail == {"purged": 1} and await stored() == 0


async def test_the_entitlement_change_log_is_pruned_past_its_resumable_window(
        client: AsyncTestClient[Any], key: str, acme: Tenant, sessionmaker: Any, clock: FrozenClock,  # noqa: F811
        scheduler: Scheduler) -> None:
    await budget(client, key, 100_000)
    q = await quote(client, acme.user_token, acme.user, "reports_basic")
    assert (await order(client, acme.user_token, q["id"])).status_code == 201

    async def logged() -> int:
        async with sessionmaker() as s:
            return int(await s.scalar(select(func.count()).select_from(EntitlementChange)) or 0)

    changes = await logged()
    assert changes > 0  # the grant was logged for the SDK's change stream
    ran = {r.job: r for r in await scheduler.tick()}
    assert ran["entitlement_changes_prune"].detail == {"pruned": 0} and await logged() == changes
    async with sessionmaker() as s, s.begin():  # the rows grow older than the window (plus its hour)
        await s.execute(update(EntitlementChange).values(created_at=func.now() - timedelta(days=2)))
    clock.advance(timedelta(hours=1, minutes=1))
    ran = {r.job: r for r in await scheduler.tick()}
    assert ran["entitlement_changes_prune"].detail == {"pruned": changes} and await logged() == 0
