"""Demo data for ``make demo``: a vendor key, accounts and users, the example catalog (grows as the domains arrive)."""

from __future__ import annotations

from datetime import datetime, timedelta
from importlib import resources

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app import keys
from app.accounts import service as accounts
from app.accounts.schemas import AccountUpsert, UserUpsert
from app.auth import VendorPrincipal
from app.clock import Clock, SystemClock
from app.scopes import SCOPES
from app.settings import Settings
from catalog import service as catalog
from suggest.signals import ModuleInfo

DEMO_SYNTH_ACCOUNTS = {"enterprise-00": "acme", "mid_market-00": "globex", "smb-00": "initech"}


def demo_catalog_toml() -> str:
    """The example catalog shipped with the package (catalog/examples/demo.toml)."""
    return (resources.files("catalog") / "examples" / "demo.toml").read_text(encoding="utf-8")

DEMO_ACCOUNTS = [
    AccountUpsert(external_id="acme", name="Acme Analytics", segment="enterprise", region="us", currency="USD",
                  discount_bps=1000, sales_team="enterprise-east", sales_rep="dana"),
    AccountUpsert(external_id="globex", name="Globex GmbH", segment="mid_market", region="eu", currency="EUR",
                  sales_team="emea", sales_rep="lukas"),
    AccountUpsert(external_id="initech", name="Initech", segment="smb", region="us", currency="USD",
                  sales_team="smb", sales_rep="sam"),
]

DEMO_USERS = {
    "acme": [
        UserUpsert(external_id="acme-alice", email="alice@acme.test", name="Alice Admin", roles=["admin", "manager"]),
        UserUpsert(external_id="acme-ana", email="ana@acme.test", name="Ana Analyst", roles=["analyst"]),
        UserUpsert(external_id="acme-vic", email="vic@acme.test", name="Vic Viewer", roles=["viewer"]),
        # a consultant whose cost center pays with its own cards (the widget's card route in the demo), billed in
        # Germany: her quotes show German VAT through the local Stripe's tax table
        UserUpsert(external_id="acme-cara", email="cara@acme.test", name="Cara Consultant", roles=["analyst"],
                   cost_center="consulting", billing_country="DE"),
    ],
    "globex": [
        UserUpsert(external_id="globex-gert", email="gert@globex.test", name="Gert Admin", roles=["admin"]),
        UserUpsert(external_id="globex-greta", email="greta@globex.test", name="Greta Analyst", roles=["analyst"]),
    ],
    "initech": [
        UserUpsert(external_id="initech-peter", email="peter@initech.test", name="Peter", roles=["analyst"]),
    ],
}


DEMO_GRANTS = [  # (account, user or None for account-wide, module, seats)
    ("acme", "acme-ana", "reports_basic", None),
    ("acme", "acme-ana", "reports_pro", None),
    ("acme", None, "comments", None),
    ("acme", None, "nl_query", 2),
    ("globex", "globex-greta", "advanced_charts", None),
    ("initech", "initech-peter", "reports_basic", None),
]


async def seed_entitlements(session: AsyncSession, clock: Clock) -> None:
    """Demo grants, a seat pool with one seat taken, and some usage (all idempotent)."""
    from entitlements import grant
    from entitlements.schemas import UsageEventIn
    from entitlements.service import assign_seat, catalog_view, record_usage

    now = clock.now()
    for account_ref, user_ref, module, seats in DEMO_GRANTS:
        account = await accounts.get_account(session, account_ref)
        user = await accounts.get_user(session, user_ref) if user_ref else None
        assert account is not None
        g = await grant(session, account_id=account.account_id, user_id=user.user_id if user else None,
                        module=module, source="plan", source_ref=f"demo-{module}", starts_at=now, ends_at=None,
                        seats=seats, clock=clock)
        if seats:
            vic = await accounts.get_user(session, "acme-vic")
            assert vic is not None
            await assign_seat(session, account_id=account.account_id, grant_id=g.grant_id, user_id=vic.user_id,
                              clock=clock)
    events = [UsageEventIn(event_id=f"demo-{i}", user="acme-ana", feature="reports", quantity=3) for i in range(12)]
    events += [UsageEventIn(event_id="demo-try-1", user="acme-ana", feature="forecasting", kind="attempt")]
    await record_usage(session, events, principal=VendorPrincipal(key_id="demo", scopes=frozenset()),
                       enforce=False, clock=clock, view=await catalog_view(session), backfill_days=35)


DEMO_BUDGETS = {"acme": ("USD", 500_000), "globex": ("EUR", 200_000), "initech": ("USD", 50_000)}


async def seed_commerce(session: AsyncSession, clock: Clock) -> None:
    """A budget per demo account and guardrails for acme, so quotes show every route and outcome."""
    from billing import service as billing
    from billing.domain.guardrails import GuardrailPolicy, Override, RoleRule

    for external_id, (currency, amount) in DEMO_BUDGETS.items():
        account = await accounts.get_account(session, external_id)
        assert account is not None
        if not await billing.list_budgets(session, account):
            await billing.create_budget(session, account, name=f"{account.name} modules", currency=currency,
                                        amount_minor=amount, cost_center=None, anchor_day=1, actor="demo",
                                        clock=clock)
    acme = await accounts.get_account(session, "acme")
    assert acme is not None
    policy = GuardrailPolicy(
        auto_approve_limit_minor=10_000, per_user_cap_minor=50_000, approver_roles=["admin", "manager"],
        role_rules=[RoleRule(role="viewer", deny_modules=["ai_insights"])], temporary_access_hours=24,
        # the widget's three routes in the demo: viewers ask an approver for everything, consultants pay by card
        overrides=[Override(role="viewer", auto_approve_limit_minor=0),
                   Override(cost_center="consulting", routes=["card"], preferred_route="card")],
    )
    await billing.save_policy(session, acme, policy, actor="demo", clock=clock)  # unchanged: no new version


async def seed_demo(engine: AsyncEngine, settings: Settings, *, clock: Clock | None = None) -> str:
    """Seed idempotently; returns the demo vendor key (kept in the data folder, development only). ``clock``:
    the time the demo is seeded at (tests that serve it with a frozen clock seed it at the same time)."""
    clock = clock or SystemClock()
    key_file = settings.data_dir / "demo-vendor-key"
    from app.wiring import sessionmaker

    async with sessionmaker(engine, settings)() as session, session.begin():
        doc = catalog.parse_source(toml=demo_catalog_toml())
        await catalog.apply_document(session, doc, actor="demo", clock=clock)  # a no-op when already applied
        for data in DEMO_ACCOUNTS:
            account, _ = await accounts.upsert_account(session, data, actor="demo", clock=clock)
            for user in DEMO_USERS[data.external_id]:
                await accounts.upsert_user(session, account, user, actor="demo", clock=clock)
        await seed_entitlements(session, clock)
        await seed_commerce(session, clock)
        await seed_history(session, clock)
        if key_file.exists():
            token = key_file.read_text().strip()
            parts = keys.split_token(token)
            row = await session.get(keys.ApiKey, parts[0]) if parts else None
            if row is not None and row.revoked_at is None and keys.secret_matches(row.secret_sha256, token):
                return token
        new = await keys.create_key(session, name="demo", scopes=frozenset(SCOPES), clock=clock)
    key_file.write_text(new.secret)
    key_file.chmod(0o600)
    return new.secret


async def seed_history(session: AsyncSession, clock: Clock) -> None:
    """A believable history so suggestions in the demo have facts to stand on: colleagues with roles in each
    demo account (from the seeded synthetic customer base, suggest/synth.py), the modules they own,
    their last two months of usage and their attempts on features they lack; then the peer statistics.
    Runs once (the first synthetic colleague marks it done); everything goes through the public services."""
    import entitlements
    from entitlements.schemas import UsageEventIn
    from suggest import refresh_account
    from suggest.synth import generate

    if await accounts.get_user(session, "acme-s000") is not None:
        return
    view = await entitlements.service.catalog_view(session)
    infos = {k: ModuleInfo(k, m.name, m.category, dict(m.features), tuple(m.requires), m.trial_days)
             for k, m in view.modules.items() if m.status == "active"}
    world = generate(infos, seed=3, accounts_per_segment=1, months=4)
    now = clock.now()
    principal = VendorPrincipal(key_id="demo", scopes=frozenset(SCOPES))
    events: list[UsageEventIn] = []
    for synth_account, external in DEMO_SYNTH_ACCOUNTS.items():
        account = await accounts.get_account(session, external)
        assert account is not None
        people = [u for u in world.users if u.account == synth_account][:40]
        for i, su in enumerate(people):
            ref = f"{external}-s{i:03d}"
            user, _ = await accounts.upsert_user(session, account, UserUpsert(
                external_id=ref, name=f"Colleague {i}", roles=[su.role]), actor="demo", clock=clock)
            for month, module in su.bought:
                await entitlements.grant(session, account_id=account.account_id, user_id=user.user_id, module=module,
                                         source="admin", source_ref=f"demo-{ref}-{module}",
                                         starts_at=now - timedelta(days=31 * (world.months - month)), ends_at=None,
                                         clock=clock)
            for back, month in ((1, world.months - 2), (0, world.months - 1)):
                at = now - timedelta(days=30 * back, hours=1)
                events += [UsageEventIn(event_id=f"demo-{ref}-{f}-{month}", user=ref, feature=f, quantity=n,
                                        occurred_at=at) for f, v in su.usage.items() if (n := v[month]) > 0]
                events += [UsageEventIn(event_id=f"demo-{ref}-{f}-{month}-try", user=ref, feature=f, quantity=n,
                                        occurred_at=at, kind="attempt")
                           for f, n in su.attempts.get(month, {}).items()]
    events.append(UsageEventIn(event_id="demo-ana-charts", user="acme-ana", feature="advanced_charts", quantity=2,
                               kind="attempt"))
    for start in range(0, len(events), 1000):
        await entitlements.service.record_usage(session, events[start:start + 1000], principal=principal,
                                                enforce=False, clock=clock, view=view, backfill_days=35)
    await seed_purchases(session, now)
    for external in DEMO_SYNTH_ACCOUNTS.values():
        account = await accounts.get_account(session, external)
        assert account is not None
        await refresh_account(session, account.account_id, now=now, unused_days=30)


DEMO_BUYS = ("geo_maps", "reports_basic", "advanced_charts", "report_automation", "dashboards_plus", "reports_pro")


async def seed_purchases(session: AsyncSession, now: datetime) -> None:
    """Five months of budget purchases by colleagues in acme and globex (the consoles' charts show real
    spend), placed through the billing services at past times; one request waits for an approver."""
    from app.clock import FrozenClock
    from app.errors import DomainError
    from billing import service as billing
    from billing.service import QuoteItem

    vendor = VendorPrincipal(key_id="demo", scopes=frozenset(SCOPES))
    for external, people in (("acme", range(0, 24)), ("globex", range(0, 10))):
        account = await accounts.get_account(session, external)
        assert account is not None
        for back in (4, 3, 2, 1, 0):
            clock = FrozenClock(now - timedelta(days=30 * back, hours=2))
            for i in people:
                if (i + back) % 3:  # about a third of the colleagues buy something each month
                    continue
                user = await accounts.get_user(session, f"{external}-s{i:03d}")
                if user is None:
                    continue
                module = DEMO_BUYS[(i + back) % len(DEMO_BUYS)]
                try:
                    async with session.begin_nested():
                        quote = await billing.create_quote(session, account, user, [QuoteItem(module=module)],
                                                           include_requirements=True, clock=clock,
                                                           ttl=timedelta(minutes=30))
                        if quote.decision.outcome != "auto_approved" or quote.decision.route != "budget":
                            raise _Skip
                        await billing.order_quote(session, vendor, quote.quote_id, reason=None, clock=clock)
                except (DomainError, _Skip):
                    continue
    for back in (4, 3, 2, 1):  # bill-back statements of the months that are over
        year, month = divmod(now.year * 12 + now.month - 1 - back, 12)
        await billing.close_period(session, period=f"{year:04d}-{month + 1:02d}", clock=FrozenClock(now))
    acme = await accounts.get_account(session, "acme")
    requester = await accounts.get_user(session, "acme-s001")
    assert acme is not None and requester is not None
    clock = FrozenClock(now - timedelta(hours=3))
    quote = await billing.create_quote(session, acme, requester, [QuoteItem(module="report_branding")],
                                       include_requirements=True, clock=clock, ttl=timedelta(minutes=30))
    if quote.decision.outcome == "approval_required":
        await billing.order_quote(session, vendor, quote.quote_id, reason="Client decks need our logo this week",
                                  clock=clock)


class _Skip(Exception):
    """A demo purchase the guardrails would not auto-approve from the budget: not seeded."""
