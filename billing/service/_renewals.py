"""Renewals, the database side: claim a due subscription, its renewal order, budget renewals, the outcome.

Each subscription is renewed by a renewal order (one per subscription and period: a unique index), so the
renewal uses the same state machine, grants, sales credit (motion ``renewal``), refunds and statements as a
purchase. Safe to run twice at once: a subscription is claimed with ``FOR UPDATE SKIP LOCKED`` and marked
``renewing`` in the claiming transaction; a card is charged after that commits (key
``order:{id}:pi:{attempt}``; billing.stripe.flows.renew_one runs the steps), so a run that dies mid-way is
finished by the next one, which replays the same request. Budget renewals capture from the budget period
the renewal falls in, all in the claiming transaction. No Stripe call here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.accounts.models import Account, User
from app.clock import Clock
from app.events import publish
from app.ids import new_id
from app.settings import Settings
from billing.domain.periods import period_of
from billing.domain.pricing import LineInput, price_line
from billing.domain.quotes import QuoteDecision, renewal_line
from billing.errors import BudgetExhausted
from billing.events import order_event
from billing.models import CardPayment, Order, Quote, Subscription
from billing.service import _subscriptions as subscriptions
from billing.service._budgets import budget_for, reserve
from billing.service._orders import _move, _pay_and_fulfil, order_payload
from billing.service._payments import start_attempt
from billing.service._price_migrations import migrate_at_renewal
from billing.stripe.errors import CardSetupRequired

log = logging.getLogger("commerce.billing.run")


@dataclass
class RunReport:
    renewed: int = 0
    failed: int = 0
    ended: int = 0
    pending: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"renewed: {self.renewed}, failed: {self.failed}, ended: {self.ended}, pending: {self.pending}, "
                f"skipped: {self.skipped}, errors: {len(self.errors)}")


def due(now_clock: Clock, settings: Settings) -> ColumnElement[bool]:
    """Subscriptions to renew now: active past their period, past due at their retry, or a run that died."""
    now = now_clock.now()
    stale = now - timedelta(seconds=settings.reconcile_after_seconds)
    return or_(and_(Subscription.status == "active", Subscription.current_period_end <= now),
               and_(Subscription.status == "past_due", Subscription.next_attempt_at <= now),
               and_(Subscription.status == "renewing", Subscription.updated_at <= stale))


async def due_subscriptions(session: AsyncSession, *, settings: Settings, clock: Clock,
                            limit: int = 500) -> list[tuple[str, str]]:
    """(account id, subscription id) of due subscriptions, the oldest period end first."""
    rows = (await session.execute(
        select(Subscription.account_id, Subscription.subscription_id).where(due(clock, settings))
        .order_by(Subscription.current_period_end).limit(limit))).all()
    return [(account_id, subscription_id) for account_id, subscription_id in rows]


@dataclass(frozen=True)
class Claim:
    """What the claiming transaction decided: a final result, or a card attempt to charge (then finish)."""

    result: str | None  # renewed | failed | ended | skipped, when nothing is left to do
    order_id: str | None = None
    attempt: int = 0
    payment: CardPayment | None = None


async def claim_renewal(session: AsyncSession, account_id: str, subscription_id: str, *, card: str | None,
                        settings: Settings, clock: Clock) -> Claim:
    """Step 1: lock the due subscription, make its renewal order, renew from the budget or start a card attempt."""
    sub = await subscriptions.locked(session, account_id, subscription_id, skip_locked=True)
    if sub is None or (await session.scalar(select(Subscription.subscription_id).where(
            Subscription.account_id == account_id, Subscription.subscription_id == subscription_id,
            due(clock, settings)))) is None:
        return Claim("skipped")  # another run holds it, or it is not due any more
    attempt = sub.dunning_attempts if sub.status == "renewing" else sub.dunning_attempts + 1
    sub.status, sub.dunning_attempts, sub.updated_at = "renewing", attempt, clock.now()
    account = await session.get_one(Account, account_id)
    user = await session.get_one(User, (account_id, sub.user_id))
    order = await renewal_order(session, sub, account, user, clock=clock)
    if order.total_minor == 0 and order.state == "approved":
        await _pay_and_fulfil(session, order, account, user, clock=clock)
        return Claim(_result(sub, order))
    if sub.route == "budget":
        await _renew_from_budget(session, sub, order, account, user, attempt=attempt, settings=settings, clock=clock)
        return Claim(_result(sub, order))
    payment = None
    if order.state != "requires_action":  # waiting for the customer: never start a second charge
        try:
            payment = await start_attempt(session, order, account, user, payment_method_id=card, clock=clock)
        except CardSetupRequired as exc:
            await _fail(session, order, account, user, reason=exc.detail, clock=clock)
    return Claim(None, order.order_id, attempt, payment)


async def finish_renewal(session: AsyncSession, account_id: str, subscription_id: str, order_id: str, *,
                         attempt: int, settings: Settings, clock: Clock) -> str:
    """Last step: the renewal order's state decides; an unpaid renewal starts (or continues) dunning."""
    sub = await subscriptions.locked(session, account_id, subscription_id)
    order = await session.get_one(Order, (account_id, order_id), populate_existing=True)
    assert sub is not None
    if order.state != "fulfilled":
        await subscriptions.renewal_failed(session, sub, order, attempt=attempt,
                                           reason=order.failure_reason or "The bank asks the customer to "
                                           "confirm the payment.", settings=settings, clock=clock)
    return _result(sub, order)


def _result(sub: Subscription, order: Order) -> str:
    if order.state == "fulfilled":
        return "renewed"
    return "ended" if sub.status in ("ended", "canceled") else "failed"


async def _fail(session: AsyncSession, order: Order, account: Account, user: User, *, reason: str,
                clock: Clock) -> None:
    if order.state == "failed":
        await _move(session, order, "payment_pending", account=account, user=user, clock=clock, retry=True)
    order.failure_reason = reason
    await _move(session, order, "failed", account=account, user=user, clock=clock, reason=reason)


async def _renew_from_budget(session: AsyncSession, sub: Subscription, order: Order, account: Account, user: User,
                             *, attempt: int, settings: Settings, clock: Clock) -> None:
    budget = await budget_for(session, account.account_id, user.cost_center)
    reason = None
    if budget is None:
        reason = "The account has no budget to renew from."
    elif order.total_minor > 0:
        order.budget_id = budget.budget_id
        try:
            await reserve(session, budget, order_id=order.order_id, amount_minor=order.total_minor, clock=clock,
                          capture_now=True)
        except BudgetExhausted as exc:
            reason = exc.detail
    if reason is None:
        if order.state == "failed":
            await _move(session, order, "payment_pending", account=account, user=user, clock=clock, retry=True)
        await _pay_and_fulfil(session, order, account, user, clock=clock)
        return
    await _fail(session, order, account, user, reason=reason, clock=clock)
    await subscriptions.renewal_failed(session, sub, order, attempt=attempt, reason=reason, settings=settings,
                                       clock=clock)


async def renewal_order(session: AsyncSession, sub: Subscription, account: Account, user: User, *,
                        clock: Clock) -> Order:
    """The renewal order of the subscription's next period (made once: a unique index backs it)."""
    start, end = period_of(sub.current_period_end, interval=sub.interval, anchor_day=1)
    start = sub.current_period_end
    existing = await session.scalar(select(Order).where(
        Order.account_id == sub.account_id, Order.subscription_id == sub.subscription_id,
        Order.renewal_period == start.isoformat()).with_for_update())
    if existing is not None:
        return existing
    await migrate_at_renewal(session, sub, clock=clock)  # a migration due by this period moves it first
    priced = price_line(LineInput(module=sub.module, price_id=sub.price_id, model="recurring",
                                  unit_amount_minor=sub.unit_amount_minor, quantity=sub.quantity,
                                  interval=sub.interval),
                        now=start, anchor_day=1, discount_bps=account.discount_bps)
    line = renewal_line(sub.line, priced, period_start=start, period_end=end)
    now = clock.now()
    reasons = (f"Renewal of {sub.module} for the period starting {start.date().isoformat()}.",)
    quote = Quote(account_id=sub.account_id, quote_id=new_id("quo"), user_id=sub.user_id, currency=sub.currency,
                  lines=[line], subtotal_minor=priced.prorated_minor, discount_minor=priced.discount_minor,
                  total_minor=priced.total_minor, unmet_requires=[],
                  decision=QuoteDecision(route=sub.route, outcome="auto_approved", reasons=reasons, renewal=True),
                  status="ordered", created_at=now, expires_at=now)
    session.add(quote)
    await session.flush()  # no ORM relationships: the quote must exist before the order references it
    order = Order(account_id=sub.account_id, order_id=new_id("ord"), quote_id=quote.quote_id, user_id=sub.user_id,
                  route=sub.route, state="approved", currency=sub.currency, total_minor=priced.total_minor,
                  refunded_minor=0, lines=[line], budget_id=None, reason="renewal", created_at=now, updated_at=now,
                  paid_at=None, fulfilled_at=None, subscription_id=sub.subscription_id,
                  renewal_period=start.isoformat())
    session.add(order)
    await session.flush()
    created, beside = order_event("created", {**order_payload(order, account, user),
                                              "renewal_of": sub.subscription_id})
    await publish(session, created, clock=clock, account_id=sub.account_id, extra=beside)
    if priced.total_minor == 0:
        return order
    await _move(session, order, "payment_pending", account=account, user=user, clock=clock)
    return order
