"""Auto-quote: price the requested modules for this user and account, and decide how it would be paid."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

import catalog
import entitlements
from app.accounts.models import Account, User
from app.clock import Clock
from app.errors import FieldError, NotFound, Unprocessable
from app.ids import new_id
from billing.domain import guardrails as g
from billing.domain.periods import period_of
from billing.domain.pricing import LineInput, price_line
from billing.models import Order, Quote
from billing.service._budgets import budget_for, budget_state
from billing.service._guardrails import current_policy
from catalog.spec import MeteredPrice, OneTimePrice, RecurringPrice

SPENDING_STATES = ("pending_approval", "approved", "payment_pending", "requires_action", "paid", "fulfilled")


@dataclass(frozen=True)
class QuoteItem:
    module: str
    quantity: int = 1
    interval: str | None = None  # choose the monthly or yearly price when a module has both


class ModuleNotAvailable(Unprocessable):
    code, title = "module_not_available", "Module not available"


def _pick_price(live: catalog.Live, module: str, currency: str, interval: str | None) -> Any:
    """The current price line to sell: the requested interval, else monthly, yearly, one-time, metered."""
    lines = [lp for (mk, _), lp in live.prices.items() if mk == module and lp.price.currency == currency]

    def rank(lp: Any) -> int:
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


def _line_input(lp: Any, module: str, quantity: int) -> LineInput:
    p = lp.price
    if isinstance(p, RecurringPrice):
        return LineInput(module=module, price_id=lp.price_id, model="recurring", unit_amount_minor=p.amount_minor,
                         quantity=quantity if p.per_seat else 1, interval=p.interval)
    if isinstance(p, OneTimePrice):
        return LineInput(module=module, price_id=lp.price_id, model="one_time", unit_amount_minor=p.amount_minor,
                         quantity=quantity)
    assert isinstance(p, MeteredPrice)
    first = p.tiers[0].unit_amount_minor if p.tiers else 0
    return LineInput(module=module, price_id=lp.price_id, model="metered", unit_amount_minor=first, quantity=1)


async def spent_this_period(session: AsyncSession, user: User, *, now: datetime) -> int:
    """What the user's budget-route orders of this (calendar) period hold or took."""
    start, _ = period_of(now)
    total = await session.scalar(
        select(func.coalesce(func.sum(Order.total_minor - Order.refunded_minor), 0))
        .where(Order.account_id == user.account_id, Order.user_id == user.user_id, Order.route == "budget",
               Order.state.in_(SPENDING_STATES), Order.created_at >= start))
    return int(total or 0)


async def decide_for(session: AsyncSession, account: Account, user: User, *, modules: tuple[str, ...],
                     total_minor: int, currency: str, vendor_approval: tuple[str, ...], clock: Clock,
                     exclude_order: str | None = None) -> g.Decision:
    """The guardrail decision for this purchase as things stand now."""
    _, policy = await current_policy(session, account)
    budget = await budget_for(session, account.account_id, user.cost_center)
    state = await budget_state(session, budget, clock=clock) if budget is not None else None
    return g.decide(
        policy, g.Requester(roles=frozenset(user.roles), cost_center=user.cost_center),
        g.Purchase(modules=modules, total_minor=total_minor, currency=currency,
                   vendor_approval_required=vendor_approval),
        spent_minor=await spent_this_period(session, user, now=clock.now()),
        budget=g.BudgetState(currency=state.budget.currency, remaining_minor=state.remaining_minor) if state else None,
    )


async def create_quote(session: AsyncSession, account: Account, user: User, items: list[QuoteItem], *,
                       include_requirements: bool, clock: Clock, ttl: timedelta) -> Quote:
    """Price the items for this user (locked until expiry) with the guardrail decision."""
    now = clock.now()
    live = await catalog.load_live(session)
    modules = {m.key: m for m in live.doc.modules}
    owned = await entitlements.owned_modules(session, account.account_id, user.user_id, now=now)
    audience = catalog.Audience(roles=frozenset(user.roles), segment=account.segment, region=account.region,
                                owned=owned)
    wanted = list(items)
    keys = [i.module for i in wanted]
    unmet: list[str] = []
    errors: list[FieldError] = []
    for i, item in enumerate(wanted):
        module = modules.get(item.module)
        availability = catalog.evaluate_availability(live, item.module, audience) if module else None
        if module is None or availability is None or availability.effect == "hidden":
            raise NotFound(f"Module {item.module!r} does not exist.")
        if item.module in owned:
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
    lines: list[dict[str, Any]] = []
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
        line = price_line(_line_input(lp, item.module, item.quantity), now=now, anchor_day=1,
                          discount_bps=account.discount_bps)
        module = modules[item.module]
        lines.append({
            "module": item.module, "name": module.name, "category": module.category, "price_id": lp.price_id,
            "price_version": lp.version, "model": line.model, "interval": (line.period_end and item.interval)
            or getattr(lp.price, "interval", None), "per_seat": bool(getattr(lp.price, "per_seat", False)),
            "quantity": item.quantity, "unit_amount_minor": line.unit_amount_minor,
            "full_period_minor": line.full_period_minor, "prorated_minor": line.prorated_minor,
            "discount_minor": line.discount_minor, "total_minor": line.total_minor,
            "period_start": line.period_start.isoformat() if line.period_start else None,
            "period_end": line.period_end.isoformat() if line.period_end else None,
            "proration": f"{line.proration.numerator}/{line.proration.denominator}",
            "trial_days": module.trial_days,
        })
    subtotal = sum(int(x["prorated_minor"]) for x in lines)
    discount = sum(int(x["discount_minor"]) for x in lines)
    total = subtotal - discount
    decision = await decide_for(session, account, user, modules=tuple(x["module"] for x in lines),
                                total_minor=total, currency=account.currency, vendor_approval=tuple(vendor_approval),
                                clock=clock)
    quote = Quote(account_id=account.account_id, quote_id=new_id("quo"), user_id=user.user_id,
                  currency=account.currency, lines=lines, subtotal_minor=subtotal, discount_minor=discount,
                  total_minor=total, unmet_requires=unmet,
                  decision={**decision_dict(decision), "vendor_approval_required": vendor_approval},
                  status="open", created_at=now, expires_at=now + ttl)
    session.add(quote)
    await session.flush()
    return quote


def decision_dict(d: g.Decision) -> dict[str, Any]:
    return {"route": d.route, "outcome": d.outcome, "reasons": list(d.reasons)}


async def get_quote(session: AsyncSession, account_id: str, quote_id: str) -> Quote | None:
    return await session.get(Quote, (account_id, quote_id))
