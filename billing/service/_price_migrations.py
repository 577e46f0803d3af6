"""Scheduled price migrations, billing's side: who pays an older version (the catalog's plan asks through the
owner source the wiring installs), the per-owner notices ahead of the date, and the move at a renewal.

Rules (docs/catalog.md, "Price change schedules"): a version with ``migrate_existing_at`` moves the owners of
older versions of its price line; each owner moves at its first renewal (subscriptions) or usage period
(metered plans) starting at or after the date, never in the middle of a paid period; each owner is told once
per migration and date, ``price_notice_days`` ahead (the ``price_migrations`` job); a migration canceled before
its date moves nobody.
"""

from __future__ import annotations

from datetime import timedelta

import msgspec
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

import catalog
from app.clock import Clock
from app.events import publish
from billing.events import SubscriptionPriceMigrated
from billing.models import MeteredPlan, PriceMigrationNotice, Subscription
from billing.service._subscriptions import sub_event
from catalog.domain import PriceOwner
from catalog.events import PriceChangeScheduled
from catalog.spec import RecurringPrice


async def price_owners_of(session: AsyncSession, module: str, slot: str, before_version: int) -> list[PriceOwner]:
    """Subscriptions still renewing and active metered plans that pay a version of this line older than
    ``before_version`` (or are moved to one by an earlier migration), each with what it pays a period now."""
    versions = [p for p in await catalog.service.list_prices(session, module, history=True)
                if p.slot == slot and p.version < before_version]
    ids = [p.id for p in versions]
    if not ids:
        return []
    owners: list[PriceOwner] = []
    subs = await session.scalars(select(Subscription).where(
        Subscription.module == module, Subscription.price_id.in_(ids),
        Subscription.status.in_(("active", "renewing", "past_due"))).order_by(Subscription.account_id,
                                                                            Subscription.subscription_id))
    for sub in subs.all():
        owners.append(PriceOwner(account_id=sub.account_id, user_id=sub.user_id, price_id=sub.price_id,
                                 holding=sub.subscription_id, quantity=sub.quantity,
                                 amount_minor_before=sub.unit_amount_minor * sub.quantity))
    plans = await session.scalars(select(MeteredPlan).where(
        MeteredPlan.module == module, MeteredPlan.price_id.in_(ids), MeteredPlan.status == "active")
        .order_by(MeteredPlan.account_id, MeteredPlan.plan_id))
    owners += [PriceOwner(account_id=p.account_id, user_id=p.user_id, price_id=p.price_id, holding=p.plan_id)
               for p in plans.all()]
    return owners


async def migrate_at_renewal(session: AsyncSession, sub: Subscription, *, clock: Clock) -> None:
    """Before a renewal is priced: move the subscription to the version in force for the renewed period."""
    at = sub.current_period_end
    lp = await catalog.price_in_force(session, sub.price_id, at=at)
    if lp.price_id == sub.price_id or not isinstance(lp.price, RecurringPrice):
        return
    before, after = sub.unit_amount_minor, lp.price.amount_minor
    old_price_id = sub.price_id
    sub.price_id, sub.unit_amount_minor, sub.updated_at = lp.price_id, after, clock.now()
    sub.line = msgspec.structs.replace(sub.line, price_id=lp.price_id, price_version=lp.version,
                                       unit_amount_minor=after)
    await publish(session, sub_event(SubscriptionPriceMigrated, sub, from_price_id=old_price_id,
                                     to_price_id=lp.price_id, to_version=lp.version,
                                     unit_amount_minor_before=before, unit_amount_minor_after=after),
                  clock=clock, account_id=sub.account_id)


async def send_notices(session: AsyncSession, *, notice_days: int, clock: Clock) -> dict[str, int]:
    """Tell each owner of an older version about a migration due within ``notice_days`` (once per migration
    and date): ``price.change_scheduled`` to that owner's account."""
    now = clock.now()
    sent = scheduled = 0
    for lp in await catalog.scheduled_migrations(session, due_after=now,
                                                 due_before=now + timedelta(days=notice_days)):
        at = lp.price.migrate_existing_at
        assert at is not None, "scheduled migrations have a date"
        scheduled += 1
        after = catalog.domain.headline_amount(lp.price)
        for owner in await price_owners_of(session, lp.module, lp.slot, lp.version):
            assert owner.holding is not None
            fresh = await session.scalar(insert(PriceMigrationNotice).values(
                account_id=owner.account_id, holding=owner.holding, to_price_id=lp.price_id,
                migrate_existing_at=at, sent_at=now).on_conflict_do_nothing().returning(PriceMigrationNotice.holding))
            if fresh is None:
                continue
            sent += 1
            await publish(session, PriceChangeScheduled(
                revision=lp.revision, module=lp.module, slot=lp.slot, user_id=owner.user_id,
                from_price_id=owner.price_id, to_version=lp.version, currency=lp.price.currency,
                amount_minor_before=owner.amount_minor_before,
                amount_minor_after=None if after is None else after * owner.quantity, migrate_existing_at=at,
                holding=owner.holding), clock=clock, account_id=owner.account_id)
    return {"migrations_in_notice": scheduled, "notices_sent": sent}
