"""Sales credit reversals: a refund or a lost dispute takes the credit back, in the period it happened."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import Clock
from app.ids import new_id
from billing.domain.credit import reversal_shares
from billing.domain.periods import period_key, period_of
from billing.models import Order, SalesCredit


async def reverse_credit(session: AsyncSession, order: Order, *, amount_minor: int, reference: str,
                         clock: Clock) -> None:
    """Negative credit lines for ``amount_minor`` of the order's bookings, once per ``reference`` (a refund id,
    a dispute id): the report of the period it happens in shows them; the booking's period is never edited."""
    bookings = list((await session.scalars(select(SalesCredit).where(
        SalesCredit.account_id == order.account_id, SalesCredit.order_id == order.order_id,
        SalesCredit.kind == "booking").order_by(SalesCredit.module))).all())
    by_module = {b.module: b for b in bookings}
    now = clock.now()
    for module, share in reversal_shares([(b.module, b.amount_minor) for b in bookings], amount_minor=amount_minor):
        b = by_module[module]
        await session.execute(insert(SalesCredit).values(
            account_id=b.account_id, credit_id=new_id("crd"), order_id=b.order_id, module=module,
            category=b.category, motion=b.motion, amount_minor=-share, currency=b.currency, team=b.team, rep=b.rep,
            period=period_key(period_of(now)[0]), booked_at=now, kind="reversal", reference=reference[:120],
        ).on_conflict_do_nothing())
