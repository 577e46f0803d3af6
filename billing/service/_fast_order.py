"""The purchase fast path (issue 18): the common order -- budget route, auto-approved, auto-closed -- in two
round trips on a bare driver connection: one read, then ONE statement that is the whole order's transaction.

The read fetches in one query what ``place_order`` reads (quote, account, buyer, the budget with this period's
balance, the policy in force, the buyer's spend, the catalog head, the account's credited categories). The same
domain functions then decide and build every row exactly as the ordinary path writes it (order, hold, two
ledger entries, grants with their change rows and notices, subscriptions, sales credits, audit entry, outbox
events, what subscribers record) and the Idempotency-Key's stored answer. The statement (app/onestatement.py)
claims the key, marks the quote ordered, captures the budget by a guarded upsert, inserts everything, and checks
that what the decision was made from still holds (policy version, catalog head, spend under the cap, no trial to
convert, no alert threshold crossed). A guard that fails makes the statement write nothing, and the caller takes
the ordinary path, which then gives exactly the ordinary answer (a refusal, a replay, a 409). Anything else than
the common case (approval, card, trials, metered lines, renewals, free orders) is left to the ordinary path at
once.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import msgspec
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

import catalog
import entitlements
from app import metrics
from app.accounts.models import Account, User
from app.audit import AuditEntry
from app.auth import Principal, UserPrincipal
from app.clock import Clock
from app.db import driver_connection
from app.events import Bus, Event, Published, outbox_row
from app.idempotency import FastClaim, claim_in
from app.ids import new_id
from app.logs import current_request_id
from app.notify import dispatch_local
from app.onestatement import Statement, aborted_because, assign, load, plain, select_list
from app.outbox import OutboxEvent
from billing.domain import guardrails as g
from billing.domain.credit import classify
from billing.domain.periods import period_key, period_of
from billing.domain.quotes import modules_of
from billing.events import OrderCreated, OrderFulfilled, OrderPaid, ProvisionItem, ProvisionRequested, order_event
from billing.models import Budget, BudgetHold, LedgerEntry, Order, Quote, SalesCredit, Subscription
from billing.service import _fast_memo as memo_
from billing.service._fast_memo import OrderFacts, Remembered
from billing.service._fast_reads import budget_joins, credited_sql, engine_key, policy_join, policy_of, spent_sql
from billing.service._order_reads import order_read_of
from billing.service._orders import _provisioned, order_payload
from billing.service._quotes import SPENDING_STATES, decision_dict
from billing.service._summary import LineSummary, OrderSummary
from entitlements.events import EntitlementGranted

log = logging.getLogger("commerce.fast_order")

_PUBLISHED: tuple[type[Event], ...] = (OrderCreated, OrderPaid, EntitlementGranted, ProvisionRequested,
                                       OrderFulfilled)


_Read = OrderFacts  # what the order decides from: one read, or the quote's memo (_fast_memo)


def _read_sql(dialect: Dialect) -> str:
    return (
        f"SELECT {select_list('q', Quote, dialect)}, {select_list('a', Account, dialect)}, "
        f"{select_list('u', User, dialect)}, {select_list('b', Budget, dialect)}, "
        "p.period, p.amount_minor, p.reserved_minor, p.captured_minor, "
        f"gv.version, gv.policy, {spent_sql('q.account_id', 'q.user_id', '$3')}, "
        "cr.revision, cr.source_sha256, cr.applied_at, "
        "ARRAY(SELECT DISTINCT c.category FROM sales_credits c WHERE c.account_id = q.account_id "
        "AND c.category IN (SELECT l->>'category' FROM jsonb_array_elements(q.lines) AS l)) "
        "FROM quotes q JOIN accounts a ON a.account_id = q.account_id "
        "JOIN users u ON u.account_id = q.account_id AND u.user_id = q.user_id "
        f"{budget_joins('q.account_id', '$2')}{policy_join('q.account_id')}"
        f"LEFT JOIN LATERAL ({catalog.head_sql()}) cr ON true "
        "WHERE q.quote_id = $1")


_SQL: dict[str, str] = {}
_WIDTHS: dict[str, list[int]] = {}


async def _read(conn: Any, dialect: Dialect, quote_id: str, *, clock: Clock) -> _Read | None:
    sql = _SQL.get("read")
    if sql is None:
        sql = _SQL["read"] = _read_sql(dialect)
    now = clock.now()
    row = await conn.fetchrow(sql, quote_id, now, period_of(now)[0])
    if row is None:
        return None
    values = list(row.values())
    widths = _WIDTHS.get(dialect.name)
    if widths is None:
        widths = _WIDTHS[dialect.name] = [len(select_list("x", m, dialect).split(", "))
                                          for m in (Quote, Account, User, Budget)]
    parts, at = [], 0
    for width in widths:
        parts.append(values[at:at + width])
        at += width
    quote, account, user = (load(m, v, dialect) for m, v in zip((Quote, Account, User), parts, strict=False))
    budget = load(Budget, parts[3], dialect) if parts[3][0] is not None else None
    (period, amount, reserved, captured, version, policy, spent, revision, sha, applied_at,
     credited) = values[at:]
    stored = policy_of(policy)
    return _Read(quote=quote, account=account, user=user, budget=budget,
                 period=(period, amount, reserved, captured) if period is not None else None,
                 policy_version=int(version or 0), policy=stored, spent_minor=int(spent or 0),
                 head=(int(revision), str(sha), applied_at.isoformat()) if revision is not None else None,
                 credited=frozenset(credited or ()))


def _inline(bus: Bus | None) -> dict[type[Event], tuple[Any, ...]] | None:
    """The inline subscribers of every event the fast path publishes (None: one of them has none)."""
    found: dict[type[Event], tuple[Any, ...]] = {}
    for kind in _PUBLISHED:
        subs = bus.inline_subscribers(kind) if bus is not None else ()
        if subs is None:
            return None
        found[kind] = subs
    return found


async def fast_order(engine: AsyncEngine, bus: Bus | None, principal: Principal, claim: FastClaim, *,
                     quote_id: str, reason: str | None, clock: Clock) -> bytes | None:
    """POST /v1/orders for the common case in one statement: the stored answer (201, JSON), or None when the
    ordinary path must answer (anything unusual, a refusal, a replay; nothing was written then)."""
    inline = _inline(bus)
    if inline is None:
        return None
    dialect = engine.dialect
    url = engine_key(engine)
    async with driver_connection(engine) as conn:
        built = None
        remembered = memo_.take(url, quote_id)
        if remembered is not None:  # what the quote read a moment ago, guarded in the statement (_fast_memo)
            built = _build(remembered.facts, principal, claim, inline, url=url, reason=reason, clock=clock,
                           dialect=dialect, memo=remembered)
            if built is not None:
                done = await _run(conn, built[0])
                if done is True:
                    return _done(built)
                if done is None:
                    return None
                if done == "memo_period":  # another buyer spends from this budget: read, not remember, for a while
                    assert remembered.facts.budget is not None
                    memo_.mark_busy(url, remembered.facts.budget.budget_id)
        try:
            read = await _read(conn, dialect, quote_id, clock=clock)
        except asyncpg.PostgresError:  # e.g. a value PostgreSQL refuses: the ordinary path answers as it does
            return None
        if read is None:
            return None
        built = _build(read, principal, claim, inline, url=url, reason=reason, clock=clock, dialect=dialect)
        if built is None:
            return None
        if await _run(conn, built[0]) is not True:
            return None
    return _done(built)


async def _run(conn: Any, statement: Statement) -> bool | str | None:
    """Run the order's statement: True (committed), the memo guard that refused it (nothing was written: read
    and try again), or None (nothing was written: the ordinary path answers)."""
    try:
        await conn.fetchval(statement.sql(), *statement.args)
    except Exception as exc:  # nothing was written (one statement, its own transaction); the ordinary path
        why = aborted_because(exc)  # answers, and replays this answer if the commit did happen after all
        if why in _MEMO_GUARDS:
            return why
        if why is None:
            log.warning("fast order refused by the database (%s: %s); ordinary path", type(exc).__name__, exc)
        return None
    return True


def _done(built: tuple[Statement, bytes, list[str], int, str]) -> bytes:
    """After the commit: the notices, the capture's count, and the answer."""
    _, body, notices, total, currency = built
    dispatch_local(notices)
    metrics.count_capture(currency=currency, amount_minor=total)
    return body


def _build(read: _Read, principal: Principal, claim: FastClaim, inline: dict[type[Event], tuple[Any, ...]], *,
           url: str, reason: str | None, clock: Clock, dialect: Dialect,
           memo: Remembered | None = None) -> tuple[Statement, bytes, list[str], int, str] | None:
    """The order's statement, its answer, its notices, and what it captures; None: not the common case (or,
    from a ``memo``, not one it can decide from: the order reads)."""
    quote, account, user, budget = read.quote, read.account, read.user, read.budget
    now = clock.now()
    if memo is not None and period_of(now)[0] != memo.since:
        return None  # a new period began since the quote: the spend and the budget's row are read again
    if not principal.may_access_user(quote.account_id, quote.user_id) or (
            isinstance(principal, UserPrincipal) and principal.user_id != user.user_id):
        return None  # the ordinary path answers 404 or 403
    modules = modules_of(quote.lines)
    if (quote.status != "open" or quote.expires_at <= now or len(set(modules)) != len(modules)
            or quote.total_minor <= 0 or budget is None or read.head is None
            or any(line.model == "metered" or line.metered is not None for line in quote.lines)):
        return None
    live = catalog.cached_live(url, *read.head)
    if live is None:
        return None
    by_key = {m.key: m for m in live.doc.modules}
    categories = [line.category or (by_key[line.module].category if line.module in by_key else None)
                  for line in quote.lines]
    if any(m not in by_key for m in modules) or any(c is None for c in categories):
        return None  # a module the catalog lost (404), or a category whose credits the read did not probe
    key = period_key(period_of(now, anchor_day=budget.anchor_day)[0])
    if memo is not None and key != memo.budget_period:
        return None
    amount, reserved, captured = (read.period[1:] if read.period is not None and read.period[0] == key
                                  else (budget.amount_minor, 0, 0))
    decision = g.decide(read.policy, g.Requester(roles=frozenset(user.roles), cost_center=user.cost_center),
                        g.Purchase(modules=modules, total_minor=quote.total_minor, currency=quote.currency,
                                   vendor_approval_required=quote.decision.vendor_approval_required),
                        spent_minor=read.spent_minor,
                        budget=g.BudgetState(currency=budget.currency, remaining_minor=amount - reserved - captured))
    if decision.outcome != "auto_approved" or decision.route != "budget":
        return None

    statement = Statement(dialect)
    outbox: list[OutboxEvent] = []

    def emit(event: Event, *, extra: dict[str, object] | None = None, facts: object = None,
             published: Published[Any] | None = None) -> None:
        published = published or Published(event=event, event_id=new_id("evt"), account_id=account.account_id,
                                            occurred_at=now)
        for subscriber in inline[type(published.event)]:
            subscriber(statement, published, facts)
        outbox.append(outbox_row(published, extra=extra))

    order = plain(Order, account_id=account.account_id, order_id=new_id("ord"), quote_id=quote.quote_id,
                  user_id=user.user_id, route="budget", state="approved", currency=quote.currency,
                  total_minor=quote.total_minor, refunded_minor=0, lines=quote.lines, budget_id=budget.budget_id,
                  reason=reason, created_at=now, updated_at=now, paid_at=None, fulfilled_at=None)
    created, beside = order_event("created", {**order_payload(order, account, user),
                                              "decision": decision_dict(decision)})
    emit(created, extra=beside)
    assign(order, state="paid", paid_at=now)
    paid, beside = order_event("paid", order_payload(order, account, user))
    emit(paid, extra=beside)
    features: dict[str, dict[str, Any]] = {}
    credited = set(read.credited)
    credits, subscriptions, notices = [], [], []
    for line, category in zip(order.lines, categories, strict=True):
        assert category is not None
        holder = None if line.seat_pool else user.user_id
        granted = entitlements.grant_in(
            statement, account_id=account.account_id, user_id=holder, module=line.module, source="order",
            source_ref=order.order_id, starts_at=now, ends_at=line.period_end,
            seats=line.quantity if line.seat_pool else None, now=now, account_ref=account.external_id,
            user_ref=user.external_id)
        emit(granted.event, published=granted, facts=tuple(by_key[line.module].features))  # the module's features
        notices += entitlements.changes_in(statement, [(account.account_id, holder)])  # one per grant, as grant()
        features[line.module] = dict(by_key[line.module].features)
        motion = classify(category=category, is_renewal=False, owned_categories=credited)
        credited.add(category)
        credits.append(plain(
            SalesCredit, account_id=account.account_id, credit_id=new_id("crd"), order_id=order.order_id,
            module=line.module, category=category, motion=motion, amount_minor=line.total_minor,
            currency=order.currency, team=account.sales_team, rep=account.sales_rep,
            period=period_key(period_of(now)[0]), booked_at=now))
        if line.recurring:
            assert line.interval is not None and line.period_start is not None and line.period_end is not None
            subscriptions.append(plain(
                Subscription, account_id=order.account_id, subscription_id=new_id("sub"), order_id=order.order_id,
                user_id=order.user_id, module=line.module, route=order.route, price_id=line.price_id,
                interval=line.interval, per_seat=line.per_seat, quantity=line.quantity,
                unit_amount_minor=line.unit_amount_minor, currency=order.currency, line=line, status="active",
                current_period_start=line.period_start, current_period_end=line.period_end, grace_until=None,
                dunning_attempts=0, next_attempt_at=None, last_order_id=order.order_id, created_at=now,
                updated_at=now, ended_at=None))
    entitlements.no_open_trial(statement, account_id=account.account_id, user_id=user.user_id, modules=list(modules))
    assign(order, fulfilled_at=now, provision_status="requested")
    emit(ProvisionRequested(
        order_id=order.order_id, account_id=account.account_id, account=account.external_id, user=user.external_id,
        requested_at=now, items=[ProvisionItem(module=line.module, quantity=line.quantity,
                                               features=_provisioned(features[line.module], live))
                                 for line in order.lines]))
    assign(order, state="fulfilled")
    fulfilled, beside = order_event("fulfilled", order_payload(order, account, user))
    emit(fulfilled, extra=beside, facts=OrderSummary(
        order_id=order.order_id, account_id=order.account_id, user_id=order.user_id, currency=order.currency,
        renewal=False, lines=tuple(LineSummary(module=line.module, total_minor=line.total_minor)
                                   for line in order.lines)))
    hold = plain(BudgetHold, account_id=account.account_id, hold_id=new_id("hold"), budget_id=budget.budget_id,
                 period=key, order_id=order.order_id, amount_minor=order.total_minor, refunded_minor=0,
                 state="posted", created_at=now, resolved_at=now)
    ledger = [plain(LedgerEntry, account_id=hold.account_id, budget_id=hold.budget_id, period=key, kind=kind,
                    amount_minor=order.total_minor, currency=budget.currency, hold_id=hold.hold_id,
                    order_id=order.order_id, occurred_at=now) for kind in ("reserve", "capture")]
    audit = plain(AuditEntry, account_id=order.account_id, occurred_at=now, actor=principal.actor,
                  action="order.placed", target_type="order", target_id=order.order_id, before=None,
                  after={"quote": quote.quote_id, "route": order.route, "state": order.state,
                         "total_minor": order.total_minor, "currency": order.currency,
                         "user": user.external_id}, request_id=current_request_id())
    body = msgspec.json.encode(order_read_of(order, account_ref=account.external_id, user_ref=user.external_id))
    keyed = claim_in(statement, claim, status=201, body=body)
    _order_rows(statement, read, order, hold, keyed=keyed, key=key, now=now)
    if memo is not None:
        _memo_guards(statement, memo, key=key)
    statement.insert("orders", [order])
    statement.insert("holds", [hold])
    statement.insert("ledger", ledger)
    statement.insert("credits", credits)
    if subscriptions:
        statement.insert("subscriptions", subscriptions)
    statement.insert("audit", [audit])
    statement.insert("outbox", outbox)
    return statement, body, notices, order.total_minor, order.currency


def _order_rows(statement: Statement, read: _Read, order: Order, hold: BudgetHold, *, keyed: str, key: str,
                now: Any) -> None:
    """The quote claim, the guarded capture and the guards on what the decision was made from."""
    p = statement.param
    budget = read.budget
    assert budget is not None
    a = p(order.account_id, "VARCHAR")
    quoted = statement.cte("quote_claim", (
        f"UPDATE quotes SET status = 'ordered' WHERE account_id = {a} AND quote_id = {p(order.quote_id, 'VARCHAR')} "
        f"AND status = 'open' AND expires_at > {p(now, 'TIMESTAMPTZ')} AND EXISTS (SELECT 1 FROM {keyed}) "
        "RETURNING 1"))
    start, end = period_of(now, anchor_day=budget.anchor_day)
    x = p(order.total_minor, "BIGINT")
    captured = statement.cte("capture", (
        "INSERT INTO budget_periods (account_id, budget_id, period, starts_at, ends_at, amount_minor, "
        f"reserved_minor, captured_minor) SELECT {a}, {p(budget.budget_id, 'VARCHAR')}, {p(key, 'VARCHAR')}, "
        f"{p(start, 'TIMESTAMPTZ')}, {p(end, 'TIMESTAMPTZ')}, {p(budget.amount_minor, 'BIGINT')}, 0, {x} "
        f"WHERE EXISTS (SELECT 1 FROM {quoted}) ON CONFLICT (account_id, budget_id, period) DO UPDATE "
        "SET captured_minor = budget_periods.captured_minor + EXCLUDED.captured_minor "
        "WHERE budget_periods.amount_minor - budget_periods.reserved_minor - budget_periods.captured_minor "
        ">= EXCLUDED.captured_minor RETURNING amount_minor, reserved_minor, captured_minor"))
    statement.guard(f"EXISTS (SELECT 1 FROM {quoted})", "quote_unusable")
    statement.guard(f"EXISTS (SELECT 1 FROM {captured} WHERE amount_minor - reserved_minor - captured_minor >= 0)",
                    "budget_exhausted")
    thresholds = list(read.policy.alert_thresholds_pct) or [50, 80, 100]
    statement.guard(  # the ordinary path records the alert and tells of it
        f"NOT EXISTS (SELECT 1 FROM {captured} c, unnest({p(thresholds, 'INT[]')}) AS t WHERE c.amount_minor > 0 "
        f"AND (c.reserved_minor + c.captured_minor - {x}) * 100 < t * c.amount_minor "
        "AND t * c.amount_minor <= (c.reserved_minor + c.captured_minor) * 100)", "threshold_reached")
    statement.guard(f"coalesce((SELECT max(version) FROM guardrail_versions WHERE account_id = {a}), 0) = "
                    f"{p(read.policy_version, 'INT')}", "policy_changed")
    assert read.head is not None
    statement.guard(f"(SELECT h.revision FROM ({catalog.head_sql()}) AS h) = {p(read.head[0], 'INT')}",
                    "catalog_changed")
    cap = read.policy.per_user_cap_minor
    if cap is not None:  # checked against the spend as it is now (the decision saw it a moment ago)
        states = ", ".join(f"'{s}'" for s in SPENDING_STATES)
        statement.guard(
            "(SELECT coalesce(sum(o.total_minor - o.refunded_minor), 0) FROM orders o WHERE o.account_id = "
            f"{a} AND o.user_id = {p(order.user_id, 'VARCHAR')} AND o.route = 'budget' AND o.state IN ({states}) "
            f"AND o.created_at >= {p(period_of(now)[0], 'TIMESTAMPTZ')}) + {x} <= {p(cap, 'BIGINT')}", "over_cap")


_MEMO_GUARDS = frozenset({"memo_changed", "memo_period"})


def _memo_guards(statement: Statement, memo: Remembered, *, key: str) -> None:
    """That what the memo holds is what the order's read would find now (checked before any other guard, so a
    stale memo refuses before the statement's writes ran)."""
    p = statement.param
    facts = memo.facts
    budget = facts.budget
    assert budget is not None
    a = p(facts.account.account_id, "VARCHAR")
    row = (list(facts.period[1:]) if facts.period is not None and facts.period[0] == key else None)
    statement.guard(  # this period's budget row holds what it held (or still is not there)
        f"(SELECT ARRAY[amount_minor, reserved_minor, captured_minor] FROM budget_periods WHERE account_id = {a} "
        f"AND budget_id = {p(budget.budget_id, 'VARCHAR')} AND period = {p(key, 'VARCHAR')}) "
        f"IS NOT DISTINCT FROM {p(row, 'BIGINT[]')}", "memo_period", first=True)
    statement.guard(  # the same account, buyer and budget row versions, and the same categories credited
        f"(SELECT xmin::text FROM accounts WHERE account_id = {a}) = {p(memo.account_xmin, 'TEXT')} "
        f"AND (SELECT xmin::text FROM users WHERE account_id = {a} AND user_id = "
        f"{p(facts.user.user_id, 'VARCHAR')}) = {p(memo.user_xmin, 'TEXT')} "
        f"AND (SELECT x.budget_id || ' ' || x.xmin::text FROM budgets x WHERE x.account_id = {a} "
        f"AND (x.cost_center = {p(facts.user.cost_center, 'VARCHAR')} OR x.cost_center IS NULL) "
        f"ORDER BY x.cost_center IS NULL LIMIT 1) = {p(budget.budget_id + ' ' + memo.budget_xmin, 'TEXT')} "
        f"AND {credited_sql(a, p(list(memo.categories), 'VARCHAR[]'))} = {p(sorted(facts.credited), 'VARCHAR[]')}",
        "memo_changed", first=True)
