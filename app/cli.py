"""The ``commerce`` command: migrate, serve, worker, demo, keys (and more as the domains grow)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

from app.settings import (
    FAKE_STRIPE_WARNING,
    Settings,
    SettingsError,
    load_settings,
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


async def _with_engine(url: str, settings: Settings, work: Any) -> Any:
    from app.db import create_engine

    engine = create_engine(url, pool_size=2, max_overflow=2)
    try:
        return await work(engine)
    finally:
        await engine.dispose()


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from app.migrate import upgrade

    with database_url(settings) as url:
        asyncio.run(_with_engine(url, settings, upgrade))
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
                print(f"key id:  {new.key.key_id}\nscopes:  {','.join(sorted(scopes))}")
                print(f"accounts: {_binding(None if bound is None else bound.values())}")
                print(f"secret:  {new.secret}\n(shown once: store it now)")
            elif args.keys_command == "list":
                rows = await keys.list_keys(session)
                names = await external_ids(session, [a for k in rows for a in k.account_ids or ()])
                for k in rows:
                    state = "revoked" if k.revoked_at else "active"
                    binding = None if k.account_ids is None else [names[a] for a in k.account_ids]
                    print(f"{k.key_id}  {state:8}  {k.name}  [{','.join(k.scopes)}]  accounts: {_binding(binding)}  "
                          f"last used: {k.last_used_at}")
            else:
                await keys.revoke_key(session, args.key_id, clock=clock)
                await notify(session, "key", args.key_id)
                await audit.record(session, clock=clock, actor="cli", action="api_key.revoked",
                                   target_type="api_key", target_id=args.key_id)
                print(f"revoked {args.key_id}")
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
            asyncio.run(_with_engine(url, settings, upgrade))
        print(f"serving on http://{settings.host}:{settings.port}  (API docs: /schema, health: /healthz)")
        _serve(settings, url)
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from app.demo import seed_demo
    from app.migrate import upgrade
    from app.stripe_wiring import demo_stripe_fake
    from web.demo_host import serve_host_page

    _check_card_payments(settings)
    with database_url(settings) as url:
        async def prepare(engine: Any) -> tuple[str, str, str]:
            await upgrade(engine)
            key = await seed_demo(engine, settings)
            admin, _ = await mint_console_path(engine, settings, email=None, account="acme", user="acme-alice")
            vendor, _ = await mint_console_path(engine, settings, email="offers@vendor.test", account=None, user=None)
            return key, admin, vendor

        demo_key, admin_path, vendor_path = asyncio.run(_with_engine(url, settings, prepare))
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
            print("                   (one-time links, valid 15 minutes; more with `commerce console-link`)")
            print(f"  API docs:        {base}/schema")
            print(f"  Health:          {base}/healthz")
            print(f"  Demo vendor key: {demo_key}")
            print(f"  Try:  curl -H 'Authorization: Bearer {demo_key}' {base}/v1/accounts")
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
    from app.accounts.schemas import ConsoleLinkCreate
    from app.accounts.service import mint_console_link
    from app.auth import VendorPrincipal
    from app.clock import SystemClock
    from app.scopes import SCOPES

    operator = VendorPrincipal(key_id="cli", scopes=frozenset(SCOPES))
    data = ConsoleLinkCreate(console="admin", account=account, user=user) if email is None else ConsoleLinkCreate(
        console="vendor", email=email)
    async with wiring.sessionmaker(engine, settings)() as session, session.begin():
        return await mint_console_link(session, data, principal=operator, settings=settings, clock=SystemClock())


def cmd_console_link(settings: Settings, args: argparse.Namespace) -> int:
    """Print a one-time console sign-in link (vendor staff by --email, or a customer admin by --account --user)."""
    if (args.email is None) == (args.account is None or args.user is None):
        print("commerce console-link: give --email (vendor console) or --account and --user (admin console)",
              file=sys.stderr)
        return 2
    with database_url(settings) as url:
        path, expires_at = asyncio.run(_with_engine(url, settings, lambda engine: mint_console_path(
            engine, settings, email=args.email, account=args.account, user=args.user)))
    print(f"http://{settings.host}:{settings.port}{path}")
    print(f"(one use, valid until {expires_at.isoformat()})", file=sys.stderr)
    return 0


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
            code: int = asyncio.run(_with_engine(url, settings, work))
        except DomainError as exc:
            print(f"commerce: {exc.detail}", file=sys.stderr)
            for err in exc.errors or []:
                print(f"  {err.field}: {err.message}", file=sys.stderr)
            return 1
        return code
def cmd_worker(settings: Settings, _args: argparse.Namespace) -> int:
    """Run the webhook dispatcher until SIGINT/SIGTERM (as many workers as you like, on any hosts)."""
    import logging
    import signal

    from app import wiring
    from app.clock import SystemClock
    from app.db import create_engine
    from app.webhooks.dispatcher import Dispatcher

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    async def work(url: str) -> None:
        engine = create_engine(url, pool_size=4, max_overflow=settings.webhook_concurrency)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await Dispatcher(wiring.sessionmaker(engine, settings), settings=settings, clock=SystemClock()).run(stop)
        finally:
            await engine.dispose()

    with database_url(settings) as url:
        print("webhook dispatcher running (Ctrl-C to stop)")
        asyncio.run(work(url))
    return 0


def cmd_entitlements(settings: Settings, args: argparse.Namespace) -> int:
    """One sweep pass: emit entitlement.expired, trial.ending and trial.ended events that are due (idempotent)."""
    from app import wiring
    from app.clock import SystemClock
    from entitlements.service import sweep

    async def work(engine: Any) -> int:
        total: dict[str, int] = {}
        while True:  # a pass handles a bounded batch; repeat until nothing is due
            async with wiring.sessionmaker(engine, settings)() as session, session.begin():
                counts = await sweep(session, clock=SystemClock(), trial_ending_days=settings.trial_ending_days)
            for k, v in counts.items():
                total[k] = total.get(k, 0) + v
            if not any(counts.values()):
                break
        print(", ".join(f"{k}: {v}" for k, v in sorted(total.items())))
        return 0

    with database_url(settings) as url:
        code: int = asyncio.run(_with_engine(url, settings, work))
        return code


def cmd_db_url(settings: Settings, _args: argparse.Namespace) -> int:
    """Print a psql-ready URL of the database (the embedded one joins the running server)."""
    with database_url(settings) as url:
        print(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    return 0


def _close_period(args: argparse.Namespace, clock: Any, settings: Settings) -> Any:
    """``billing close`` (statements) and ``billing expire-approvals``: one transaction, no Stripe."""
    from app import wiring
    from billing.service._orders import expire_due_approvals
    from billing.service._statements import close_period

    async def work(engine: Any) -> int:
        async with wiring.sessionmaker(engine, settings)() as session, session.begin():
            if args.billing_command == "close":
                result = await close_period(session, period=args.period, clock=clock)
                for st in result.closed:
                    print(f"closed    {st.statement_id}  account {st.account_id}  {st.total_minor} {st.currency}")
                for st in result.already_closed:
                    print(f"unchanged {st.statement_id}  account {st.account_id} (closed before)")
                for external_id in result.still_open:
                    print(f"open      account {external_id}: its budget period has not ended yet")
                print(f"{len(result.closed)} statement(s) closed for {args.period}")
            else:
                print(f"{await expire_due_approvals(session, clock=clock)} approval request(s) expired")
        return 0

    return work


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
    if args.billing_command in ("close", "invoice") and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", args.period):
        raise ValueError(f"--period must look like 2026-11, got {args.period!r}")
    real_stripe = settings.stripe_mode == "stripe"

    async def work(engine: Any) -> int:
        from billing.stripe.flows import invoice_period, reconcile, run_billing

        if args.billing_command in ("close", "expire-approvals"):
            code: int = await _close_period(args, clock, settings)(engine)
            if args.billing_command == "expire-approvals" or not real_stripe:
                if args.billing_command == "close":
                    print("invoices not created: set STRIPE_SECRET_KEY, then run `commerce billing invoice`")
                return code
        sessionmaker = wiring.sessionmaker(engine, settings)
        gateway = create_gateway(settings) if real_stripe else None
        try:
            if args.billing_command == "run":
                report = await run_billing(sessionmaker, gateway, settings=settings, clock=clock)
                print(report)
                return 1 if report.errors else 0
            if gateway is None:
                print("commerce: set STRIPE_SECRET_KEY (plus STRIPE_API_BASE for a fake on loopback)", file=sys.stderr)
                return 2
            if args.billing_command == "reconcile":
                counts = await reconcile(sessionmaker, gateway, settings=settings, clock=clock)
            else:  # invoice, or the invoicing step of close
                counts = await invoice_period(sessionmaker, gateway, args.period, clock=clock)
            print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
            return 1 if counts.get("errors") or counts.get("failed") else 0
        finally:
            if gateway is not None:
                await gateway.close()

    with database_url(settings) as url:
        result: int = asyncio.run(_with_engine(url, settings, work))
        return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="commerce", description="In-product commerce and entitlements")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply database migrations up to head")
    serve = sub.add_parser("serve", help="run the HTTP service (granian, N worker processes)")
    serve.add_argument("--workers", type=int, help="worker processes (default COMMERCE_WORKERS or 1)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--no-migrate", dest="migrate", action="store_false", help="do not migrate at start")
    demo = sub.add_parser("demo", help="migrate, seed demo data and serve")
    demo.add_argument("--workers", type=int)
    demo.add_argument("--host")
    demo.add_argument("--port", type=int)
    demo.add_argument("--host-page-port", type=int, help="port of the demo host page (default: the API's port + 1)")
    demo.add_argument("--stripe-fake-port", type=int, default=12111,
                      help="loopback port of the local Stripe fake (default 12111; unused with STRIPE_SECRET_KEY)")
    sub.add_parser("worker", help="run the webhook dispatcher (outbox -> signed deliveries)")
    sub.add_parser("db-url", help="print the database URL (for psql)")
    link = sub.add_parser("console-link", help="print a one-time console sign-in link")
    link.add_argument("--email", help="vendor console: the staff member's email")
    link.add_argument("--account", help="admin console: the account's external id")
    link.add_argument("--user", help="admin console: the admin's external id")
    keys = sub.add_parser("keys", help="vendor API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key and print its secret once")
    create.add_argument("--name", required=True)
    create.add_argument("--scopes", required=True, help="comma-separated scopes, or 'all'")
    create.add_argument("--account", action="append", metavar="EXTERNAL_ID",
                        help="bind the key to this account (repeat for several); without it the key is global")
    keys_sub.add_parser("list", help="list keys")
    revoke = keys_sub.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")
    billing = sub.add_parser("billing", help="statements, invoices, renewals, approval expiry, reconciliation")
    billing_sub = billing.add_subparsers(dest="billing_command", required=True)
    close = billing_sub.add_parser("close", help="close a period: one statement per account with budget spend, "
                                                 "then its Stripe invoice (with STRIPE_SECRET_KEY)")
    close.add_argument("--period", required=True, help="YYYY-MM")
    billing_sub.add_parser("expire-approvals", help="expire approval requests whose time ran out")
    billing_sub.add_parser("run", help="renew due subscriptions (both routes) and run dunning; idempotent")
    billing_sub.add_parser("reconcile", help="replay unresolved card payments and refunds, re-handle failed events")
    invoice = billing_sub.add_parser("invoice", help="create the Stripe invoices of a closed period's statements")
    invoice.add_argument("--period", required=True, help="YYYY-MM")
    catalog = sub.add_parser("catalog", help="the module catalog as code (TOML)")
    catalog_sub = catalog.add_subparsers(dest="catalog_command", required=True)
    plan = catalog_sub.add_parser("plan", help="show what applying FILE would change")
    plan.add_argument("file")
    apply = catalog_sub.add_parser("apply", help="apply FILE as a new catalog revision (all or nothing)")
    apply.add_argument("file")
    catalog_sub.add_parser("export", help="print the live catalog as TOML")
    ent = sub.add_parser("entitlements", help="entitlement maintenance")
    ent_sub = ent.add_subparsers(dest="entitlements_command", required=True)
    ent_sub.add_parser("sweep", help="emit due expiry and trial events (idempotent; safe to run any time)")
    return parser


COMMANDS = {"migrate": cmd_migrate, "serve": cmd_serve, "worker": cmd_worker, "demo": cmd_demo, "keys": cmd_keys,
            "db-url": cmd_db_url, "console-link": cmd_console_link, "catalog": cmd_catalog, "billing": cmd_billing,
            "entitlements": cmd_entitlements}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {k: v for k in ("workers", "host", "port") if (v := getattr(args, k, None)) is not None}
    try:
        from app.wiring import check_settings

        settings = check_settings(load_settings(**overrides))
        return COMMANDS[args.command](settings, args)
    except (SettingsError, ValueError) as exc:
        print(f"commerce: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
