"""Budgets and the two-phase ledger. Balances move only by guarded UPDATEs inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit, metrics
from app.accounts.models import Account
from app.clock import Clock
from app.errors import Unprocessable
from app.events import publish
from app.ids import new_id
from app.money import is_currency
from billing.domain.guardrails import crossed_thresholds
from billing.domain.ledger import LedgerKind
from billing.domain.periods import period_key, period_of
from billing.errors import BudgetBelowSpend, BudgetExhausted, BudgetExists, BudgetNotFound, HoldStateConflict
from billing.events import BudgetThresholdReached
from billing.models import Budget, BudgetAlert, BudgetHold, BudgetPeriod, LedgerEntry


@dataclass(frozen=True)
class BudgetState:
    budget: Budget
    period: str
    starts_at: datetime
    ends_at: datetime
    amount_minor: int
    reserved_minor: int
    captured_minor: int

    @property
    def remaining_minor(self) -> int:
        return self.amount_minor - self.reserved_minor - self.captured_minor

    @property
    def used_pct(self) -> int:
        """Reserved and captured as a whole percentage of this period's amount."""
        used = self.reserved_minor + self.captured_minor
        return used * 100 // self.amount_minor if self.amount_minor else 0


async def create_budget(session: AsyncSession, account: Account, *, name: str, currency: str, amount_minor: int,
                        cost_center: str | None, anchor_day: int, actor: str, clock: Clock) -> Budget:
    """A new budget of the account (or of one cost center); one per cost center."""
    if not is_currency(currency):
        raise Unprocessable(f"Currency {currency!r} is not supported.", field="currency")
    now = clock.now()
    budget_id = await session.scalar(
        insert(Budget).values(account_id=account.account_id, budget_id=new_id("bud"), name=name,
                              cost_center=cost_center, currency=currency, amount_minor=amount_minor,
                              anchor_day=anchor_day, created_at=now, updated_at=now)
        .on_conflict_do_nothing().returning(Budget.budget_id))
    if budget_id is None:
        where = f"cost center {cost_center!r}" if cost_center else "the whole account"
        raise BudgetExists(f"A budget for {where} already exists; change its amount instead.")
    budget = await session.get_one(Budget, (account.account_id, budget_id))
    await audit.record(session, clock=clock, actor=actor, action="budget.created", target_type="budget",
                       target_id=budget_id, account_id=account.account_id,
                       after={"name": name, "currency": currency, "amount_minor": amount_minor,
                              "cost_center": cost_center})
    return budget


async def get_budget(session: AsyncSession, account: Account, budget_id: str) -> Budget:
    budget = await session.get(Budget, (account.account_id, budget_id))
    if budget is None:
        raise BudgetNotFound(f"Budget {budget_id!r} does not exist.")
    return budget


async def list_budgets(session: AsyncSession, account: Account) -> list[Budget]:
    query = select(Budget).where(Budget.account_id == account.account_id).order_by(Budget.budget_id)
    return list((await session.scalars(query)).all())


async def list_budget_states(session: AsyncSession, account: Account, *, clock: Clock) -> list[BudgetState]:
    """The account's budgets with this period's balance, in one query (a period never used reads as untouched)."""
    now = clock.now()
    rows = (await session.execute(
        select(Budget, BudgetPeriod)
        .outerjoin(BudgetPeriod, and_(BudgetPeriod.account_id == Budget.account_id,
                                      BudgetPeriod.budget_id == Budget.budget_id,
                                      BudgetPeriod.starts_at <= now, BudgetPeriod.ends_at > now))
        .where(Budget.account_id == account.account_id).order_by(Budget.budget_id)
        .execution_options(populate_existing=True))).all()
    return [_state(budget, row, now) for budget, row in rows]


async def read_budget(session: AsyncSession, budget: Budget, *, clock: Clock) -> BudgetState:
    """One budget with this period's balance, without creating the period's row (a read never writes)."""
    now = clock.now()
    row = await session.scalar(select(BudgetPeriod).where(
        BudgetPeriod.account_id == budget.account_id, BudgetPeriod.budget_id == budget.budget_id,
        BudgetPeriod.starts_at <= now, BudgetPeriod.ends_at > now).execution_options(populate_existing=True))
    return _state(budget, row, now)


def _state(budget: Budget, row: BudgetPeriod | None, now: datetime) -> BudgetState:
    if row is not None:
        return BudgetState(budget=budget, period=row.period, starts_at=row.starts_at, ends_at=row.ends_at,
                           amount_minor=row.amount_minor, reserved_minor=row.reserved_minor,
                           captured_minor=row.captured_minor)
    start, end = period_of(now, anchor_day=budget.anchor_day)  # what _period would create on first use
    return BudgetState(budget=budget, period=period_key(start), starts_at=start, ends_at=end,
                       amount_minor=budget.amount_minor, reserved_minor=0, captured_minor=0)


def pick_budget(budgets: Iterable[Budget], cost_center: str | None) -> Budget | None:
    """The cost center's budget when it has one, else the account-wide budget."""
    candidates = [b for b in budgets if b.cost_center is None or b.cost_center == cost_center]
    return next((b for b in candidates if b.cost_center is not None), next(iter(candidates), None))


async def budget_and_state(session: AsyncSession, account_id: str, cost_center: str | None, *,
                           now: datetime) -> tuple[Budget | None, BudgetState | None, bool]:
    """``budget_for`` with its balance this period, in one query and without writing: (budget, state, whether the
    period's row exists yet). The row is created by the first hold (``reserve``)."""
    rows = (await session.execute(
        select(Budget, BudgetPeriod)
        .outerjoin(BudgetPeriod, and_(BudgetPeriod.account_id == Budget.account_id,
                                      BudgetPeriod.budget_id == Budget.budget_id,
                                      BudgetPeriod.starts_at <= now, BudgetPeriod.ends_at > now))
        .where(Budget.account_id == account_id,
               (Budget.cost_center == cost_center) | Budget.cost_center.is_(None))
        .execution_options(populate_existing=True))).all()
    budget = pick_budget(list(dict.fromkeys(b for b, _ in rows)), cost_center)
    if budget is None:
        return None, None, False
    key = period_key(period_of(now, anchor_day=budget.anchor_day)[0])
    row = next((p for b, p in rows if b is budget and p is not None and p.period == key), None)
    return budget, _state(budget, row, now), row is not None


async def budget_for(session: AsyncSession, account_id: str, cost_center: str | None) -> Budget | None:
    """The cost center's budget when it has one, else the account-wide budget."""
    rows = (await session.scalars(select(Budget).where(
        Budget.account_id == account_id,
        (Budget.cost_center == cost_center) | Budget.cost_center.is_(None)))).all()
    return pick_budget(rows, cost_center)


async def _period(session: AsyncSession, budget: Budget, at: datetime) -> BudgetPeriod:
    """The budget's balance row for the period containing ``at``, created on first use."""
    start, end = period_of(at, anchor_day=budget.anchor_day)
    key = period_key(start)
    pk = (budget.account_id, budget.budget_id, key)
    row = await session.get(BudgetPeriod, pk, populate_existing=True)  # exists but on a period's first use
    if row is not None:
        return row
    await session.execute(
        insert(BudgetPeriod).values(account_id=budget.account_id, budget_id=budget.budget_id, period=key,
                                    starts_at=start, ends_at=end, amount_minor=budget.amount_minor,
                                    reserved_minor=0, captured_minor=0)
        .on_conflict_do_nothing())
    return await session.get_one(BudgetPeriod, pk, populate_existing=True)


async def budget_state(session: AsyncSession, budget: Budget, *, clock: Clock) -> BudgetState:
    p = await _period(session, budget, clock.now())
    return BudgetState(budget=budget, period=p.period, starts_at=p.starts_at, ends_at=p.ends_at,
                       amount_minor=p.amount_minor, reserved_minor=p.reserved_minor,
                       captured_minor=p.captured_minor)


async def update_budget(session: AsyncSession, budget: Budget, *, amount_minor: int | None, name: str | None,
                        actor: str, clock: Clock) -> Budget:
    """Change the amount from the current period on; never below what the period already holds or spent."""
    before = {"name": budget.name, "amount_minor": budget.amount_minor}
    if amount_minor is not None:
        p = await _period(session, budget, clock.now())
        changed = await session.scalar(
            update(BudgetPeriod)
            .where(BudgetPeriod.account_id == p.account_id, BudgetPeriod.budget_id == p.budget_id,
                   BudgetPeriod.period == p.period,
                   BudgetPeriod.reserved_minor + BudgetPeriod.captured_minor <= amount_minor)
            .values(amount_minor=amount_minor).returning(BudgetPeriod.period))
        if changed is None:
            raise BudgetBelowSpend("This period already has more reserved and spent than the new amount.")
        budget.amount_minor = amount_minor
    if name is not None:
        budget.name = name
    budget.updated_at = clock.now()
    await session.flush()
    await audit.record(session, clock=clock, actor=actor, action="budget.updated", target_type="budget",
                       target_id=budget.budget_id, account_id=budget.account_id, before=before,
                       after={"name": budget.name, "amount_minor": budget.amount_minor})
    return budget


async def _entry(session: AsyncSession, hold: BudgetHold, kind: LedgerKind, amount: int, currency: str,
                 now: datetime) -> None:
    session.add(LedgerEntry(account_id=hold.account_id, budget_id=hold.budget_id, period=hold.period, kind=kind,
                            amount_minor=amount, currency=currency, hold_id=hold.hold_id, order_id=hold.order_id,
                            occurred_at=now))
    if kind == "capture":
        metrics.on_commit(session, lambda: metrics.count_capture(currency=currency, amount_minor=amount))


async def _alerts(session: AsyncSession, budget: Budget, row: BudgetPeriod, before_used: int,
                  thresholds: list[int], clock: Clock) -> None:
    after_used = row.reserved_minor + row.captured_minor
    for pct in crossed_thresholds(row.amount_minor, before_used, after_used, thresholds):
        inserted = await session.scalar(
            insert(BudgetAlert).values(account_id=row.account_id, budget_id=row.budget_id, period=row.period,
                                       threshold_pct=pct, reached_at=clock.now())
            .on_conflict_do_nothing().returning(BudgetAlert.threshold_pct))
        if inserted is not None:
            await publish(session, BudgetThresholdReached(
                budget_id=row.budget_id, name=budget.name, period=row.period, threshold_pct=pct,
                amount_minor=row.amount_minor, used_minor=after_used, currency=budget.currency),
                clock=clock, account_id=row.account_id)


async def reserve(session: AsyncSession, budget: Budget, *, order_id: str, amount_minor: int, clock: Clock,
                  capture_now: bool = False, thresholds: list[int] | None = None, new_order: bool = False,
                  period: str | None = None) -> BudgetHold:
    """Hold ``amount`` for an order (or capture it at once); raises BudgetExhausted when it does not fit.

    The guarded UPDATE makes the check and the move one atomic step, so concurrent buyers can never
    push reserved + captured past the amount. One hold per order (a retry returns the existing hold).
    ``new_order``: the order was created in this transaction, so it has no hold yet (no lookup);
    ``period``: the period row this transaction already read or created (no second upsert), used only when
    it is still the period of now.
    """
    assert amount_minor > 0
    if not new_order:
        existing = await session.scalar(select(BudgetHold).where(BudgetHold.account_id == budget.account_id,
                                                                 BudgetHold.order_id == order_id))
        if existing is not None:
            return existing
    now = clock.now()
    key = period_key(period_of(now, anchor_day=budget.anchor_day)[0])
    if period != key:
        key = (await _period(session, budget, now)).period
    column = "captured_minor" if capture_now else "reserved_minor"
    target = BudgetPeriod.captured_minor if capture_now else BudgetPeriod.reserved_minor
    # an ORM UPDATE ... RETURNING the row refreshes the session's copy in the same round trip
    refreshed = (await session.execute(
        update(BudgetPeriod)
        .where(BudgetPeriod.account_id == budget.account_id, BudgetPeriod.budget_id == budget.budget_id,
               BudgetPeriod.period == key,
               BudgetPeriod.amount_minor - BudgetPeriod.reserved_minor - BudgetPeriod.captured_minor >= amount_minor)
        .values({column: target + amount_minor})
        .returning(BudgetPeriod), execution_options={"populate_existing": True})).scalars().first()
    if refreshed is None:
        raise BudgetExhausted(
            f"The budget '{budget.name}' cannot cover this purchase this period.", budget_id=budget.budget_id)
    hold = BudgetHold(account_id=budget.account_id, hold_id=new_id("hold"), budget_id=budget.budget_id,
                      period=key, order_id=order_id, amount_minor=amount_minor, refunded_minor=0,
                      state="posted" if capture_now else "pending", created_at=now,
                      resolved_at=now if capture_now else None)
    session.add(hold)
    await session.flush()
    await _entry(session, hold, "reserve", amount_minor, budget.currency, now)
    if capture_now:
        await _entry(session, hold, "capture", amount_minor, budget.currency, now)
    before_used = refreshed.reserved_minor + refreshed.captured_minor - amount_minor
    await _alerts(session, budget, refreshed, before_used, thresholds or [50, 80, 100], clock)
    return hold


async def _move(session: AsyncSession, hold: BudgetHold, *, reserved: int, captured: int) -> None:
    result = await session.execute(
        update(BudgetPeriod)
        .where(BudgetPeriod.account_id == hold.account_id, BudgetPeriod.budget_id == hold.budget_id,
               BudgetPeriod.period == hold.period,
               BudgetPeriod.reserved_minor + reserved >= 0, BudgetPeriod.captured_minor + captured >= 0)
        .values(reserved_minor=BudgetPeriod.reserved_minor + reserved,
                captured_minor=BudgetPeriod.captured_minor + captured)
        .returning(BudgetPeriod.period))
    assert result.first() is not None, "ledger balance would go negative"


async def _locked(session: AsyncSession, hold: BudgetHold) -> BudgetHold:
    row = await session.scalar(select(BudgetHold).where(BudgetHold.account_id == hold.account_id,
                                                        BudgetHold.hold_id == hold.hold_id)
                               .with_for_update().execution_options(populate_existing=True))
    assert row is not None
    return row


async def capture(session: AsyncSession, hold: BudgetHold, *, currency: str, clock: Clock) -> BudgetHold:
    """Post a pending hold (approval granted). Idempotent for an already posted hold."""
    hold = await _locked(session, hold)
    if hold.state == "posted":
        return hold
    if hold.state != "pending":
        raise HoldStateConflict(f"A {hold.state} hold cannot be captured.")
    await _move(session, hold, reserved=-hold.amount_minor, captured=hold.amount_minor)
    hold.state, hold.resolved_at = "posted", clock.now()
    await _entry(session, hold, "capture", hold.amount_minor, currency, clock.now())
    await session.flush()
    return hold


async def release(session: AsyncSession, hold: BudgetHold, *, currency: str, clock: Clock) -> BudgetHold:
    """Void a pending hold (denied, expired, canceled). Idempotent for an already voided hold."""
    hold = await _locked(session, hold)
    if hold.state == "voided":
        return hold
    if hold.state != "pending":
        raise HoldStateConflict(f"A {hold.state} hold cannot be released.")
    await _move(session, hold, reserved=-hold.amount_minor, captured=0)
    hold.state, hold.resolved_at = "voided", clock.now()
    await _entry(session, hold, "release", hold.amount_minor, currency, clock.now())
    await session.flush()
    return hold


async def refund(session: AsyncSession, hold: BudgetHold, *, amount_minor: int, currency: str,
                 clock: Clock) -> BudgetHold:
    """Give captured money back to the budget period it was taken from (full or partial)."""
    hold = await _locked(session, hold)
    if hold.state != "posted":
        raise HoldStateConflict(f"A {hold.state} hold has nothing captured to refund.")
    if amount_minor <= 0 or hold.refunded_minor + amount_minor > hold.amount_minor:
        raise HoldStateConflict("The refund is larger than what is left of the capture.")
    await _move(session, hold, reserved=0, captured=-amount_minor)
    hold.refunded_minor += amount_minor
    await _entry(session, hold, "refund", amount_minor, currency, clock.now())
    await session.flush()
    return hold


async def list_ledger(session: AsyncSession, budget: Budget, *, period: str | None, after_id: int | None,
                      limit: int) -> list[LedgerEntry]:
    """Entries after ``after_id``, oldest first: up to ``limit``, plus one more when a next page exists."""
    query = (select(LedgerEntry).where(LedgerEntry.account_id == budget.account_id,
                                       LedgerEntry.budget_id == budget.budget_id)
             .order_by(LedgerEntry.entry_id).limit(limit + 1))
    if period is not None:
        query = query.where(LedgerEntry.period == period)
    if after_id is not None:
        query = query.where(LedgerEntry.entry_id > after_id)
    return list((await session.scalars(query)).all())


async def ledger_sums(session: AsyncSession, budget: Budget, period: str) -> dict[str, int]:
    """Sum of ledger entries per kind (for reconciliation with the period balance)."""
    rows = await session.execute(
        select(LedgerEntry.kind, func.coalesce(func.sum(LedgerEntry.amount_minor), 0))
        .where(LedgerEntry.account_id == budget.account_id, LedgerEntry.budget_id == budget.budget_id,
               LedgerEntry.period == period).group_by(LedgerEntry.kind))
    return {k: int(v) for k, v in rows.all()}
