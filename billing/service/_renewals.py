"""The billing run (``commerce billing run``): renew due subscriptions on both routes, with dunning.

Each subscription is renewed by a renewal order (one per subscription and period: a unique index), so the
renewal uses the same state machine, grants, sales credit (motion ``renewal``), refunds and statements as a
purchase. Safe to run twice at once: a subscription is claimed with ``FOR UPDATE SKIP LOCKED`` and marked
``renewing`` in the claiming transaction; the card is charged after that commits (key
``order:{id}:pi:{attempt}``), so a run that dies mid-way is finished by the next one, which replays the same
request. Budget renewals capture from the budget period the renewal falls in, all in one transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from app import outbox
from app.accounts.models import Account, User
from app.clock import Clock
from app.ids import new_id
from app.settings import Settings
from billing.domain.periods import period_of
from billing.domain.pricing import LineInput, price_line
from billing.domain.quotes import QuoteDecision, renewal_line
from billing.errors import BudgetExhausted, CardSetupRequired
from billing.models import Order, Quote, Subscription
from billing.service import _subscriptions as subscriptions
from billing.service._budgets import budget_for, reserve
from billing.service._orders import _move, _pay_and_fulfil, order_payload
from billing.service._payments import choose_card, settle, start_attempt
from billing.stripe_gateway import PaymentProviderUnavailable, StripeGateway

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


def _due(now_clock: Clock, settings: Settings) -> ColumnElement[bool]:
    now = now_clock.now()
    stale = now - timedelta(seconds=settings.reconcile_after_seconds)
    return or_(and_(Subscription.status == "active", Subscription.current_period_end <= now),
               and_(Subscription.status == "past_due", Subscription.next_attempt_at <= now),
               and_(Subscription.status == "renewing", Subscription.updated_at <= stale))


async def run_billing(sessionmaker: async_sessionmaker[AsyncSession], gateway: StripeGateway | None, *,
                      settings: Settings, clock: Clock, limit: int = 500) -> RunReport:
    """Renew every due subscription (repeating while a pass makes progress, e.g. several missed periods)."""
    report = RunReport()
    seen: dict[tuple[str, str], int] = {}
    while True:
        async with sessionmaker() as session:
            due = (await session.execute(
                select(Subscription.account_id, Subscription.subscription_id).where(_due(clock, settings))
                .order_by(Subscription.current_period_end).limit(limit))).all()
        progress = False
        for account_id, subscription_id in due:
            key = (account_id, subscription_id)
            seen[key] = seen.get(key, 0) + 1
            if seen[key] > 24:  # bounded: never loop on one subscription
                continue
            try:
                result = await renew_one(sessionmaker, gateway, account_id, subscription_id, settings=settings,
                                         clock=clock)
            except Exception as exc:  # one subscription's surprise must not stop the others' renewals
                log.exception("renewing subscription %s failed", subscription_id)
                report.errors.append(f"{subscription_id}: {type(exc).__name__}")
                continue
            setattr(report, result, getattr(report, result) + 1)
            progress = progress or result in ("renewed", "failed", "ended")
        if not progress:
            return report


async def renew_one(sessionmaker: async_sessionmaker[AsyncSession], gateway: StripeGateway | None, account_id: str,
                    subscription_id: str, *, settings: Settings, clock: Clock) -> str:
    """One renewal attempt of one subscription: renewed | failed | ended | pending | skipped."""
    card: str | None = None
    async with sessionmaker() as session:
        sub = await session.get(Subscription, (account_id, subscription_id))
        if sub is None:
            return "skipped"
        route, user_id = sub.route, sub.user_id
        customer_id = (await session.get_one(User, (account_id, user_id))).stripe_customer_id
    if route == "card":
        if gateway is None:
            return "skipped"
        try:
            card = await choose_card(gateway, customer_id, None)  # a network call: before any transaction
        except CardSetupRequired:
            card = None
        except PaymentProviderUnavailable:
            return "pending"
    async with sessionmaker() as session, session.begin():
        sub = await subscriptions.locked(session, account_id, subscription_id, skip_locked=True)
        if sub is None or (await session.scalar(select(Subscription.subscription_id).where(
                Subscription.account_id == account_id, Subscription.subscription_id == subscription_id,
                _due(clock, settings)))) is None:
            return "skipped"  # another run holds it, or it is not due any more
        attempt = sub.dunning_attempts if sub.status == "renewing" else sub.dunning_attempts + 1
        sub.status, sub.dunning_attempts, sub.updated_at = "renewing", attempt, clock.now()
        account = await session.get_one(Account, account_id)
        user = await session.get_one(User, (account_id, sub.user_id))
        order = await renewal_order(session, sub, account, user, clock=clock)
        if order.total_minor == 0 and order.state == "approved":
            await _pay_and_fulfil(session, order, account, user, clock=clock)
            return _result(sub, order)
        if route == "budget":
            await _renew_from_budget(session, sub, order, account, user, attempt=attempt, settings=settings,
                                     clock=clock)
            return _result(sub, order)
        payment = None
        if order.state != "requires_action":  # waiting for the customer: never start a second charge
            try:
                payment = await start_attempt(session, order, account, user, payment_method_id=card, clock=clock)
            except CardSetupRequired as exc:
                await _fail(session, order, account, user, reason=exc.detail, clock=clock)
    if payment is not None:
        assert gateway is not None
        try:
            await settle(sessionmaker, gateway, payment, clock=clock)
        except PaymentProviderUnavailable:
            return "pending"  # stays renewing; the next run (after reconcile_after_seconds) replays the charge
    async with sessionmaker() as session, session.begin():
        sub = await subscriptions.locked(session, account_id, subscription_id)
        order = await session.get_one(Order, (account_id, order.order_id), populate_existing=True)
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
    await outbox.emit(session, clock=clock, type="order.created", account_id=sub.account_id, payload={
        **order_payload(order, account, user), "renewal_of": sub.subscription_id})
    if priced.total_minor == 0:
        return order
    await _move(session, order, "payment_pending", account=account, user=user, clock=clock)
    return order
