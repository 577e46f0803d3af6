"""Metered billing, the database side: metered plans, charging a closed period's usage, late usage, running
charges. No Stripe call here (billing.stripe.flows.invoice_usage sends the card route's charges).

A plan is started when an order with a metered line is fulfilled. Closing a period (``charge_usage``, run by
the ``usage_billing`` job and at the start of every statement close) writes one ``period`` charge per plan and
usage period, and one ``adjustment`` per earlier usage period whose usage grew since it was charged (late
events within the backfill window), each unique per (plan, usage period, billed period): a second run, or a
run after a crash, finds them and bills nothing more. The version billed is the one in force at the usage
period's start (catalog.price_in_force), so a scheduled migration applies from the owner's next period.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

import catalog
import entitlements
from app.accounts.models import Account, User
from app.clock import Clock
from app.events import publish
from app.ids import new_id
from billing.domain.metering import UsageCharge as Charge
from billing.domain.metering import adjustment_minor, usage_charge
from billing.domain.periods import Interval, period_key, period_of
from billing.events import UsageCharged
from billing.models import MeteredPlan, Order, UsageCharge
from billing.schemas import TierChargeRead, UsageChargeLineRead, UsageChargesRead, UserUsageChargeRead
from catalog.domain import LivePrice
from catalog.spec import LimitFeature, MeteredPrice

# Usage periods re-checked for late usage at each close: any period that could have received an event since it
# was charged (events are accepted up to the backfill window old; closes run at least monthly).
_LATE_MARGIN = timedelta(days=31)


async def start_plans(session: AsyncSession, order: Order, *, clock: Clock) -> None:
    """A fulfilled order's metered lines start metered plans (billed from now on)."""
    now = clock.now()
    for line in order.lines:
        if line.model != "metered":
            continue
        await session.execute(insert(MeteredPlan).values(
            account_id=order.account_id, plan_id=new_id("mtr"), order_id=order.order_id, user_id=order.user_id,
            module=line.module, route=order.route, price_id=line.price_id, currency=order.currency,
            status="active", started_at=now, ended_at=None, created_at=now).on_conflict_do_nothing())


async def end_plans(session: AsyncSession, order: Order, *, clock: Clock) -> None:
    """A refunded or lost order stops billing usage from now on (usage before stays billable)."""
    rows = await session.scalars(select(MeteredPlan).where(
        MeteredPlan.account_id == order.account_id, MeteredPlan.order_id == order.order_id,
        MeteredPlan.status == "active").with_for_update())
    for plan in rows.all():
        plan.status, plan.ended_at = "ended", clock.now()


def billed_features(live: catalog.Live, module: str, price: MeteredPrice) -> list[str]:
    """The features whose usage a metered price counts: the module's limit features measured in its unit."""
    features = {f.key: f for f in live.doc.features}
    mod = next((m for m in live.doc.modules if m.key == module), None)
    keys = []
    for key in mod.features if mod else {}:
        feature = features.get(key)
        if isinstance(feature, LimitFeature) and feature.unit == price.unit:
            keys.append(key)
    return sorted(keys) or ([price.unit] if price.unit in features else [])


def _interval(price: MeteredPrice) -> Interval:
    return price.interval


@dataclass(frozen=True)
class Priced:
    """A plan's usage in one usage period under the version in force."""

    plan: MeteredPlan
    start: datetime
    end: datetime
    price: LivePrice
    quantity: int
    charge: Charge


async def price_usage(session: AsyncSession, live: catalog.Live, plan: MeteredPlan, *, start: datetime,
                      end: datetime, price: LivePrice | None = None) -> Priced:
    """The plan's usage in [start, end) (within its own life) and what it costs."""
    lp = price or await catalog.price_in_force(session, plan.price_id, at=start)
    metered = lp.price
    assert isinstance(metered, MeteredPrice), "metered plans are bought at metered prices"
    since, until = max(start, plan.started_at), min(end, plan.ended_at or end)
    quantity = 0
    if since < until:
        totals = await entitlements.usage_totals(
            session, plan.account_id, user_ids=[plan.user_id], features=billed_features(live, plan.module, metered),
            start=since, end=until)
        quantity = totals.get(plan.user_id, 0)
    return Priced(plan=plan, start=start, end=end, price=lp, quantity=quantity,
                  charge=usage_charge(metered, quantity))


def _detail(charge: Charge, *, amount_minor: int) -> dict[str, object]:
    out = asdict(charge)
    out["tiers"] = [asdict(t) for t in charge.tiers]
    out["charged_minor"] = amount_minor
    return out


async def _record(session: AsyncSession, p: Priced, *, kind: str, billed_period: str, quantity_before: int,
                  amount_minor: int, clock: Clock) -> UsageCharge | None:
    """Write one charge unless it exists (the unique index decides); the event goes out with a new one."""
    plan = p.plan
    status = "statement" if plan.route == "budget" else ("invoice_pending" if amount_minor > 0 else "nothing_due")
    charge_id = await session.scalar(insert(UsageCharge).values(
        account_id=plan.account_id, charge_id=new_id("uch"), plan_id=plan.plan_id, user_id=plan.user_id,
        module=plan.module, route=plan.route, kind=kind, usage_period=period_key(p.start), period_start=p.start,
        period_end=p.end, billed_period=billed_period, price_id=p.price.price_id, price_version=p.price.version,
        quantity=p.quantity, quantity_before=quantity_before, amount_minor=amount_minor, currency=plan.currency,
        detail=_detail(p.charge, amount_minor=amount_minor), status=status, stripe_invoice_id=None,
        created_at=clock.now()).on_conflict_do_nothing().returning(UsageCharge.charge_id))
    if charge_id is None:
        return None
    row = await session.get_one(UsageCharge, (plan.account_id, charge_id))
    account = await session.get_one(Account, plan.account_id)
    user = await session.get_one(User, (plan.account_id, plan.user_id))
    await publish(session, UsageCharged(
        charge_id=charge_id, account=account.external_id, user=user.external_id, module=plan.module,
        route=plan.route, kind="period" if kind == "period" else "adjustment", usage_period=row.usage_period,
        billed_period=billed_period, price_id=row.price_id, quantity=row.quantity, quantity_before=quantity_before,
        amount_minor=amount_minor, currency=row.currency), clock=clock, account_id=plan.account_id)
    return row


def month_bounds(period: str) -> tuple[datetime, datetime] | None:
    """[start, end) of the calendar month ``YYYY-MM`` (UTC); None for a month no clock will reach the end of."""
    year, month = (int(x) for x in period.split("-"))
    if not 1 <= year < 9999 or not 1 <= month <= 12:
        return None
    return period_of(datetime(year, month, 1, tzinfo=UTC))


async def charge_usage(session: AsyncSession, *, period: str, clock: Clock,
                       account_ids: list[str] | None = None) -> list[UsageCharge]:
    """Charge the usage periods ending with month ``period`` (and late usage of earlier ones) once; nothing
    before the month has ended. Returns the charges this run wrote."""
    bounds = month_bounds(period)
    if bounds is None or bounds[1] > clock.now():
        return []
    month_start, month_end = bounds
    live = await catalog.load_live(session)
    query = select(MeteredPlan).where(MeteredPlan.started_at < month_end,
                                      or_(MeteredPlan.ended_at.is_(None), MeteredPlan.ended_at > month_start))
    if account_ids is not None:
        query = query.where(MeteredPlan.account_id.in_(account_ids))
    written: list[UsageCharge] = []
    for plan in (await session.scalars(query.order_by(MeteredPlan.account_id, MeteredPlan.plan_id))).all():
        bought = await catalog.price_version(session, plan.price_id)
        assert isinstance(bought.price, MeteredPrice)
        start, end = period_of(month_end - timedelta(microseconds=1), interval=_interval(bought.price))
        if end == month_end:  # a yearly price closes with the last month of its year
            p = await price_usage(session, live, plan, start=start, end=end)
            row = await _record(session, p, kind="period", billed_period=period, quantity_before=0,
                                amount_minor=p.charge.amount_minor, clock=clock)
            written += [row] if row else []
        if bought.price.interval == "month":
            written += await _missed(session, live, plan, period=period, month_start=month_start, clock=clock)
        written += await _adjust(session, live, plan, period=period, month_start=month_start, clock=clock)
    return written


async def _missed(session: AsyncSession, live: catalog.Live, plan: MeteredPlan, *, period: str,
                  month_start: datetime, clock: Clock) -> list[UsageCharge]:
    """Earlier months of a monthly plan that no close ever charged (every run missed them) are charged now,
    billed in ``period``: usage is never lost to downtime."""
    done = set((await session.scalars(select(UsageCharge.usage_period).where(
        UsageCharge.account_id == plan.account_id, UsageCharge.plan_id == plan.plan_id))).all())
    out: list[UsageCharge] = []
    start = month_start
    for _ in range(12):  # a year back at most
        start, end = period_of(start - timedelta(microseconds=1))
        if end <= plan.started_at:
            break
        if period_key(start) in done:
            continue
        p = await price_usage(session, live, plan, start=start, end=end)
        row = await _record(session, p, kind="period", billed_period=period, quantity_before=0,
                            amount_minor=p.charge.amount_minor, clock=clock)
        out += [row] if row else []
    return out


async def _adjust(session: AsyncSession, live: catalog.Live, plan: MeteredPlan, *, period: str,
                  month_start: datetime, clock: Clock) -> list[UsageCharge]:
    """Late usage of the plan's earlier usage periods becomes adjustment charges billed in ``period``."""
    charged = (await session.scalars(select(UsageCharge).where(
        UsageCharge.account_id == plan.account_id, UsageCharge.plan_id == plan.plan_id,
        UsageCharge.billed_period != period, UsageCharge.period_end <= month_start,
        UsageCharge.period_end > month_start - timedelta(days=366) - _LATE_MARGIN))).all()
    billed: dict[str, UsageCharge] = {}
    for c in charged:  # the charge that knows the most units of each usage period
        if c.usage_period not in billed or c.quantity > billed[c.usage_period].quantity:
            billed[c.usage_period] = c
    out: list[UsageCharge] = []
    for last in sorted(billed.values(), key=lambda c: c.usage_period):
        lp = await catalog.price_version(session, last.price_id)
        p = await price_usage(session, live, plan, start=last.period_start, end=last.period_end, price=lp)
        if p.quantity <= last.quantity:
            continue
        assert isinstance(lp.price, MeteredPrice)
        amount = adjustment_minor(lp.price, billed_quantity=last.quantity, quantity=p.quantity)
        row = await _record(session, p, kind="adjustment", billed_period=period, quantity_before=last.quantity,
                            amount_minor=amount, clock=clock)
        out += [row] if row else []
    return out


async def statement_charges(session: AsyncSession, *, period: str) -> list[UsageCharge]:
    """The budget route's usage charges carried by the statements of ``period``."""
    return list((await session.scalars(select(UsageCharge).where(
        UsageCharge.billed_period == period, UsageCharge.route == "budget", UsageCharge.amount_minor > 0)
        .order_by(UsageCharge.account_id, UsageCharge.usage_period, UsageCharge.charge_id))).all())


async def charges_to_invoice(session: AsyncSession, *, period: str | None = None) -> list[UsageCharge]:
    """Card-route charges not yet on a Stripe invoice (of ``period``, or all)."""
    query = select(UsageCharge).where(UsageCharge.status == "invoice_pending")
    if period is not None:
        query = query.where(UsageCharge.billed_period == period)
    return list((await session.scalars(query.order_by(UsageCharge.account_id, UsageCharge.user_id,
                                                      UsageCharge.billed_period, UsageCharge.charge_id))).all())


async def record_usage_invoice(session: AsyncSession, account_id: str, charge_ids: list[str], *,
                               invoice_id: str) -> None:
    """The charges are on a sent Stripe invoice."""
    rows = await session.scalars(select(UsageCharge).where(
        UsageCharge.account_id == account_id, UsageCharge.charge_id.in_(charge_ids)).with_for_update())
    for row in rows.all():
        row.status, row.stripe_invoice_id = "invoiced", invoice_id


async def running_charges(session: AsyncSession, account: Account, *, clock: Clock) -> UsageChargesRead:
    """GET /v1/accounts/{a}/usage-charges: each active plan's usage in its current period, priced now."""
    now = clock.now()
    live = await catalog.load_live(session)
    plans = (await session.scalars(select(MeteredPlan).where(
        MeteredPlan.account_id == account.account_id, MeteredPlan.status == "active")
        .order_by(MeteredPlan.user_id, MeteredPlan.module, MeteredPlan.plan_id))).all()
    users = {u.user_id: u.external_id for u in (await session.scalars(select(User).where(
        User.account_id == account.account_id, User.user_id.in_([p.user_id for p in plans])))).all()}
    lines: list[UsageChargeLineRead] = []
    per_user: dict[str, int] = {}
    for plan in plans:
        bought = await catalog.price_version(session, plan.price_id)
        assert isinstance(bought.price, MeteredPrice)
        start, end = period_of(now, interval=_interval(bought.price))
        p = await price_usage(session, live, plan, start=start, end=end)
        assert isinstance(p.price.price, MeteredPrice)
        c = p.charge
        lines.append(UsageChargeLineRead(
            plan_id=plan.plan_id, module=plan.module, user=users[plan.user_id], route=plan.route,
            price_id=p.price.price_id, price_version=p.price.version, unit=p.price.price.unit,
            tier_mode=p.price.price.tier_mode, period_start=start, period_end=end, quantity=c.quantity,
            included_quantity=c.included_quantity, billable_quantity=c.billable_quantity, usage_minor=c.usage_minor,
            commitment_minor=c.commitment_minor, drawn_minor=c.drawn_minor, overage_minor=c.overage_minor,
            amount_minor=c.amount_minor,
            tiers=[TierChargeRead(up_to=t.up_to, quantity=t.quantity, unit_amount_minor=t.unit_amount_minor,
                                  flat_amount_minor=t.flat_amount_minor) for t in c.tiers]))
        per_user[users[plan.user_id]] = per_user.get(users[plan.user_id], 0) + c.amount_minor
    return UsageChargesRead(
        account=account.external_id, currency=account.currency, as_of=now,
        total_minor=sum(x.amount_minor for x in lines),
        users=[UserUsageChargeRead(user=u, amount_minor=a) for u, a in sorted(per_user.items())], lines=lines)
