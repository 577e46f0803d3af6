"""An order as plain values, for packages above billing (the suggestion engine's subscribers): who bought,
what each line cost, whether it renews a subscription. Billing's tables never leave billing."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from billing.models import Order


@dataclass(frozen=True)
class LineSummary:
    module: str
    total_minor: int


@dataclass(frozen=True)
class OrderSummary:
    order_id: str
    account_id: str
    user_id: str
    currency: str
    renewal: bool
    lines: tuple[LineSummary, ...]


async def order_summary(session: AsyncSession, *, account_id: str, order_id: str) -> OrderSummary | None:
    """The order as plain values; free (no query) in the transaction that just moved it, which holds the row."""
    order = await session.get(Order, (account_id, order_id))
    if order is None:
        return None
    return OrderSummary(order_id=order.order_id, account_id=order.account_id, user_id=order.user_id,
                        currency=order.currency, renewal=order.subscription_id is not None,
                        lines=tuple(LineSummary(module=line.module, total_minor=line.total_minor)
                                    for line in order.lines))
