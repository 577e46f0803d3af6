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
from billing.domain.quotes import modules_of
from billing.models import Budget, Order, Quote
from billing.schemas import SimulatedChange, SimulationRead
from billing.service._budgets import pick_budget


@dataclass
class _Tally:
    requests: int = 0
    count: dict[g.Outcome, int] = field(default_factory=lambda: dict.fromkeys(_OUTCOMES, 0))
    spend: dict[g.Outcome, int] = field(default_factory=lambda: dict.fromkeys(_OUTCOMES, 0))
    changed: list[SimulatedChange] = field(default_factory=list)


_OUTCOMES: tuple[g.Outcome, ...] = ("auto_approved", "approval_required", "blocked")


async def simulate(session: AsyncSession, account: Account, policy: g.GuardrailPolicy, *, days: int,
                   clock: Clock, sample: int = 20) -> SimulationRead:
    """Each order of the last ``days``, in time order, decided by the draft policy.

    The requester's spend and the budget's remaining amount run forward from the start of each period
    as the draft policy would have let purchases through, so the result is what the period would have
    looked like under the draft (the budget amount is today's).
    """
    since = clock.now() - timedelta(days=days)
    rows = (await session.execute(
        select(Order, Quote, User)
        .join(Quote, (Quote.account_id == Order.account_id) & (Quote.quote_id == Order.quote_id))
        .join(User, (User.account_id == Order.account_id) & (User.user_id == Order.user_id))
        .where(Order.account_id == account.account_id, Order.created_at >= since).order_by(Order.created_at))).all()
    budgets = list((await session.scalars(select(Budget).where(Budget.account_id == account.account_id))).all())
    tally = _Tally()
    spent: dict[tuple[str, str], int] = defaultdict(int)
    used: dict[tuple[str, str], int] = defaultdict(int)
    for order, quote, user in rows:
        period = period_key(period_of(order.created_at)[0])
        budget = pick_budget(budgets, user.cost_center)
        state = None if budget is None else g.BudgetState(
            currency=budget.currency, remaining_minor=budget.amount_minor - used[(budget.budget_id, period)])
        d = g.decide(policy, g.Requester(roles=frozenset(user.roles), cost_center=user.cost_center),
                     g.Purchase(modules=modules_of(order.lines), total_minor=order.total_minor,
                                currency=order.currency,
                                vendor_approval_required=quote.decision.vendor_approval_required),
                     spent_minor=spent[(order.user_id, period)], budget=state)
        tally.requests += 1
        tally.count[d.outcome] += 1
        tally.spend[d.outcome] += order.total_minor
        if d.outcome != "blocked" and d.route == "budget":
            spent[(order.user_id, period)] += order.total_minor
            if budget is not None:
                used[(budget.budget_id, period)] += order.total_minor
        if quote.decision.outcome != d.outcome and len(tally.changed) < sample:
            tally.changed.append(SimulatedChange(
                order_id=order.order_id, user=user.external_id, total_minor=order.total_minor,
                was=quote.decision.outcome, would_be=d.outcome, reasons=list(d.reasons)))
    return SimulationRead(
        days=days, requests=tally.requests, auto_approved=tally.count["auto_approved"],
        approval_required=tally.count["approval_required"], blocked=tally.count["blocked"],
        spend_auto_approved_minor=tally.spend["auto_approved"],
        spend_approval_required_minor=tally.spend["approval_required"],
        spend_blocked_minor=tally.spend["blocked"], changed=tally.changed)
