"""What the engine learns from other packages' events, in their transaction: purchases to attribute to the
suggestion shown before them, admins' denials to respect, and every change to who holds what or has which role
(grants, revocations, ends, seats, users' roles), applied to the account's peer statistics at once. The app's
wiring subscribes these; nothing below the engine knows it exists."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.events import UserRolesChanged
from app.events import Bus, Published
from app.onestatement import Statement
from billing import service as billing
from billing.events import ApprovalDecided, OrderFulfilled
from entitlements.events import EntitlementExpired, EntitlementGranted, EntitlementRevoked, SeatAssigned, SeatUnassigned
from suggest.outcomes import record_denial, record_purchase, record_purchase_in
from suggest.peers import apply_changes, granted_in


def subscribe(bus: Bus, *, attribution_days: int, unused_days: int = 30) -> None:
    """Put the engine's subscribers on ``bus`` (``attribution_days``: COMMERCE_SUGGEST_ATTRIBUTION_DAYS;
    ``unused_days``: COMMERCE_SUGGEST_UNUSED_DAYS, what "used lately" means in the peer statistics)."""

    async def purchased(session: AsyncSession, published: Published[OrderFulfilled]) -> None:
        await record_fulfilled(session, published, attribution_days=attribution_days)

    def purchased_inline(statement: Statement, published: Published[OrderFulfilled], facts: object) -> None:
        record_fulfilled_in(statement, published, facts, attribution_days=attribution_days)

    async def changed(session: AsyncSession, published: Published[Any]) -> None:
        await holdings_changed(session, published, unused_days=unused_days)

    def granted_inline(statement: Statement, published: Published[EntitlementGranted], facts: object) -> None:
        granted_in(statement, published.event, facts, now=published.occurred_at, unused_days=unused_days)

    bus.subscribe(OrderFulfilled, purchased, inline=purchased_inline)
    bus.subscribe(ApprovalDecided, record_decided)
    bus.subscribe(EntitlementGranted, changed, inline=granted_inline)  # a fast order's grant: in its statement
    for kind in (EntitlementRevoked, EntitlementExpired, SeatAssigned, SeatUnassigned, UserRolesChanged):
        bus.subscribe(kind, changed)


async def holdings_changed(session: AsyncSession, published: Published[Any], *, unused_days: int) -> None:
    """Apply one change to the account's peer statistics: the user it names, or every user for an account-wide
    grant (a new seat pool changes nothing until a seat is assigned)."""
    ev = published.event
    account_id = ev.account_id if isinstance(ev, UserRolesChanged) else published.account_id
    if account_id is None:
        return
    if isinstance(ev, EntitlementGranted) and ev.user_id is None and ev.seats is not None:
        return
    user_id: str | None = ev.user_id
    await apply_changes(session, account_id, None if user_id is None else [user_id], now=published.occurred_at,
                        unused_days=unused_days)


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
