"""What the engine learns from other packages' events, in their transaction: purchases to attribute to the
suggestion shown before them, and admins' denials to respect. The app's wiring subscribes these; nothing
below the engine knows it exists."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.events import Bus, Published
from app.onestatement import Statement
from billing import service as billing
from billing.events import ApprovalDecided, OrderFulfilled
from suggest.outcomes import record_denial, record_purchase, record_purchase_in


def subscribe(bus: Bus, *, attribution_days: int) -> None:
    """Put the engine's subscribers on ``bus`` (``attribution_days``: COMMERCE_SUGGEST_ATTRIBUTION_DAYS)."""

    async def purchased(session: AsyncSession, published: Published[OrderFulfilled]) -> None:
        await record_fulfilled(session, published, attribution_days=attribution_days)

    def purchased_inline(statement: Statement, published: Published[OrderFulfilled], facts: object) -> None:
        record_fulfilled_in(statement, published, facts, attribution_days=attribution_days)

    bus.subscribe(OrderFulfilled, purchased, inline=purchased_inline)
    bus.subscribe(ApprovalDecided, record_decided)


async def _order(session: AsyncSession, account_id: str | None, order_id: str) -> billing.OrderSummary:
    assert account_id is not None, "order events belong to an account"
    order = await billing.order_summary(session, account_id=account_id, order_id=order_id)
    assert order is not None, "the order that published the event is in this transaction"
    return order


async def record_fulfilled(session: AsyncSession, published: Published[OrderFulfilled], *,
                           attribution_days: int) -> None:
    """Each module of a fulfilled purchase, attributed to the suggestion that preceded it (renewals are not
    purchases a suggestion led to)."""
    order = await _order(session, published.account_id, published.event.order_id)
    if order.renewal:
        return
    for line in order.lines:
        await record_purchase(session, account_id=order.account_id, user_id=order.user_id, module=line.module,
                              order_id=order.order_id, amount_minor=line.total_minor, currency=order.currency,
                              at=published.occurred_at, attribution_days=attribution_days)


def record_fulfilled_in(statement: Statement, published: Published[OrderFulfilled], facts: object, *,
                        attribution_days: int) -> None:
    """``record_fulfilled`` in a fast path's one statement; ``facts``: the order's ``billing.OrderSummary``."""
    assert isinstance(facts, billing.OrderSummary), "order events carry their order's summary"
    if facts.renewal:
        return
    for line in facts.lines:
        record_purchase_in(statement, account_id=facts.account_id, user_id=facts.user_id, module=line.module,
                           order_id=facts.order_id, amount_minor=line.total_minor, currency=facts.currency,
                           at=published.occurred_at, attribution_days=attribution_days)


async def record_decided(session: AsyncSession, published: Published[ApprovalDecided]) -> None:
    """A denied request's modules are not suggested to its requester for a while."""
    if published.event.decision != "denied":
        return
    order = await _order(session, published.account_id, published.event.order_id)
    for line in order.lines:
        await record_denial(session, account_id=order.account_id, user_id=order.user_id, module=line.module,
                            approval_id=published.event.approval_id, at=published.occurred_at)
