"""Auto-quote: price the requested modules for this user and account, and decide how it would be paid."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

import catalog
import entitlements
from app.accounts import resolve_user
from app.accounts.models import Account, User
from app.auth import Principal
from app.clock import Clock
from app.errors import FieldError, NotFound
from app.ids import new_id
from billing.domain import guardrails as g
from billing.domain.metering import terms
from billing.domain.orders import OrderState
from billing.domain.periods import Interval, period_of
from billing.domain.pricing import LineInput, price_line
from billing.domain.quotes import QuoteDecision, QuoteLine, discount_minor, modules_of, quote_line, subtotal_minor
from billing.errors import ModuleNotAvailable
from billing.models import Budget, GuardrailVersion, Order, Quote
from billing.schemas import QuoteRead
from billing.service._budgets import budget_and_state
from billing.service._order_reads import quote_read
from catalog.domain import LivePrice
from catalog.spec import MeteredPrice, OneTimePrice, RecurringPrice

SPENDING_STATES: tuple[OrderState, ...] = ("pending_approval", "approved", "payment_pending", "requires_action",
                                           "paid", "fulfilled")


@dataclass(frozen=True)
class QuoteItem:
    module: str
    quantity: int = 1
    interval: Interval | None = None  # choose the monthly or yearly price when a module has both


def _pick_price(live: catalog.Live, module: str, currency: str, interval: Interval | None) -> LivePrice | None:
    """The current price line to sell: the requested interval, else monthly, yearly, one-time, metered."""
    lines = [lp for (mk, _), lp in live.prices.items() if mk == module and lp.price.currency == currency]

    def rank(lp: LivePrice) -> int:
        p = lp.price
        if isinstance(p, RecurringPrice):
            if interval is not None:
                return 0 if p.interval == interval else 9
            return 0 if p.interval == "month" else 1
        if interval is not None:
            return 9
        return 2 if isinstance(p, OneTimePrice) else 3

    ranked = sorted((rank(lp), lp.price_id, lp) for lp in lines)
    if not ranked or ranked[0][0] == 9:
        return None
    return ranked[0][2]


def _line_input(lp: LivePrice, module: str, quantity: int) -> LineInput:
    p = lp.price
    if isinstance(p, RecurringPrice):
        return LineInput(module=module, price_id=lp.price_id, model="recurring", unit_amount_minor=p.amount_minor,
                         quantity=quantity if p.per_seat else 1, interval=p.interval)
    if isinstance(p, OneTimePrice):
        return LineInput(module=module, price_id=lp.price_id, model="one_time", unit_amount_minor=p.amount_minor,
                         quantity=quantity)
    assert isinstance(p, MeteredPrice)  # tiers has at least one entry (the catalog's schema)
    return LineInput(module=module, price_id=lp.price_id, model="metered",
                     unit_amount_minor=p.tiers[0].unit_amount_minor, quantity=1)


async def spent_this_period(session: AsyncSession, user: User, *, now: datetime) -> int:
    """What the user's budget-route orders of this (calendar) period hold or took."""
    start, _ = period_of(now)
    total = await session.scalar(
        select(func.coalesce(func.sum(Order.total_minor - Order.refunded_minor), 0))
        .where(Order.account_id == user.account_id, Order.user_id == user.user_id, Order.route == "budget",
               Order.state.in_(SPENDING_STATES), Order.created_at >= start))
    return int(total or 0)


@dataclass(frozen=True)
class DecisionContext:
    """A guardrail decision with what it was made from, so placing the order does not read them again."""

    decision: g.Decision
    policy: g.GuardrailPolicy
    budget: Budget | None
    period: str | None  # the budget period row this transaction read (or created)


async def decide_in_context(session: AsyncSession, account: Account, user: User, *, modules: tuple[str, ...],
                            total_minor: int, currency: str, vendor_approval: tuple[str, ...],
                            clock: Clock) -> DecisionContext:
    """The guardrail decision for this purchase as things stand now, with the policy and budget it used.

    Two queries: the budget with this period's balance, and the policy in force with the user's spend so far."""
    now = clock.now()
    budget, state, period_exists = await budget_and_state(session, account.account_id, user.cost_center, now=now)
    start, _ = period_of(now)
    policy_in_force = (select(GuardrailVersion.policy).where(GuardrailVersion.account_id == account.account_id)
                       .order_by(GuardrailVersion.version.desc()).limit(1).scalar_subquery())
    spent = (select(func.coalesce(func.sum(Order.total_minor - Order.refunded_minor), 0))
             .where(Order.account_id == user.account_id, Order.user_id == user.user_id, Order.route == "budget",
                    Order.state.in_(SPENDING_STATES), Order.created_at >= start).scalar_subquery())
    stored, spent_minor = (await session.execute(select(policy_in_force, spent))).one()
    policy: g.GuardrailPolicy = stored if stored is not None else g.GuardrailPolicy()
    decision = g.decide(
        policy, g.Requester(roles=frozenset(user.roles), cost_center=user.cost_center),
        g.Purchase(modules=modules, total_minor=total_minor, currency=currency,
                   vendor_approval_required=vendor_approval),
        spent_minor=int(spent_minor or 0),
        budget=g.BudgetState(currency=state.budget.currency, remaining_minor=state.remaining_minor) if state else None,
    )
    return DecisionContext(decision=decision, policy=policy, budget=budget,
                           period=state.period if state is not None and period_exists else None)


async def decide_for(session: AsyncSession, account: Account, user: User, *, modules: tuple[str, ...],
                     total_minor: int, currency: str, vendor_approval: tuple[str, ...], clock: Clock) -> g.Decision:
    """The guardrail decision for this purchase as things stand now."""
    context = await decide_in_context(session, account, user, modules=modules, total_minor=total_minor,
                                      currency=currency, vendor_approval=vendor_approval, clock=clock)
    return context.decision


async def create_quote(session: AsyncSession, account: Account, user: User, items: list[QuoteItem], *,
                       include_requirements: bool, clock: Clock, ttl: timedelta) -> Quote:
    """Price the items for this user (locked until expiry) with the guardrail decision (tax not computed)."""
    quote = await price_quote(session, account, user, items, include_requirements=include_requirements, clock=clock,
                              ttl=ttl)
    session.add(quote)
    await session.flush()
    return quote


async def price_quote(session: AsyncSession, account: Account, user: User, items: list[QuoteItem], *,
                      include_requirements: bool, clock: Clock, ttl: timedelta) -> Quote:
    """The quote ``create_quote`` stores, not stored (reads only): tax is computed before it is stored."""
    now = clock.now()
    live = await catalog.load_live(session)
    # a module held only on trial is bought to keep it (the order marks the trial converted)
    held, owned = await entitlements.owned_modules_both(session, account.account_id, user.user_id, now=now)
    priced = priced_lines(live, account, user, items, held=held, owned=owned,
                          include_requirements=include_requirements, now=now)
    decision = await decide_for(session, account, user, modules=modules_of(priced.lines), total_minor=priced.total,
                                currency=account.currency, vendor_approval=priced.vendor_approval, clock=clock)
    return quote_of(priced, account, user, decision, now=now, ttl=ttl)


@dataclass(frozen=True)
class Priced:
    """A quote's priced lines before its guardrail decision."""

    lines: list[QuoteLine]
    unmet: list[str]
    vendor_approval: tuple[str, ...]
    subtotal: int
    discount: int

    @property
    def total(self) -> int:
        return self.subtotal - self.discount


def priced_lines(live: catalog.Live, account: Account, user: User, items: list[QuoteItem], *,
                 held: frozenset[str], owned: frozenset[str], include_requirements: bool, now: datetime) -> Priced:
    """Price the items for this user from what was read (the live catalog, the modules held and owned); raises
    the quote's refusals (404, module_not_available)."""
    modules_by_key = {m.key: m for m in live.doc.modules}
    audience = catalog.Audience(roles=frozenset(user.roles), segment=account.segment, region=account.region,
                                owned=held)
    wanted = list(items)
    keys = [i.module for i in wanted]
    unmet: list[str] = []
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, item in enumerate(wanted):
        if item.module in seen:  # one line per module: a second one would price and grant it twice
            errors.append(FieldError(field=f"items[{i}].module",
                                     message=f"{item.module} is listed twice; ask for its quantity on one line"))
            continue
        seen.add(item.module)
        module = modules_by_key.get(item.module)
        availability = catalog.evaluate_availability(live, item.module, audience) if module else None
        if module is None or availability is None or availability.effect == "hidden":
            raise NotFound(f"Module {item.module!r} does not exist.")
        if item.module in owned:  # held on a trial only: buying it is the conversion
            errors.append(FieldError(field=f"items[{i}].module", message=f"you already have {item.module}"))
        elif module.status != "active" or availability.effect not in ("purchasable", "approval_required"):
            errors.append(FieldError(field=f"items[{i}].module",
                                     message=f"{item.module} cannot be bought: {availability.reason}"))
        for req in module.requires:
            if req not in owned and req not in keys and req not in unmet:
                unmet.append(req)
    if include_requirements:
        for req in list(unmet):
            wanted.append(QuoteItem(module=req))
            keys.append(req)
        unmet = []
    if errors:
        raise ModuleNotAvailable("Some modules cannot be quoted for you.", errors=errors)
    lines: list[QuoteLine] = []
    vendor_approval: list[str] = []
    for i, item in enumerate(wanted):
        effect = catalog.evaluate_availability(live, item.module, audience)
        if effect.effect not in ("purchasable", "approval_required"):
            raise ModuleNotAvailable(f"{item.module} is required but cannot be bought: {effect.reason}",
                                     module=item.module)
        if effect.effect == "approval_required":
            vendor_approval.append(item.module)
        lp = _pick_price(live, item.module, account.currency, item.interval)
        if lp is None:
            raise ModuleNotAvailable(f"{item.module} has no price in {account.currency}"
                                     + (f" billed every {item.interval}" if item.interval else "") + ".",
                                     errors=[FieldError(field=f"items[{i}]", message="no price")])
        priced = price_line(_line_input(lp, item.module, item.quantity), now=now, anchor_day=1,
                            discount_bps=account.discount_bps)
        module = modules_by_key[item.module]
        price = lp.price
        lines.append(quote_line(
            priced, name=module.name, category=module.category, price_version=lp.version,
            interval=None if isinstance(price, OneTimePrice) else price.interval,
            per_seat=isinstance(price, RecurringPrice) and price.per_seat, trial_days=module.trial_days,
            metered=terms(price) if isinstance(price, MeteredPrice) else None,
            tax_code=module.tax_code, tax_behavior=price.tax_behavior))
    return Priced(lines=lines, unmet=unmet, vendor_approval=tuple(vendor_approval), subtotal=subtotal_minor(lines),
                  discount=discount_minor(lines))


def quote_of(priced: Priced, account: Account, user: User, decision: g.Decision, *, now: datetime,
             ttl: timedelta, make: Callable[..., Quote] = Quote) -> Quote:
    """The quote (not stored) of priced lines and their guardrail decision (``make``: e.g. a plain row for a
    fast path's statement, app.onestatement.plain)."""
    return make(account_id=account.account_id, quote_id=new_id("quo"), user_id=user.user_id,
                currency=account.currency, lines=priced.lines, subtotal_minor=priced.subtotal,
                discount_minor=priced.discount, total_minor=priced.total, unmet_requires=priced.unmet,
                decision=stored_decision(decision, vendor_approval=priced.vendor_approval),
                status="open", created_at=now, expires_at=now + ttl)


def stored_decision(d: g.Decision, *, vendor_approval: tuple[str, ...]) -> QuoteDecision:
    """The decision as a quote keeps it (placing the order decides again, with the vendor's approvals)."""
    return QuoteDecision(route=d.route, outcome=d.outcome, reasons=d.reasons, vendor_approval_required=vendor_approval)


def decision_dict(d: g.Decision) -> dict[str, object]:
    """The decision as order.created's payload carries it."""
    return {"route": d.route, "outcome": d.outcome, "reasons": list(d.reasons)}


async def auto_quote(session: AsyncSession, principal: Principal, *, user_ref: str, items: list[QuoteItem],
                     include_requirements: bool, clock: Clock, ttl: timedelta) -> QuoteRead:
    """POST /v1/quotes: quote for a user this principal may act for (an end user: only itself)."""
    user = await resolve_user(session, principal, user_ref)
    account = await session.get_one(Account, user.account_id)
    quote = await create_quote(session, account, user, items, include_requirements=include_requirements,
                               clock=clock, ttl=ttl)
    return quote_read(quote, account_ref=account.external_id, user_ref=user.external_id)
