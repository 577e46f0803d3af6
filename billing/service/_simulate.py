"""Replay an account's recent purchase requests against a draft guardrail policy."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Account, User
from app.clock import Clock
from billing.domain import guardrails as g
from billing.domain.periods import period_key, period_of
from billing.models import Order, Quote
from billing.service._budgets import budget_for


@dataclass
class Simulation:
    requests: int = 0
    auto_approved: int = 0
    approval_required: int = 0
    blocked: int = 0
    spend_auto_approved_minor: int = 0
    spend_approval_required_minor: int = 0
    spend_blocked_minor: int = 0
    changed: list[dict[str, object]] = field(default_factory=list)


async def simulate(session: AsyncSession, account: Account, policy: g.GuardrailPolicy, *, days: int,
                   clock: Clock, sample: int = 20) -> Simulation:
    """Each order of the last ``days``, in time order, decided by the draft policy.

    The requester's spend and the budget's remaining amount run forward from the start of each period
    as the draft policy would have let purchases through, so the result is what the period would have
    looked like under the draft (the budget amount is today's).
    """
    since = clock.now() - timedelta(days=days)
    rows = (await session.execute(
        select(Order, Quote).join(Quote, (Quote.account_id == Order.account_id) & (Quote.quote_id == Order.quote_id))
        .where(Order.account_id == account.account_id, Order.created_at >= since).order_by(Order.created_at))).all()
    result = Simulation()
    spent: dict[tuple[str, str], int] = defaultdict(int)
    used: dict[tuple[str | None, str], int] = defaultdict(int)
    users: dict[str, User] = {}
    for order, quote in rows:
        if order.user_id not in users:
            users[order.user_id] = await session.get_one(User, (order.account_id, order.user_id))
        user = users[order.user_id]
        period = period_key(period_of(order.created_at)[0])
        budget = await budget_for(session, account.account_id, user.cost_center)
        state = None
        if budget is not None:
            key = (budget.budget_id, period)
            state = g.BudgetState(currency=budget.currency, remaining_minor=budget.amount_minor - used[key])
        d = g.decide(policy, g.Requester(roles=frozenset(user.roles), cost_center=user.cost_center),
                     g.Purchase(modules=tuple(x["module"] for x in order.lines), total_minor=order.total_minor,
                                currency=order.currency,
                                vendor_approval_required=tuple(quote.decision.get("vendor_approval_required", []))),
                     spent_minor=spent[(order.user_id, period)], budget=state)
        result.requests += 1
        setattr(result, d.outcome, getattr(result, d.outcome) + 1)
        spend_field = f"spend_{d.outcome}_minor"
        setattr(result, spend_field, getattr(result, spend_field) + order.total_minor)
        if d.outcome != "blocked" and d.route == "budget":
            spent[(order.user_id, period)] += order.total_minor
            if budget is not None:
                used[(budget.budget_id, period)] += order.total_minor
        actual = quote.decision.get("outcome")
        if actual != d.outcome and len(result.changed) < sample:
            result.changed.append({"order_id": order.order_id, "user": user.external_id,
                                   "total_minor": order.total_minor, "was": actual, "would_be": d.outcome,
                                   "reasons": list(d.reasons)})
    return result
