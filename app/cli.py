"""The ``commerce`` command (click): migrate, serve, worker, demo, keys, billing, catalog, entitlements, jobs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

import click
import msgspec

from app.settings import (
    FAKE_STRIPE_WARNING,
    Settings,
    SettingsError,
    load_settings,
    public_base_url,
    require_card_payments_decided,
)


@contextlib.contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """DATABASE_URL when set; otherwise the embedded server, started for the duration of the block."""
    if settings.database_url:
        yield settings.database_url
        return
    from app.embedded import embedded_url, start_embedded

    server = start_embedded(settings.data_dir)
    try:
        yield embedded_url(server)
    finally:
        server.cleanup()


async def _with_engine(url: str, settings: Settings, work: Any, *, migrates: bool = False) -> Any:
    """Run ``work(engine)``; unless the work migrates the database itself, its schema must be at head first."""
    from app.db import create_engine
    from app.migrate import require_head

    engine = create_engine(url, pool_size=2, max_overflow=2)
    try:
        if not migrates:
            await require_head(engine)
        return await work(engine)
    finally:
        await engine.dispose()


def _out(args: argparse.Namespace, text: str, data: Any) -> None:
    """Print ``text`` for people, or ``data`` as one JSON document with ``--json`` (for scripts)."""
    if getattr(args, "json", False):
        import msgspec

        print(msgspec.json.encode(data).decode())
    else:
        print(text)


def _no_progress(done: int, total: int | None) -> None:
    """Progress reports go nowhere off a terminal and with --json."""


@contextlib.contextmanager
def working(args: argparse.Namespace, message: str) -> Iterator[Any]:
    """A progress bar with elapsed time on stderr while long work runs (only on a terminal, never with --json).

    Yields ``progress(done, total)`` for work that counts its items (a pulsing bar with the count while the
    total is unknown); work that does not count shows the bar pulsing with the elapsed time.
    """
    if getattr(args, "json", False) or not sys.stderr.isatty():
        yield _no_progress
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(message, total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield progress


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from app.migrate import upgrade

    with database_url(settings) as url, working(args, "migrating the database"):
        asyncio.run(_with_engine(url, settings, upgrade, migrates=True))
    print("database migrated to head")
    return 0


def _binding(external: Any) -> str:
    return "all (global key)" if external is None else ",".join(sorted(external))


async def _bound_accounts(session: Any, refs: list[str] | None) -> dict[str, str] | None:
    """``--account`` external ids -> {internal id: external id}; None for a global key; unknown ids fail."""
    from app.accounts.service import get_account
    from app.keys import MAX_BOUND_ACCOUNTS

    if not refs:
        return None
    if len(set(refs)) > MAX_BOUND_ACCOUNTS:
        raise ValueError(f"a key may be bound to at most {MAX_BOUND_ACCOUNTS} accounts")
    out = {}
    for ref in sorted(set(refs)):
        account = await get_account(session, ref)
        if account is None:
            raise ValueError(f"account {ref!r} does not exist")
        out[account.account_id] = account.external_id
    return out


def cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    from app import audit, keys, wiring
    from app.accounts.service import external_ids
    from app.clock import SystemClock
    from app.notify import notify
    from app.scopes import parse_scopes

    clock = SystemClock()

    async def work(engine: Any) -> int:
        async with wiring.sessionmaker(engine, settings)() as session, session.begin():
            if args.keys_command == "create":
                scopes = parse_scopes(args.scopes)
                bound = await _bound_accounts(session, args.account)
                new = await keys.create_key(session, name=args.name, scopes=scopes, clock=clock,
                                            account_ids=None if bound is None else frozenset(bound))
                await audit.record(session, clock=clock, actor="cli", action="api_key.created",
                                   target_type="api_key", target_id=new.key.key_id,
                                   after={"name": args.name, "scopes": sorted(scopes),
                                          "accounts": None if bound is None else sorted(bound.values())})
                accounts = None if bound is None else sorted(bound.values())
                _out(args, f"key id:  {new.key.key_id}\nscopes:  {','.join(sorted(scopes))}\n"
                           f"accounts: {_binding(accounts)}\nsecret:  {new.secret}\n(shown once: store it now)",
                     {"key_id": new.key.key_id, "scopes": sorted(scopes), "accounts": accounts, "secret": new.secret})
            elif args.keys_command == "list":
                rows = await keys.list_keys(session)
                names = await external_ids(session, [a for k in rows for a in k.account_ids or ()])
                lines, data = [], []
                for k in rows:
                    state = "revoked" if k.revoked_at else "active"
                    binding = None if k.account_ids is None else [names[a] for a in k.account_ids]
                    lines.append(f"{k.key_id}  {state:8}  {k.name}  [{','.join(k.scopes)}]  accounts: "
                                 f"{_binding(binding)}  last used: {k.last_used_at}")
                    data.append({"key_id": k.key_id, "state": state, "name": k.name, "scopes": list(k.scopes),
                                 "accounts": binding, "last_used_at": k.last_used_at})
                _out(args, "\n".join(lines), data)
            else:
                await keys.revoke_key(session, args.key_id, clock=clock)
                await notify(session, "key", args.key_id)
                await audit.record(session, clock=clock, actor="cli", action="api_key.revoked",
                                   target_type="api_key", target_id=args.key_id)
                _out(args, f"revoked {args.key_id}", {"key_id": args.key_id, "state": "revoked"})
        return 0

    with database_url(settings) as url:
        result: int = asyncio.run(_with_engine(url, settings, work))
        return result


def _serve(settings: Settings, url: str) -> None:
    from granian import Granian
    from granian.constants import Interfaces

    os.environ["DATABASE_URL"] = url  # worker processes share the one database (embedded or not)
    os.environ["COMMERCE_SERVE_PID"] = str(os.getpid())  # workers exit when this process dies (app_factory)
    Granian(
        "app.asgi:app_factory", factory=True, address=settings.host, port=settings.port,
        workers=settings.workers, interface=Interfaces.ASGI, log_access=False,
        # a worker that has not stopped 20 s after SIGTERM is killed: once, with SIGTERM sent to the server and
        # its worker at the same moment (pkill -f), a worker never left its serving loop and the server waited
        # for it forever, its Stripe fake, host page and database still running (a killed worker's requests are
        # safe to retry: Idempotency-Key, one transaction per request)
        workers_kill_timeout=20,
    ).serve()


def _check_card_payments(settings: Settings) -> None:
    """Refuse to serve with card payments undecided; shout when the Stripe fake is in use."""
    require_card_payments_decided(settings)
    if settings.stripe_mode == "fake":
        print(f"\n  WARNING {FAKE_STRIPE_WARNING}\n", file=sys.stderr)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from app.migrate import upgrade

    _check_card_payments(settings)
    with database_url(settings) as url:
        if args.migrate:
            asyncio.run(_with_engine(url, settings, upgrade, migrates=True))
        print(f"serving on http://{settings.host}:{settings.port}  (API docs: /schema, health: /healthz)")
        _serve(settings, url)
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from app.demo import seed_demo
    from app.migrate import upgrade
    from app.stripe_wiring import demo_stripe_fake
    from web.demo_host import serve_host_page

    _check_card_payments(settings)
    if "COMMERCE_SUGGEST_HOLDOUT_PCT" not in os.environ:
        # every demo user sees suggestions: with the default holdout (10 %, drawn by a hash of the user's id, which
        # each new demo database draws anew) Ana, the user the demo starts with, saw none in one demo out of ten
        os.environ["COMMERCE_SUGGEST_HOLDOUT_PCT"] = "0"
        settings = msgspec.structs.replace(settings, suggest_holdout_pct=0)
    with database_url(settings) as url:
        async def prepare(engine: Any) -> tuple[str, str, str]:
            await upgrade(engine)
            key = await seed_demo(engine, settings)
            admin, _ = await mint_console_path(engine, settings, email=None, account="acme", user="acme-alice")
            vendor, _ = await mint_console_path(engine, settings, email="offers@vendor.test", account=None, user=None)
            return key, admin, vendor

        demo_key, admin_path, vendor_path = asyncio.run(_with_engine(url, settings, prepare, migrates=True))
        base = f"http://{settings.host}:{settings.port}"
        host_port = args.host_page_port or settings.port + 1
        host_origin = f"http://{settings.host}:{host_port}"
        # the host page is another origin: the browser calls the API from there (CORS), as a vendor's page would
        os.environ["COMMERCE_CORS_ORIGINS"] = ",".join(
            o for o in (os.environ.get("COMMERCE_CORS_ORIGINS", ""), host_origin) if o)
        with contextlib.ExitStack() as stack:
            real = settings.stripe_mode != "fake"
            fake_url = None if real else stack.enter_context(demo_stripe_fake(settings, port=args.stripe_fake_port))
            stack.enter_context(serve_host_page(api_url=base, key_file=settings.data_dir / "demo-vendor-key",
                                                host=settings.host, port=host_port, stripe_fake_url=fake_url))
            print("\n  Demo ready.")
            print(f"  Demo host page:  {host_origin}/  (a vendor's app embedding the widget; see docs/widget.md)")
            print(f"  Admin console:   {base}{admin_path}  (Alice, admin of Acme)")
            print(f"  Vendor console:  {base}{vendor_path}")
            print("                   (one-time links, valid 15 minutes; more from another shell with")
            print("                   .venv/bin/commerce console-link --account acme --user acme-alice")
            print("                   .venv/bin/commerce console-link --email offers@vendor.test)")
            print(f"  API docs:        {base}/schema")
            print(f"  Health:          {base}/healthz")
            print(f"  Demo vendor key: {demo_key}")
            print(f"  Try:  curl -H 'Authorization: Bearer {demo_key}' {base}/v1/accounts")
            if settings.suggest_holdout_pct == 0:
                print("  Suggestions:     no holdout group in the demo (COMMERCE_SUGGEST_HOLDOUT_PCT=0)")
            if settings.stripe_mode == "off":
                print("  Card payments:   off (COMMERCE_STRIPE=off); see docs/payments.md\n")
            elif fake_url is None:
                print("  Card payments:   Stripe (STRIPE_SECRET_KEY); see docs/payments.md\n")
            else:
                print(f"  Stripe fake: {fake_url}  (card payments; see docs/payments.md)")
                jobs = " ".join(f"{k}={os.environ[k]}" for k in ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET",
                                                                 "STRIPE_API_BASE"))
                print(f"  Billing jobs:    {jobs} commerce billing run\n")
            _serve(settings, url)
    return 0


async def mint_console_path(engine: Any, settings: Settings, *, email: str | None, account: str | None,
                            user: str | None) -> tuple[str, Any]:
    """A one-time console sign-in path: the vendor console for ``email``, else the admin console of the user."""
    from app import wiring
    from app.accounts.schemas import AdminConsoleLink, ConsoleLinkCreate, VendorConsoleLink
    from app.accounts.service import mint_console_link
    from app.auth import VendorPrincipal
    from app.clock import SystemClock
    from app.scopes import SCOPES

    operator = VendorPrincipal(key_id="cli", scopes=frozenset(SCOPES))
    assert email is not None or (account is not None and user is not None)
    data: ConsoleLinkCreate = VendorConsoleLink(email=email) if email is not None else AdminConsoleLink(
        account=account or "", user=user or "")
    async with wiring.sessionmaker(engine, settings)() as session, session.begin():
        return await mint_console_link(session, data, principal=operator, settings=settings, clock=SystemClock())


def cmd_console_link(settings: Settings, args: argparse.Namespace) -> int:
    """Print a one-time console sign-in link (vendor staff by --email, or a customer admin by --account --user)."""
    if (args.email is None) == (args.account is None or args.user is None):
        print("commerce console-link: give --email (vendor console) or --account and --user (admin console)",
              file=sys.stderr)
        return EXIT_USAGE
    with database_url(settings) as url:
        path, expires_at = asyncio.run(_with_engine(url, settings, lambda engine: mint_console_path(
            engine, settings, email=args.email, account=args.account, user=args.user)))
    print(f"{public_base_url(settings)}{path}")
    print(f"(one use, valid until {expires_at.isoformat()})", file=sys.stderr)
    return EXIT_OK


def cmd_catalog(settings: Settings, args: argparse.Namespace) -> int:
    """Plan, apply or export the catalog as code (TOML)."""
    from app import wiring
    from app.clock import SystemClock
    from app.errors import DomainError
    from catalog import service
    from catalog.domain import render_plan
    from catalog.spec import to_toml

    clock = SystemClock()

    async def work(engine: Any) -> int:
        from app.migrate import upgrade

        await upgrade(engine)  # like serve: a fresh embedded database is usable at once
        async with wiring.sessionmaker(engine, settings)() as session, session.begin():
            if args.catalog_command == "export":
                print(to_toml(await service.export_document(session)), end="")
                return 0
            doc = service.parse_source(toml=source)
            if args.catalog_command == "plan":
                planned = await service.plan_document(session, doc, clock=clock)
                print(render_plan(planned.base_revision, planned.changes))
                return 0
            result = await service.apply_document(session, doc, actor="cli", clock=clock)
            if not result.applied:
                print(f"No changes: the live catalog (revision {result.revision}) already matches {args.file}.")
            else:
                print(render_plan(result.base_revision, result.changes))
                print(f"Applied as revision {result.revision}.")
            return 0

    source = ""
    if args.catalog_command in ("plan", "apply"):
        try:
            with open(args.file, encoding="utf-8") as fh:
                source = fh.read()
        except OSError as exc:
            print(f"commerce: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return 2
    with database_url(settings) as url:
        try:
            with working(args, f"catalog {args.catalog_command}"):
                code: int = asyncio.run(_with_engine(url, settings, work, migrates=True))
        except DomainError as exc:
            print(f"commerce: {exc.detail}", file=sys.stderr)
            for err in exc.errors or []:
                print(f"  {err.field}: {err.message}", file=sys.stderr)
            return 1
        return code
def _job_resources(url: str, settings: Settings) -> Any:
    """Engines, the job list and the Stripe gateway (real Stripe only: a CLI's own fake knows no payments)."""
    from app import wiring
    from app.clock import SystemClock
    from app.db import create_engine, create_lock_engine
    from app.jobs.wiring import JobsLoop
    from app.stripe_wiring import create_gateway

    engine = create_engine(url, pool_size=4, max_overflow=settings.webhook_concurrency)
    lock_engine = create_lock_engine(url, pool_size=2, max_overflow=4)
    gateway = create_gateway(settings) if settings.stripe_mode == "stripe" else None
    jobs = JobsLoop(sessionmaker=wiring.sessionmaker(engine, settings), lock_engine=lock_engine, settings=settings,
                    clock=SystemClock(), stripe=gateway)

    async def close() -> None:
        await jobs.stop()
        if gateway is not None:
            await gateway.close()
        await engine.dispose()
        await lock_engine.dispose()

    return engine, jobs, close


def cmd_worker(settings: Settings, _args: argparse.Namespace) -> int:
    """Run the webhook dispatcher and the job scheduler until SIGINT/SIGTERM (any number, on any hosts)."""
    import signal

    from app import wiring
    from app.clock import SystemClock
    from app.migrate import require_head
    from app.webhooks.dispatcher import Dispatcher

    async def work(url: str) -> None:
        engine, jobs, close = _job_resources(url, settings)
        try:
            await require_head(engine)  # started before `commerce migrate`: exit 2, the orchestrator restarts it
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            jobs.start()  # COMMERCE_SCHEDULER=off leaves the jobs to other processes
            role = "and job scheduler " if settings.scheduler == "on" else ""
            print(f"webhook dispatcher {role}running (Ctrl-C to stop)", flush=True)
            await Dispatcher(wiring.sessionmaker(engine, settings), settings=settings, clock=SystemClock()).run(stop)
        finally:
            await close()

    with database_url(settings) as url:
        asyncio.run(work(url))
    return 0


def cmd_jobs(settings: Settings, args: argparse.Namespace) -> int:
    """``jobs list``: each job's last run and next run; ``jobs run NAME``: run one now (once across instances)."""
    from app.clock import SystemClock
    from app.jobs.status import job_status
    from app.migrate import require_head

    async def work(url: str) -> int:
        engine, jobs, close = _job_resources(url, settings)
        try:
            await require_head(engine)
            names = [j.name for j in jobs.jobs]
            if args.jobs_command == "list":
                async with jobs.scheduler.sessionmaker() as session:
                    rows = await job_status(session, jobs.jobs, now=SystemClock().now())
                _out(args, _jobs_table(rows), rows)
                return 0
            if args.name not in names:
                raise ValueError(f"unknown job {args.name!r}; jobs: {', '.join(names)}")
            with working(args, f"running {args.name}"):
                ran = await jobs.scheduler.run_now(args.name)
            if ran is None:
                print(f"commerce: {args.name} is running in another process; try again later", file=sys.stderr)
                return 1
            _out(args, f"{ran.job}: {ran.status} in {ran.duration_ms} ms  {ran.error or ran.detail}", ran)
            return 0 if ran.status == "succeeded" else 1
        finally:
            await close()

    with database_url(settings) as url:
        code: int = asyncio.run(work(url))
        return code


def cmd_citus_ddl(settings: Settings, _args: argparse.Namespace) -> int:
    """Migrate (a fresh embedded database is usable at once), then print the distribution statements."""
    from app.citus import distribution_ddl
    from app.migrate import upgrade

    async def work(engine: Any) -> str:
        await upgrade(engine)
        async with engine.connect() as conn:
            ddl: str = await distribution_ddl(conn)
            return ddl

    with database_url(settings) as url:
        print(asyncio.run(_with_engine(url, settings, work, migrates=True)))
    return 0


def _jobs_table(rows: list[Any]) -> str:
    """The jobs as a table for people (rich renders it to text)."""
    from rich.console import Console
    from rich.table import Table

    def when(t: Any) -> str:
        return "-" if t is None else t.strftime("%Y-%m-%d %H:%M:%S")

    table = Table("job", "schedule", "last run", "outcome", "duration", "next run", box=None, pad_edge=False)
    for r in rows:
        duration = "-" if r.last_duration_ms is None else f"{r.last_duration_ms} ms"
        outcome = r.last_status or "never ran"
        if r.last_error and r.last_status != "succeeded":
            outcome += f" ({r.last_error[:60]})"
        table.add_row(r.name, r.schedule, when(r.last_started_at), outcome, duration, when(r.next_run_at))
    console = Console(width=160, record=True, file=None, force_terminal=False)
    with console.capture() as capture:
        console.print(table)
    return capture.get().rstrip()


def cmd_entitlements(settings: Settings, args: argparse.Namespace) -> int:
    """One sweep: emit the entitlement.expired, trial.ending, trial.ended, usage.limit_near and entitlement.unused
    events that are due (idempotent)."""
    from app import wiring
    from app.clock import SystemClock
    from entitlements.service import catalog_view, sweep, sweep_alerts

    async def work(engine: Any) -> int:
        total: dict[str, int] = {}
        while True:  # a pass handles a bounded batch; repeat until nothing is due
            async with wiring.sessionmaker(engine, settings)() as session, session.begin():
                counts = await sweep(session, clock=SystemClock(), trial_ending_days=settings.trial_ending_days)
                counts |= await sweep_alerts(session, view=await catalog_view(session), clock=SystemClock(),
                                             unused_days=settings.unused_alert_days)
            for k, v in counts.items():
                total[k] = total.get(k, 0) + v
            if not any(counts.values()):
                break
        _out(args, ", ".join(f"{k}: {v}" for k, v in sorted(total.items())), total)
        return 0

    with database_url(settings) as url, working(args, "sweeping entitlements"):
        code: int = asyncio.run(_with_engine(url, settings, work))
        return code


def cmd_db_url(settings: Settings, _args: argparse.Namespace) -> int:
    """Print a psql-ready URL of the database (the embedded one joins the running server)."""
    with database_url(settings) as url:
        print(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    return 0


def _close_period(args: argparse.Namespace, clock: Any, settings: Settings) -> Any:
    """``billing close`` (statements) and ``billing expire-approvals``: one transaction, no Stripe.

    The work returns (text for people, data for ``--json``); the caller prints them once.
    """
    from app import wiring
    from billing.service._orders import expire_due_approvals
    from billing.service._statements import close_period

    async def work(engine: Any) -> tuple[str, dict[str, Any]]:
        async with wiring.sessionmaker(engine, settings)() as session, session.begin():
            if args.billing_command != "close":
                expired = await expire_due_approvals(session, clock=clock)
                return f"{expired} approval request(s) expired", {"expired": expired}
            result = await close_period(session, period=args.period, clock=clock)
        lines = [f"closed    {st.statement_id}  account {st.account_id}  {st.total_minor} {st.currency}"
                 for st in result.closed]
        lines += [f"unchanged {st.statement_id}  account {st.account_id} (closed before)"
                  for st in result.already_closed]
        lines += [f"open      account {external_id}: its budget period has not ended yet"
                  for external_id in result.still_open]
        lines.append(f"{len(result.closed)} statement(s) closed for {args.period}")
        return "\n".join(lines), {
            "period": args.period,
            "closed": [{"statement_id": st.statement_id, "account_id": st.account_id, "total_minor": st.total_minor,
                        "currency": st.currency} for st in result.closed],
            "already_closed": [st.statement_id for st in result.already_closed],
            "still_open": list(result.still_open)}

    return work


async def _usage(engine: Any, args: argparse.Namespace, settings: Settings, clock: Any, *, real_stripe: bool) -> int:
    """``billing usage``: charge the period's metered usage once (one transaction), then, with Stripe, send the
    card route's pending charges as invoices (the ``usage_billing`` job's work)."""
    from app import wiring
    from app.stripe_wiring import create_gateway
    from billing.service._metering import charge_usage
    from billing.stripe.flows import invoice_usage

    sessionmaker = wiring.sessionmaker(engine, settings)
    async with sessionmaker() as session, session.begin():
        charges = await charge_usage(session, period=args.period, clock=clock)
    data: dict[str, Any] = {"period": args.period, "charges": [
        {"charge_id": c.charge_id, "account_id": c.account_id, "module": c.module, "kind": c.kind,
         "usage_period": c.usage_period, "amount_minor": c.amount_minor, "currency": c.currency, "route": c.route}
        for c in charges]}
    text = "\n".join(f"charged   {c.charge_id}  account {c.account_id}  {c.module} {c.kind} {c.usage_period}  "
                     f"{c.amount_minor} {c.currency} ({c.route})" for c in charges)
    text += f"\n{len(charges)} usage charge(s) for {args.period}"
    gateway = create_gateway(settings) if real_stripe else None
    if gateway is None:
        _out(args, text.strip(), data)
        print("card-route usage not invoiced: set STRIPE_SECRET_KEY, then run this again", file=sys.stderr)
        return 0
    try:
        counts = await invoice_usage(sessionmaker, gateway, clock=clock)
    finally:
        await gateway.close()
    _out(args, f"{text.strip()}\ninvoices: {counts['invoiced']} sent, {counts['failed']} failed",
         {**data, "invoices": counts})
    return 1 if counts["failed"] else 0


def cmd_billing(settings: Settings, args: argparse.Namespace) -> int:
    """Billing jobs: ``close`` (statements, then their Stripe invoices), ``expire-approvals``, ``run``
    (renewals and dunning), ``reconcile`` (repair from Stripe) and ``invoice`` (bill-back invoices only).

    Stripe work uses the same gateway as the service: STRIPE_SECRET_KEY for real Stripe (add
    STRIPE_API_BASE to point at a fake served on loopback). Without a key, a CLI process would get its own
    empty in-process fake, which knows none of the service's payments: ``close`` only closes statements,
    ``reconcile`` and ``invoice`` refuse, and ``run`` renews budget-route subscriptions only.
    """
    from app import wiring
    from app.clock import SystemClock
    from app.stripe_wiring import create_gateway

    clock = SystemClock()
    if args.billing_command in ("close", "invoice", "usage") and not re.fullmatch(r"[0-9]{4}-(0[1-9]|1[0-2])",
                                                                                 args.period):
        raise ValueError(f"--period must look like 2026-11, got {args.period!r}")
    real_stripe = settings.stripe_mode == "stripe"

    async def work(engine: Any) -> int:
        from billing.stripe.flows import invoice_period, reconcile, run_billing

        closed: tuple[str, dict[str, Any]] | None = None
        if args.billing_command == "usage":
            return await _usage(engine, args, settings, clock, real_stripe=real_stripe)
        if args.billing_command in ("close", "expire-approvals"):
            closed = await _close_period(args, clock, settings)(engine)
            if args.billing_command == "expire-approvals" or not real_stripe:
                _out(args, *closed)
                if args.billing_command == "close":
                    print("invoices not created: set STRIPE_SECRET_KEY, then run `commerce billing invoice`",
                          file=sys.stderr)
                return 0
        sessionmaker = wiring.sessionmaker(engine, settings)
        gateway = create_gateway(settings) if real_stripe else None
        try:
            if args.billing_command == "run":
                report = await run_billing(sessionmaker, gateway, settings=settings, clock=clock, progress=progress)
                _out(args, str(report), report)
                return 1 if report.errors else 0
            if gateway is None:
                print("commerce: set STRIPE_SECRET_KEY (plus STRIPE_API_BASE for a fake on loopback)", file=sys.stderr)
                return 2
            if args.billing_command == "reconcile":
                counts = await reconcile(sessionmaker, gateway, settings=settings, clock=clock)
            else:  # invoice, or the invoicing step of close
                counts = await invoice_period(sessionmaker, gateway, args.period, clock=clock, progress=progress)
            text = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
            if closed is None:
                _out(args, text, counts)
            else:  # close, then its invoices: one report
                _out(args, f"{closed[0]}\ninvoices: {text}", {**closed[1], "invoices": counts})
            return 1 if counts.get("errors") or counts.get("failed") else 0
        finally:
            if gateway is not None:
                await gateway.close()

    with database_url(settings) as url, working(args, f"billing {args.billing_command}") as progress:
        result: int = asyncio.run(_with_engine(url, settings, work))
        return result


def cmd_suggest(settings: Settings, args: argparse.Namespace) -> int:
    """``suggest backtest --at DATE``: how well suggestions made then named what users bought after;
    ``suggest fit``: learn weights from the history so far and store them as a new version (served at once)."""
    from datetime import UTC, date, datetime, time

    from app import wiring
    from app.clock import SystemClock
    from app.errors import DomainError
    from suggest import learning

    clock = SystemClock()
    if args.suggest_command == "backtest":
        try:
            at = datetime.combine(date.fromisoformat(args.at), time.min, tzinfo=UTC)
        except ValueError:
            raise ValueError(f"--at must be a date like 2026-10-01, got {args.at!r}") from None

    async def work(engine: Any) -> int:
        async with wiring.sessionmaker(engine, settings)() as session, session.begin():
            if args.suggest_command == "backtest":
                report = await learning.backtest(session, at=at, now=clock.now(), window_days=args.window_days,
                                                 k=args.k)
                print(f"at {report.at.date()}, window {report.window_days} days: {report.users} users, "
                      f"{report.buyers} bought {report.purchases} modules"
                      + (" (history truncated)" if report.truncated else ""))
                print(f"{'strategy':<28}{'recall@' + str(report.k):>10}{'precision':>11}{'hit rate':>10}{'lift':>7}")
                for s in report.scores:
                    lift = f"{s.lift_over_popularity:.2f}" if s.lift_over_popularity is not None else "-"
                    print(f"{s.strategy:<28}{s.recall:>10.3f}{s.precision:>11.3f}{s.hit_rate:>10.3f}{lift:>7}")
                if report.learned_note:
                    print(f"learned weights: {report.learned_note}")
            else:
                w = await learning.fit_weights(session, now=clock.now(), window_days=args.window_days)
                print(f"weights version {w.version}: {'learned' if w.learned else 'defaults'}; {w.note}")
                print(", ".join(f"{k}={v}" for k, v in [("bias", w.bias), *w.weights.items()]))
        return 0

    with database_url(settings) as url:
        try:
            code: int = asyncio.run(_with_engine(url, settings, work))
        except DomainError as exc:
            print(f"commerce: {exc.detail}", file=sys.stderr)
            return 1
        return code


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    """``import FILE``: a customer history as NDJSON (the format of POST /v1/imports), streamed, in one
    transaction, with a progress bar on stderr; invalid lines are listed and the rest is imported."""
    import time
    from pathlib import Path

    from app import wiring
    from app.clock import SystemClock
    from entitlements.service import catalog_view
    from suggest import imports

    path = Path(args.file)
    try:
        total = path.stat().st_size
        source = path.open("rb")  # read in the CLI's own thread pool below: the event loop never blocks on disk
    except OSError as exc:
        print(f"commerce: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    read = [0]
    started = time.monotonic()

    async def chunks() -> Any:
        while chunk := await asyncio.to_thread(source.read, 1 << 20):
            read[0] += len(chunk)
            yield chunk

    def progress(lines: int) -> None:
        done = read[0] / total if total else 1.0
        rate = lines / max(time.monotonic() - started, 1e-6)
        bar = "#" * int(30 * done)
        print(f"\r[{bar:<30}] {100 * done:5.1f}%  {lines:,} lines  {rate:,.0f} lines/s", end="", file=sys.stderr)

    async def work(engine: Any) -> int:
        async with wiring.sessionmaker(engine, settings)() as session, session.begin():
            view = await catalog_view(session)
            report = await imports.import_history(session, chunks(), clock=SystemClock(), view=view,
                                                  actor="cli:import", unused_days=settings.suggest_unused_days,
                                                  progress=progress)
        print(file=sys.stderr)
        print(f"{report.lines:,} lines: " + ", ".join(f"{k} {v:,}" for k, v in report.imported.items())
              + f"; {report.errors:,} invalid; {report.recounted_accounts} accounts recounted")
        for err in report.first_errors:
            print(f"  line {err.line}: {err.message}")
        return 1 if report.errors else 0

    with source, database_url(settings) as url:
        code: int = asyncio.run(_with_engine(url, settings, work))
        return code


# --- the command line (click): options map onto the ``args`` namespace each cmd_* function reads -----------

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2  # done; work failed (retry later); bad input or configuration
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}
SERVER_OPTIONS = ("workers", "host", "port")


def _invoke(command: Any, **params: Any) -> None:
    """Load settings (with --host/--port/--workers), run ``command`` and exit with its code."""
    from app.logs import configure_logging
    from app.wiring import check_settings

    overrides = {k: params[k] for k in SERVER_OPTIONS if params.get(k) is not None}
    settings = check_settings(load_settings(**overrides))
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    raise SystemExit(command(settings, argparse.Namespace(**params)))


@click.group(context_settings=CONTEXT)
@click.version_option("0.1.0", prog_name="commerce")
def cli() -> None:
    """In-product commerce and entitlements.

    Settings come from the environment (see the README's configuration table). Exit codes: 0 done,
    1 some work failed and will be retried by the next run, 2 bad input or configuration.
    """


def _server_options(f: Any) -> Any:
    f = click.option("--workers", type=click.IntRange(1, 256), help="worker processes (default COMMERCE_WORKERS)")(f)
    f = click.option("--host", help="listen address (default COMMERCE_HOST)")(f)
    return click.option("--port", type=click.IntRange(1, 65535), help="listen port (default COMMERCE_PORT)")(f)


@cli.command(context_settings=CONTEXT)
def migrate() -> None:
    """Apply database migrations up to head."""
    _invoke(cmd_migrate)


@cli.command(context_settings=CONTEXT)
@_server_options
@click.option("--no-migrate", "migrate", flag_value=False, default=True, help="do not migrate at start")
def serve(**params: Any) -> None:
    """Run the HTTP service (granian, N worker processes)."""
    _invoke(cmd_serve, **params)


@cli.command(context_settings=CONTEXT)
@_server_options
@click.option("--stripe-fake-port", type=click.IntRange(1, 65535), default=12111, show_default=True,
              help="loopback port of the local Stripe fake (unused with STRIPE_SECRET_KEY)")
@click.option("--host-page-port", type=click.IntRange(1, 65535), default=None,
              help="port of the demo host page (default: the API's port + 1)")
def demo(**params: Any) -> None:
    """Migrate, seed demo data and serve."""
    _invoke(cmd_demo, **params)


@cli.command(context_settings=CONTEXT)
def worker() -> None:
    """Run the webhook dispatcher and the job scheduler until SIGINT/SIGTERM (as many as you like)."""
    _invoke(cmd_worker)


@cli.command("console-link", context_settings=CONTEXT)
@click.option("--email", help="vendor console: the staff member's email")
@click.option("--account", help="admin console: the account's external id")
@click.option("--user", help="admin console: the admin's external id")
def console_link(**params: Any) -> None:
    """Print a one-time console sign-in link (the vendor console, or one customer admin's)."""
    _invoke(cmd_console_link, **params)


@cli.command("db-url", context_settings=CONTEXT)
def db_url() -> None:
    """Print the database URL (for psql)."""
    _invoke(cmd_db_url)


@cli.group(context_settings=CONTEXT)
def keys() -> None:
    """Vendor API keys."""


JSON = click.option("--json", "json", is_flag=True, help="print one JSON document (for scripts)")


@keys.command("create", context_settings=CONTEXT)
@JSON
@click.option("--name", required=True, help="a name for the key")
@click.option("--scopes", required=True, help="comma-separated scopes, or 'all'")
@click.option("--account", multiple=True, metavar="EXTERNAL_ID",
              help="bind the key to this account (repeat for several); without it the key is global")
def keys_create(name: str, scopes: str, account: tuple[str, ...], json: bool) -> None:
    """Create a key and print its secret once."""
    _invoke(cmd_keys, keys_command="create", name=name, scopes=scopes, account=list(account) or None, json=json)


@keys.command("list", context_settings=CONTEXT)
@JSON
def keys_list(json: bool) -> None:
    """List keys."""
    _invoke(cmd_keys, keys_command="list", json=json)


@keys.command("revoke", context_settings=CONTEXT)
@JSON
@click.argument("key_id")
def keys_revoke(key_id: str, json: bool) -> None:
    """Revoke a key (exit 2 when no key has that id)."""
    _invoke(cmd_keys, keys_command="revoke", key_id=key_id, json=json)


@cli.group(context_settings=CONTEXT)
def billing() -> None:
    """Statements, invoices, renewals, approval expiry, reconciliation (also scheduled jobs)."""


PERIOD = click.option("--period", required=True, help="YYYY-MM")


@billing.command("close", context_settings=CONTEXT)
@JSON
@PERIOD
def billing_close(period: str, json: bool) -> None:
    """Close a period: one statement per account with budget spend, then its Stripe invoice (with Stripe)."""
    _invoke(cmd_billing, billing_command="close", period=period, json=json)


@billing.command("expire-approvals", context_settings=CONTEXT)
@JSON
def billing_expire_approvals(json: bool) -> None:
    """Expire approval requests whose time ran out."""
    _invoke(cmd_billing, billing_command="expire-approvals", json=json)


@billing.command("run", context_settings=CONTEXT)
@JSON
def billing_run(json: bool) -> None:
    """Renew due subscriptions (both routes) and run dunning; idempotent."""
    _invoke(cmd_billing, billing_command="run", json=json)


@billing.command("reconcile", context_settings=CONTEXT)
@JSON
def billing_reconcile(json: bool) -> None:
    """Replay unresolved card payments and refunds, re-handle failed events."""
    _invoke(cmd_billing, billing_command="reconcile", json=json)


@billing.command("invoice", context_settings=CONTEXT)
@JSON
@PERIOD
def billing_invoice(period: str, json: bool) -> None:
    """Create the Stripe invoices of a closed period's statements."""
    _invoke(cmd_billing, billing_command="invoice", period=period, json=json)


@billing.command("usage", context_settings=CONTEXT)
@JSON
@PERIOD
def billing_usage(period: str, json: bool) -> None:
    """Charge a closed month's metered usage (and late usage of earlier months) once; with Stripe, invoice the
    card route's charges. The usage_billing job does this on the 1st."""
    _invoke(cmd_billing, billing_command="usage", period=period, json=json)


@cli.group(context_settings=CONTEXT)
def catalog() -> None:
    """The module catalog as code (TOML)."""


@catalog.command("plan", context_settings=CONTEXT)
@click.argument("file")
def catalog_plan(file: str) -> None:
    """Show what applying FILE would change."""
    _invoke(cmd_catalog, catalog_command="plan", file=file)


@catalog.command("apply", context_settings=CONTEXT)
@click.argument("file")
def catalog_apply(file: str) -> None:
    """Apply FILE as a new catalog revision (all or nothing)."""
    _invoke(cmd_catalog, catalog_command="apply", file=file)


@catalog.command("export", context_settings=CONTEXT)
def catalog_export() -> None:
    """Print the live catalog as TOML."""
    _invoke(cmd_catalog, catalog_command="export")


@cli.group(context_settings=CONTEXT)
def entitlements() -> None:
    """Entitlement maintenance."""


@entitlements.command("sweep", context_settings=CONTEXT)
@JSON
def entitlements_sweep(json: bool) -> None:
    """Emit due expiry and trial events (idempotent; safe to run any time)."""
    _invoke(cmd_entitlements, entitlements_command="sweep", json=json)


@cli.group(context_settings=CONTEXT)
def jobs() -> None:
    """Scheduled jobs (run inside `serve` and `worker`; each slot once across every instance)."""


@jobs.command("list", context_settings=CONTEXT)
@JSON
def jobs_list(json: bool) -> None:
    """Each job's schedule, last run (outcome, duration) and next run."""
    _invoke(cmd_jobs, jobs_command="list", json=json)


@jobs.command("run", context_settings=CONTEXT)
@JSON
@click.argument("name")
def jobs_run(name: str, json: bool) -> None:
    """Run job NAME now (exit 1 when it fails or another process is running it)."""
    _invoke(cmd_jobs, jobs_command="run", name=name, json=json)



@cli.command("import", context_settings=CONTEXT)
@click.argument("file", type=click.Path(dir_okay=False))
def import_history(**params: Any) -> None:
    """Import a customer history (NDJSON: accounts, users, grants, purchases, usage and attempts), idempotent
    by your ids; invalid lines are listed by number and the rest is imported (exit 1 when any was invalid)."""
    _invoke(cmd_import, **params)


@cli.group(context_settings=CONTEXT)
def suggest() -> None:
    """The suggestion engine on the vendor's own history."""


@suggest.command("backtest", context_settings=CONTEXT)
@click.option("--at", required=True, help="the split date, YYYY-MM-DD (UTC)")
@click.option("--window-days", type=click.IntRange(1, 365), default=30, show_default=True,
              help="days after --at whose purchases are the truth")
@click.option("-k", "k", type=click.IntRange(1, 20), default=3, show_default=True, help="suggestions per user")
def suggest_backtest(**params: Any) -> None:
    """Suggest as of --at from history before it; score on the purchases after."""
    _invoke(cmd_suggest, suggest_command="backtest", **params)


@suggest.command("fit", context_settings=CONTEXT)
@click.option("--window-days", type=click.IntRange(1, 365), default=30, show_default=True)
def suggest_fit(**params: Any) -> None:
    """Learn weights from the history so far; stored as a new version (served only if it beats the defaults)."""
    _invoke(cmd_suggest, suggest_command="fit", **params)

@cli.command("citus-ddl", context_settings=CONTEXT)
def citus_ddl() -> None:
    """Print the Citus distribution DDL of the migrated schema (tenant tables by account_id, catalog as reference)."""
    _invoke(cmd_citus_ddl)


@cli.command("settings", context_settings=CONTEXT)
@click.option("--markdown", is_flag=True, help="print the README's configuration table (every setting documented)")
@JSON
def settings_command(markdown: bool, json: bool) -> None:
    """Show every setting's variable and current value (secrets masked), or the documentation table."""
    from app.settings import described, settings_table

    if markdown:
        print(settings_table())
        return
    current = described(load_settings())
    _out(argparse.Namespace(json=json), "\n".join(f"{name}={value}" for name, value in current), dict(current))


def _multiprocess_metrics(argv: list[str]) -> None:
    """``serve``/``demo``: every granian worker writes its metrics to one folder, any worker's /metrics sums them.

    It must be set before the first import of prometheus_client (the CLI's own imports reach it), so it is
    decided here from the environment, before anything else loads; the folder starts empty.
    """
    if not argv or argv[0] not in ("serve", "demo") or "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        return
    import shutil
    from pathlib import Path

    folder = Path(os.environ.get("COMMERCE_DATA_DIR") or ".commerce-data") / "metrics"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder.resolve())


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (usage errors and bad settings are 2)."""
    _multiprocess_metrics(sys.argv[1:] if argv is None else argv)
    from app.errors import DomainError
    from app.migrate import SchemaNotAtHead

    try:
        cli.main(args=argv, prog_name="commerce", standalone_mode=False)
    except click.exceptions.Exit as exc:  # --help, --version
        return int(exc.exit_code)
    except click.ClickException as exc:  # usage errors: click's own message, code 2
        exc.show()
        return EXIT_USAGE
    except click.Abort:
        print("commerce: aborted", file=sys.stderr)
        return 130
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_FAILED
    except (SettingsError, ValueError, SchemaNotAtHead) as exc:
        print(f"commerce: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DomainError as exc:  # refused as the API would refuse it (an unknown key id, a closed period...)
        print(f"commerce: {exc.detail}", file=sys.stderr)
        return EXIT_FAILED if exc.status >= 500 else EXIT_USAGE
    except _database_errors() as exc:  # unreachable, refused the login, or failed mid-way: retry later
        print(f"commerce: the database failed: {_first_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _database_errors() -> tuple[type[BaseException], ...]:
    import socket

    import asyncpg
    import sqlalchemy.exc

    return (ConnectionError, TimeoutError, socket.gaierror, sqlalchemy.exc.DBAPIError, asyncpg.PostgresError,
            asyncpg.InterfaceError)


def _first_line(exc: BaseException) -> str:
    """The error's own message without SQLAlchemy's statement dump (which may carry parameters)."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {text[0] if text else ''}"


if __name__ == "__main__":
    raise SystemExit(main())
