"""The service's periodic jobs: wiring like the app factory, so it is the one jobs module that knows every
package. Each job calls the packages' own use cases; those are idempotent and catch up everything due, which
is what lets missed slots collapse into one run."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.clock import Clock
from app.idempotency import purge_expired
from app.jobs.events import JobFailed
from app.jobs.models import JobRun
from app.jobs.schedule import Every, Monthly, previous_period
from app.jobs.scheduler import Job, JobResult, Scheduler, purge_history
from app.settings import Settings
from app.webhooks.events import emit_event

HOUR, DAY = 3600, 86_400
BATCH = 500


class JobWiring:
    """The resources jobs need (built once per process) and the job list."""

    def __init__(self, *, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, clock: Clock,
                 stripe: Any | None) -> None:
        self.sessionmaker, self.settings, self.clock, self.stripe = sessionmaker, settings, clock, stripe

    def jobs(self) -> list[Job]:
        s = self.settings
        jobs = [
            Job("billing_run", Every(HOUR, offset_seconds=5 * 60), self.billing_run,
                "renew due subscriptions (both routes) and run dunning"),
            Job("usage_billing", Monthly(day=1, hour=0), self.usage_billing,
                "charge last month's metered usage (and late usage of earlier months) once; card-route charges "
                "become Stripe invoices (with Stripe)"),
            Job("statement_close", Monthly(day=1, hour=1), self.statement_close,
                "close last month into bill-back statements (and their Stripe invoices with Stripe)"),
            Job("reconcile", Every(HOUR, offset_seconds=35 * 60), self.reconcile,
                "replay unanswered Stripe calls and re-handle failed Stripe events (with Stripe only)"),
            Job("approval_expiry", Every(5 * 60), self.approval_expiry,
                "expire approval requests whose time ran out, releasing their held budget"),
            Job("idempotency_purge", Every(HOUR, offset_seconds=20 * 60), self.idempotency_purge,
                "delete Idempotency-Key records past COMMERCE_IDEMPOTENCY_TTL_SECONDS"),
            Job("price_migrations", Every(HOUR, offset_seconds=10 * 60), self.price_migrations,
                "notify owners of scheduled price migrations COMMERCE_PRICE_NOTICE_DAYS ahead (renewals move them "
                "at the date)"),
            Job("suggestion_stats", Every(HOUR, offset_seconds=45 * 60), self.suggestion_stats,
                "recount the peer statistics of accounts older than COMMERCE_SUGGEST_STATS_TTL_SECONDS"),
            Job("webhook_dispatch", Every(60), self.webhook_dispatch,
                "one dispatcher pass (fan-out and due deliveries) even where no dispatcher loop runs"),
            Job("job_history_purge", Every(DAY, offset_seconds=3 * HOUR), self.job_history_purge,
                "delete finished job runs older than COMMERCE_JOB_HISTORY_DAYS"),
            Job("entitlement_changes_prune", Every(HOUR, offset_seconds=50 * 60), self.entitlement_changes_prune,
                "delete entitlement changes older than COMMERCE_CHANGES_RETENTION_SECONDS (plus an hour)"),
            Job("usage_partitions", Every(DAY, offset_seconds=2 * HOUR), self.usage_partitions,
                "prepare the coming months' usage event partitions, drop those past COMMERCE_USAGE_RETENTION_MONTHS"),
            Job("limit_near_alerts", Every(60), self.limit_near_alerts,
                "emit usage.limit_near once per user, feature and period at 80 % of a limit"),
            Job("unused_alerts", Every(HOUR, offset_seconds=25 * 60), self.unused_alerts,
                "emit entitlement.unused once per idle spell of a paid module (COMMERCE_UNUSED_ALERT_DAYS)"),
        ]
        if s.sweep_seconds > 0:
            jobs.append(Job("trial_sweep", Every(max(1, int(s.sweep_seconds))), self.trial_sweep,
                            "emit due entitlement.expired, trial.ending and trial.ended events"))
        return [j for j in jobs if j.name not in s.jobs_disabled]

    async def on_failure(self, session: AsyncSession, job: Job, run: JobRun) -> None:
        """The alert: a ``job.failed`` event in the same transaction that records the failure."""
        await emit_event(session, clock=self.clock, payload=JobFailed(
            job=job.name, slot_at=run.slot_at, attempts=run.attempts, error=run.error or "",
            failed_at=self.clock.now()))

    # -- the jobs -------------------------------------------------------------------------------------------

    def _real_stripe(self) -> Any | None:
        """The gateway when it talks to Stripe; the in-process fake is per process and knows too little."""
        return self.stripe if self.settings.stripe_mode == "stripe" else None

    async def billing_run(self, _slot: datetime) -> JobResult:
        from billing.stripe.flows import run_billing

        report = await run_billing(self.sessionmaker, self.stripe, settings=self.settings, clock=self.clock)
        if report.errors:
            raise RuntimeError(f"{len(report.errors)} renewal(s) failed: {', '.join(report.errors[:5])}")
        return {"renewed": report.renewed, "failed": report.failed, "ended": report.ended,
                "pending": report.pending, "skipped": report.skipped}

    async def statement_close(self, slot: datetime) -> JobResult:
        from billing.service._statements import close_period
        from billing.stripe.flows import invoice_period

        period = previous_period(slot)
        async with self.sessionmaker() as session, session.begin():
            result = await close_period(session, period=period, clock=self.clock)
        out: dict[str, Any] = {"period": period, "closed": len(result.closed),
                               "already_closed": len(result.already_closed), "still_open": len(result.still_open)}
        gateway = self._real_stripe()
        if gateway is not None:
            counts = await invoice_period(self.sessionmaker, gateway, period, clock=self.clock)
            if counts.get("errors") or counts.get("failed"):
                raise RuntimeError(f"invoicing {period} failed for some statements: {counts}")
            out.update({f"invoices_{k}": v for k, v in counts.items()})
        return out

    async def reconcile(self, _slot: datetime) -> JobResult:
        from billing.stripe.flows import reconcile

        gateway = self._real_stripe()
        if gateway is None:
            return {"skipped": "no Stripe secret key"}
        counts = await reconcile(self.sessionmaker, gateway, settings=self.settings, clock=self.clock)
        if counts.get("errors"):
            raise RuntimeError(f"reconcile left {counts['errors']} error(s): {counts}")
        return counts

    async def approval_expiry(self, _slot: datetime) -> JobResult:
        from billing.service._orders import expire_due_approvals

        total = 0
        while True:
            async with self.sessionmaker() as session, session.begin():
                n = await expire_due_approvals(session, clock=self.clock, limit=BATCH)
            total += n
            if n < BATCH:
                return {"expired": total}

    async def trial_sweep(self, _slot: datetime) -> JobResult:
        from entitlements.service import sweep

        total: dict[str, int] = {}
        while True:  # a pass handles a bounded batch; repeat until nothing is due
            async with self.sessionmaker() as session, session.begin():
                counts = await sweep(session, clock=self.clock, trial_ending_days=self.settings.trial_ending_days)
            for k, v in counts.items():
                total[k] = total.get(k, 0) + v
            if not any(counts.values()):
                return total

    async def limit_near_alerts(self, _slot: datetime) -> JobResult:
        from entitlements.service import alert_limits_near, catalog_view

        total = 0
        while True:  # a pass handles a bounded batch; repeat until nothing is due
            async with self.sessionmaker() as session, session.begin():
                found = await alert_limits_near(session, view=await catalog_view(session), clock=self.clock)
            total += found
            if not found:
                return {"usage.limit_near": total}

    async def unused_alerts(self, _slot: datetime) -> JobResult:
        from entitlements.service import alert_unused, catalog_view

        opened = closed = 0
        while True:
            async with self.sessionmaker() as session, session.begin():
                found, ended = await alert_unused(session, view=await catalog_view(session), clock=self.clock,
                                                  unused_days=self.settings.unused_alert_days)
            opened, closed = opened + found, closed + ended
            if not found:
                return {"entitlement.unused": opened, "idle_spells_ended": closed}

    async def idempotency_purge(self, _slot: datetime) -> JobResult:
        async with self.sessionmaker() as session, session.begin():
            return {"purged": await purge_expired(session, now=self.clock.now())}

    async def price_migrations(self, _slot: datetime) -> JobResult:
        from billing.service._price_migrations import send_notices

        # the move itself happens where the price is charged: each renewal (and each metered period) from the
        # date on bills the version in force, so a late or missed run of this job never bills the old price
        async with self.sessionmaker() as session, session.begin():
            return await send_notices(session, notice_days=self.settings.price_notice_days, clock=self.clock)

    async def usage_billing(self, slot: datetime) -> JobResult:
        from billing.service._metering import charge_usage
        from billing.stripe.flows import invoice_usage

        period = previous_period(slot)
        async with self.sessionmaker() as session, session.begin():
            charges = await charge_usage(session, period=period, clock=self.clock)
        amounts: dict[str, int] = {}
        for c in charges:  # money is never summed across currencies
            amounts[c.currency] = amounts.get(c.currency, 0) + c.amount_minor
        out: dict[str, Any] = {"period": period, "charges": len(charges), "amount_minor_by_currency": amounts}
        gateway = self._real_stripe()
        if gateway is not None:  # every pending card charge, this period's and any a failed run left
            counts = await invoice_usage(self.sessionmaker, gateway, clock=self.clock)
            if counts["failed"]:
                raise RuntimeError(f"invoicing usage failed for some users: {counts}")
            out.update({f"invoices_{k}": v for k, v in counts.items()})
        return out

    async def suggestion_stats(self, _slot: datetime) -> JobResult:
        from suggest.peers import refresh_account, stale_accounts

        now = self.clock.now()
        before = now - timedelta(seconds=self.settings.suggest_stats_ttl_seconds)
        async with self.sessionmaker() as session:
            accounts = await stale_accounts(session, before=before, limit=BATCH)
        for account_id in accounts:  # one transaction per account: a recount holds no lock on the others
            async with self.sessionmaker() as session, session.begin():
                await refresh_account(session, account_id, now=now, unused_days=self.settings.suggest_unused_days)
        return {"recounted": len(accounts)}

    async def webhook_dispatch(self, _slot: datetime) -> JobResult:
        from app.webhooks.dispatcher import Dispatcher

        dispatcher = Dispatcher(self.sessionmaker, settings=self.settings, clock=self.clock)
        try:
            return {"work": await dispatcher.run_once()}
        finally:
            await dispatcher.aclose()

    async def usage_partitions(self, _slot: datetime) -> JobResult:
        from entitlements.service import drop_expired, ensure_partitions

        now = self.clock.now()
        async with self.sessionmaker() as session, session.begin():
            created = await ensure_partitions(session, now=now)
            dropped = await drop_expired(session, now=now, retention_months=self.settings.usage_retention_months)
        return {"created": len(created), "dropped": len(dropped)}

    async def entitlement_changes_prune(self, _slot: datetime) -> JobResult:
        from entitlements.service._changes import prune_changes

        # an hour beyond the cursor retention: a transaction running when a cursor was issued has ended by then
        async with self.sessionmaker() as session, session.begin():
            return {"pruned": await prune_changes(
                session, older_than_seconds=self.settings.changes_retention_seconds + 3600)}

    async def job_history_purge(self, _slot: datetime) -> JobResult:
        before = self.clock.now() - timedelta(days=self.settings.job_history_days)
        async with self.sessionmaker() as session, session.begin():
            return {"purged": await purge_history(session, before=before)}


class JobsLoop:
    """The scheduler of one process and, when ``COMMERCE_SCHEDULER=on``, its running loop."""

    def __init__(self, *, sessionmaker: async_sessionmaker[AsyncSession], lock_engine: AsyncEngine,
                 settings: Settings, clock: Clock, stripe: Any | None) -> None:
        wiring = JobWiring(sessionmaker=sessionmaker, settings=settings, clock=clock, stripe=stripe)
        self.jobs = wiring.jobs()
        self.scheduler = Scheduler(self.jobs, sessionmaker=sessionmaker, lock_engine=lock_engine, clock=clock,
                                   poll_seconds=settings.jobs_poll_seconds, on_failure=wiring.on_failure)
        self.enabled = settings.scheduler == "on"
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.enabled:
            self._task = asyncio.create_task(self.scheduler.run(self._stop), name="job-scheduler")

    def health(self) -> str:
        """``off``, ``ok`` or ``stalled`` (the loop died or stopped ticking)."""
        if not self.enabled:
            return "off"
        if self._task is None or self._task.done() or not self.scheduler.healthy():
            return "stalled"
        return "ok"

    async def stop(self) -> None:
        """Stop polling; a job still running after the scheduler's grace is cancelled (its slot is retried)."""
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
