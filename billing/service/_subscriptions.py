"""Subscriptions: recurring order lines the billing run renews, and their dunning after a failed renewal.

Rules (docs/payments.md, "Renewals and dunning"):
* a fulfilled order starts one subscription per recurring line; a fulfilled renewal order moves its
  subscription to the renewed period and ends any grace;
* the first failed attempt for a period opens a grace period (``renewal_grace_days`` after the period end)
  with a grace grant, so access continues; retries follow ``renewal_retry_days`` (days after the period
  end); when the schedule is exhausted (or the next retry would fall after the grace), access ends now
  and the subscription ends.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import entitlements
from app import audit
from app.clock import Clock
from app.errors import Unprocessable
from app.events import publish
from app.ids import new_id
from app.settings import Settings
from billing.domain.subscriptions import EndStatus
from billing.errors import SubscriptionNotFound
from billing.events import (
    RenewalFailed,
    RenewalSucceeded,
    SubscriptionCanceled,
    SubscriptionEnded,
    SubscriptionEvent,
    SubscriptionUpdated,
)
from billing.models import Order, Subscription
from billing.service import _metering as metering


def grace_ref(order_id: str) -> str:
    return f"{order_id}:grace"


S = TypeVar("S", bound=SubscriptionEvent)


def sub_event(cls: type[S], sub: Subscription, **extra: object) -> S:
    """The subscription after the change as the event ``cls``, with that event's own members."""
    return msgspec.convert({
        "subscription_id": sub.subscription_id, "order_id": sub.order_id, "module": sub.module,
        "route": sub.route, "seats": sub.quantity, "status": sub.status,
        "current_period_start": sub.current_period_start.isoformat(),
        "current_period_end": sub.current_period_end.isoformat(), **extra}, cls)


async def locked(session: AsyncSession, account_id: str, subscription_id: str, *,
                 skip_locked: bool = False) -> Subscription | None:
    return await session.scalar(
        select(Subscription).where(Subscription.account_id == account_id,
                                   Subscription.subscription_id == subscription_id)
        .with_for_update(skip_locked=skip_locked).execution_options(populate_existing=True))


async def after_fulfil(session: AsyncSession, order: Order, *, clock: Clock) -> None:
    """Start subscriptions for a new order's recurring lines, or advance the one a renewal order renewed."""
    now = clock.now()
    if order.subscription_id is not None:
        sub = await locked(session, order.account_id, order.subscription_id)
        assert sub is not None, "renewal orders belong to a subscription"
        line = order.lines[0]
        assert line.period_start is not None and line.period_end is not None, "renewal lines are recurring"
        sub.current_period_start, sub.current_period_end = line.period_start, line.period_end
        sub.status = "active" if sub.status != "canceled" else sub.status
        sub.grace_until = sub.next_attempt_at = sub.ended_at = None
        await _carry_seats(session, sub, [sub.last_order_id, grace_ref(order.order_id)], order.order_id, clock=clock)
        sub.dunning_attempts, sub.last_order_id, sub.updated_at = 0, order.order_id, now
        await entitlements.revoke_by_source(session, account_id=order.account_id, source="order",
                                            source_ref=grace_ref(order.order_id), reason="renewal paid", clock=clock)
        await publish(session, sub_event(RenewalSucceeded, sub, renewal_order_id=order.order_id,
                                         total_minor=order.total_minor, currency=order.currency),
                      clock=clock, account_id=order.account_id)
        return
    await metering.start_plans(session, order, clock=clock)
    for line in order.lines:
        if not line.recurring:
            continue
        assert line.interval is not None and line.period_start is not None and line.period_end is not None
        session.add(Subscription(
            account_id=order.account_id, subscription_id=new_id("sub"), order_id=order.order_id,
            user_id=order.user_id, module=line.module, route=order.route, price_id=line.price_id,
            interval=line.interval, per_seat=line.per_seat, quantity=line.quantity,
            unit_amount_minor=line.unit_amount_minor, currency=order.currency, line=line,
            status="active", current_period_start=line.period_start, current_period_end=line.period_end,
            grace_until=None, dunning_attempts=0, next_attempt_at=None, last_order_id=order.order_id,
            created_at=now, updated_at=now, ended_at=None))
    await session.flush()


async def _carry_seats(session: AsyncSession, sub: Subscription, from_refs: list[str | None], to_ref: str, *,
                       clock: Clock) -> None:
    """Seat holders of the paid period keep their seats in the renewed (or grace) seat pool."""
    target = await entitlements.find_by_source(session, account_id=sub.account_id, source="order",
                                               source_ref=to_ref, module=sub.module)
    if target is None or target.seats is None:
        return
    for ref in from_refs:
        source = None if ref is None else await entitlements.find_by_source(
            session, account_id=sub.account_id, source="order", source_ref=ref, module=sub.module)
        if source is not None and source.seats is not None:
            await entitlements.carry_seats(session, account_id=sub.account_id, from_grant_id=source.grant_id,
                                           to_grant_id=target.grant_id, clock=clock)


async def renewal_failed(session: AsyncSession, sub: Subscription, order: Order, *, attempt: int, reason: str,
                         settings: Settings, clock: Clock) -> None:
    """Attempt ``attempt`` (1 = the first) of renewing ``sub`` failed: grace, next retry, or the end."""
    now = clock.now()
    if sub.status != "renewing":
        return  # already handled (a concurrent run or a replayed answer), or ended meanwhile
    period_end = sub.current_period_end
    if sub.grace_until is None:
        sub.grace_until = period_end + timedelta(days=settings.renewal_grace_days)
        if sub.grace_until > now:
            line = order.lines[0]
            await entitlements.grant(session, account_id=sub.account_id,
                                     user_id=None if line.seat_pool else sub.user_id,
                                     module=sub.module, source="order", source_ref=grace_ref(order.order_id),
                                     starts_at=min(period_end, now), ends_at=sub.grace_until,
                                     seats=line.quantity if line.seat_pool else None, clock=clock)
            await _carry_seats(session, sub, [sub.last_order_id], grace_ref(order.order_id), clock=clock)
    sub.dunning_attempts, sub.updated_at = attempt, now
    schedule = settings.renewal_retry_days
    next_at = period_end + timedelta(days=schedule[attempt - 1]) if attempt <= len(schedule) else None
    if next_at is not None and next_at <= sub.grace_until:
        sub.status, sub.next_attempt_at = "past_due", max(next_at, now)
        await publish(session, sub_event(
            RenewalFailed, sub, renewal_order_id=order.order_id, attempt=attempt, reason=reason,
            grace_until=sub.grace_until.isoformat(), next_attempt_at=sub.next_attempt_at.isoformat()),
            clock=clock, account_id=sub.account_id)
        return
    await publish(session, sub_event(
        RenewalFailed, sub, renewal_order_id=order.order_id, attempt=attempt, reason=reason,
        grace_until=sub.grace_until.isoformat(), next_attempt_at=None), clock=clock, account_id=sub.account_id)
    await end(session, sub, reason="renewal payment failed", clock=clock, renewal_order_id=order.order_id)


async def end(session: AsyncSession, sub: Subscription, *, reason: str, clock: Clock,
              renewal_order_id: str | None = None, status: EndStatus = "ended") -> None:
    """Stop renewing; a grace grant ends now (access bought for a paid period is not touched here)."""
    now = clock.now()
    if sub.status in ("ended", "canceled"):
        return
    sub.status, sub.ended_at, sub.next_attempt_at, sub.updated_at = status, now, None, now
    if renewal_order_id is not None:
        await entitlements.revoke_by_source(session, account_id=sub.account_id, source="order",
                                            source_ref=grace_ref(renewal_order_id), reason=reason, clock=clock)
    await publish(session, sub_event(SubscriptionEnded if status == "ended" else SubscriptionCanceled, sub,
                                     reason=reason), clock=clock, account_id=sub.account_id)


async def end_for_order(session: AsyncSession, order: Order, *, reason: str, clock: Clock) -> None:
    """A refunded or lost order stops the subscriptions it started or last renewed."""
    rows = await session.scalars(select(Subscription).where(
        Subscription.account_id == order.account_id,
        (Subscription.order_id == order.order_id) | (Subscription.last_order_id == order.order_id)).with_for_update())
    for sub in rows.all():
        await end(session, sub, reason=reason, clock=clock, status="canceled")
    await metering.end_plans(session, order, clock=clock)


async def update_subscription(session: AsyncSession, account_id: str, subscription_id: str, *, seats: int | None,
                              cancel: bool, actor: str, clock: Clock) -> Subscription:
    """Change the seats charged at the next renewal (per-seat only), or stop renewing."""
    sub = await locked(session, account_id, subscription_id)
    if sub is None:
        raise SubscriptionNotFound(f"Subscription {subscription_id!r} does not exist.")
    if seats is not None and seats != sub.quantity:
        if not sub.per_seat:
            raise Unprocessable("Only per-seat subscriptions have seats.", field="seats")
        sub.quantity, sub.updated_at = seats, clock.now()
        await publish(session, sub_event(SubscriptionUpdated, sub, actor=actor), clock=clock,
                      account_id=account_id)
    if cancel:
        await end(session, sub, reason=f"canceled by {actor}", clock=clock, status="canceled")
    await audit.record(session, clock=clock, actor=actor, action="subscription.updated", target_type="subscription",
                       target_id=subscription_id, account_id=account_id,
                       after={"seats": seats, "cancel": cancel, "status": sub.status, "quantity": sub.quantity})
    await session.flush()
    return sub
