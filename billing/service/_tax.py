"""Tax, the database side (no Stripe call here): what a quote asks Stripe Tax, storing its answer on the quote,
the order's tax transaction and each refund's reversal.

billing.stripe.tax_flows runs the steps: price the quote in a read-only session, ask Stripe Tax outside any
transaction, store the quote with its tax in a new one; after a card payment, record the tax transaction; after
a refund, reverse its share. Quotes keep the calculation id; the order copies it with the tax amounts.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Account, User
from app.onestatement import assign
from billing.domain.tax import (
    NOT_CONFIGURED,
    Customer,
    QuoteTax,
    TaxItem,
    charged_minor,
    customer_of,
    not_computed,
    tax_items,
)
from billing.models import Order, OrderRefund, Quote


@dataclass(frozen=True)
class TaxAsk:
    """What to ask Stripe Tax for a priced quote (``customer`` None: nothing can be asked)."""

    customer: Customer | None
    items: list[TaxItem]


def tax_ask(quote: Quote, account: Account, user: User) -> TaxAsk:
    """The customer and the lines to tax (a card purchase is the buyer's if the buyer has a billing country)."""
    customer = customer_of(address=account.billing_address, tax_ids=account.tax_ids, status=account.tax_status,
                           user_country=user.billing_country, card_route=quote.decision.route == "card")
    items = tax_items((line.module, line.total_minor, line.quantity, line.tax_code, line.tax_behavior)
                      for line in quote.lines)
    return TaxAsk(customer=customer, items=items)


def nothing_due(quote: Quote) -> QuoteTax:
    """A quote with nothing to pay now (metered lines, a zero total) has no tax now."""
    return QuoteTax(status="computed", net_minor=quote.total_minor, tax_minor=0, gross_minor=quote.total_minor)


def apply_tax(quote: Quote, tax: QuoteTax, per_line: dict[str, int] | None = None) -> None:
    """Put the tax on the (not yet stored) quote: its amounts, the calculation id and each line's tax."""
    assign(quote, tax=tax, tax_calculation_id=tax.calculation_id, tax_minor=tax.tax_minor,
           gross_minor=tax.gross_minor)  # the fast quote's is a plain row (app.onestatement)
    if tax.status == "computed":
        assign(quote, lines=[msgspec.structs.replace(line, tax_minor=(per_line or {}).get(line.module, 0))
                             for line in quote.lines])


def quote_tax(quote: Quote) -> QuoteTax:
    """The tax a quote shows (quotes made without Stripe Tax say so)."""
    return quote.tax if quote.tax is not None else not_computed(NOT_CONFIGURED)


def order_tax_terms(order: Order, quote: Quote) -> None:
    """A card order charges the quote's gross and keeps its calculation id to record the tax transaction.
    A budget order's tax comes on the bill-back invoice (Stripe's automatic tax), so it keeps none here."""
    tax = quote.tax
    if order.route != "card" or tax is None or tax.status != "computed":
        return
    order.total_minor = charged_minor(quote.total_minor, tax)
    order.tax_minor = tax.tax_minor
    order.tax_calculation_id = tax.calculation_id


def order_tax_reference(order_id: str) -> str:
    return f"order:{order_id}"


async def record_tax_transaction(session: AsyncSession, account_id: str, order_id: str, transaction_id: str) -> None:
    """Store the order's tax transaction (the first one wins; a replay changes nothing)."""
    order = await session.get(Order, (account_id, order_id), with_for_update=True, populate_existing=True)
    if order is not None and order.tax_transaction_id is None:
        order.tax_transaction_id = transaction_id


async def record_tax_reversal(session: AsyncSession, refund: OrderRefund, reversal_id: str) -> None:
    row = await session.get_one(OrderRefund, (refund.account_id, refund.refund_id), with_for_update=True,
                                populate_existing=True)
    if row.tax_reversal_id is None:
        row.tax_reversal_id = reversal_id


async def untaxed_paid_orders(session: AsyncSession, *, limit: int = 200) -> list[Order]:
    """Paid card orders with a tax calculation but no tax transaction yet (reconcile records them)."""
    return list((await session.scalars(select(Order).where(
        Order.tax_calculation_id.is_not(None), Order.tax_transaction_id.is_(None),
        Order.state.in_(("paid", "fulfilled", "refunded"))).limit(limit))).all())


async def unreversed_refunds(session: AsyncSession, *, limit: int = 200) -> list[OrderRefund]:
    """Succeeded refunds of orders with a tax transaction whose tax share is not reversed yet."""
    return list((await session.scalars(select(OrderRefund).join(
        Order, (Order.account_id == OrderRefund.account_id) & (Order.order_id == OrderRefund.order_id)).where(
        OrderRefund.status == "succeeded", OrderRefund.tax_reversal_id.is_(None),
        Order.tax_transaction_id.is_not(None)).order_by(OrderRefund.created_at).limit(limit))).all())

