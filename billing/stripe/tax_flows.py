"""Stripe Tax flows: quote with tax, the card order's tax transaction, each refund's reversal.

The same three steps as billing.stripe.flows, never a Stripe call inside a transaction:
* quote: price in a read-only session (closed before Stripe is asked), calculate, store the quote with its tax
  in a new transaction (the quote row never exists without its tax);
* card payment: after the payment is recorded, ``tax.transactions.create_from_calculation`` (key
  ``order:{id}:tax``, reference ``order:{id}``), then the transaction id is stored;
* refund: after it succeeded, ``tax.transactions.create_reversal`` of its share (full when it returns the whole
  charge, else ``flat_amount`` = the refund, which Stripe spreads over the lines), then the reversal id.
``reconcile_tax`` repairs what a crash or a webhook-completed payment left unrecorded.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import stripe
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts import resolve_user
from app.accounts.models import Account
from app.auth import Principal
from app.clock import Clock
from billing.domain.tax import (
    NO_ADDRESS,
    UNAVAILABLE,
    LineResult,
    QuoteTax,
    TaxLine,
    customer_details,
    not_computed,
    summarise,
)
from billing.models import Order, OrderRefund
from billing.schemas import QuoteRead
from billing.service import _tax as tax
from billing.service._order_reads import quote_read
from billing.service._quotes import QuoteItem, price_quote
from billing.stripe.errors import PaymentProviderUnavailable
from billing.stripe.gateway import StripeGateway, idem
from billing.stripe.inbound import EventContext, Step, register_prepared

log = logging.getLogger("commerce.stripe.tax")
Sessionmaker = async_sessionmaker[AsyncSession]


def quote_tax_of(calc: stripe.tax.Calculation) -> tuple[QuoteTax, dict[str, int]]:
    """Stripe's calculation as the quote keeps it, and the tax of each line by module (its reference)."""
    assert calc.id is not None and calc.line_items is not None, "created with line_items expanded"
    lines = [LineResult(reference=li.reference, amount_tax_minor=li.amount_tax, parts=tuple(
        TaxLine(jurisdiction=b.jurisdiction.display_name, country=b.jurisdiction.country, state=b.jurisdiction.state,
                level=str(b.jurisdiction.level),
                rate=b.tax_rate_details.percentage_decimal if b.tax_rate_details is not None else "0",
                taxability=str(b.taxability_reason), taxable_minor=b.taxable_amount, tax_minor=b.amount)
        for b in li.tax_breakdown or ())) for li in calc.line_items.data]
    summary = summarise(calculation_id=calc.id, amount_total_minor=calc.amount_total,
                        tax_exclusive_minor=calc.tax_amount_exclusive, tax_inclusive_minor=calc.tax_amount_inclusive,
                        lines=lines)
    return summary, {line.reference: line.amount_tax_minor for line in lines}


def stripe_address(account: Account) -> dict[str, str]:
    """The account's billing address as Stripe's customer ``address``."""
    address = account.billing_address
    assert address is not None
    return {k: v for k, v in (("country", address.country), ("state", address.state),
                              ("postal_code", address.postal_code), ("city", address.city),
                              ("line1", address.line1), ("line2", address.line2)) if v}


def invoice_taxes(lines: list[stripe.InvoiceLineItem]) -> dict[str, tuple[int, str]]:
    """Each invoice line's tax and taxability reason, by the ``ref`` its item carried in its metadata."""
    out: dict[str, tuple[int, str]] = {}
    for line in lines:
        ref = line.metadata.to_dict().get("ref") if line.metadata is not None else None
        if ref is None:
            continue
        taxes = line.taxes or []
        out[str(ref)] = (sum(t.amount for t in taxes), str(taxes[0].taxability_reason) if taxes else "")
    return out


async def quote_with_tax(sessionmaker: Sessionmaker, gateway: StripeGateway, principal: Principal, *, user_ref: str,
                         items: list[QuoteItem], include_requirements: bool, clock: Clock,
                         ttl: timedelta) -> QuoteRead:
    """POST /v1/quotes with Stripe configured: net, tax by jurisdiction and rate, and gross."""
    async with sessionmaker() as session:  # 1. price (reads only; this session is closed before Stripe is asked)
        user = await resolve_user(session, principal, user_ref)
        account = await session.get_one(Account, user.account_id)
        quote = await price_quote(session, account, user, items, include_requirements=include_requirements,
                                  clock=clock, ttl=ttl)
    ask = tax.tax_ask(quote, account, user)
    if ask.customer is None:
        tax.apply_tax(quote, not_computed(NO_ADDRESS))
    elif not ask.items:
        tax.apply_tax(quote, tax.nothing_due(quote))
    else:  # 2. ask Stripe Tax (no transaction open)
        try:
            calc = await gateway.calculate_tax(
                currency=quote.currency, customer_details=customer_details(ask.customer), tax_date=int(
                    clock.now().timestamp()),
                line_items=[{"amount": i.amount_minor, "quantity": i.quantity, "reference": i.reference,
                             "tax_behavior": i.tax_behavior, **({"tax_code": i.tax_code} if i.tax_code else {})}
                            for i in ask.items])
        except PaymentProviderUnavailable:
            if quote.decision.route == "card":
                raise  # a card is charged what the quote shows: no quote without its tax
            tax.apply_tax(quote, not_computed(UNAVAILABLE))  # the budget's invoice computes it
        else:
            summary, per_line = quote_tax_of(calc)
            tax.apply_tax(quote, summary, per_line)
    async with sessionmaker() as session, session.begin():  # 3. store the quote with its tax
        session.add(quote)
    return quote_read(quote, account_ref=account.external_id, user_ref=user.external_id)


async def record_order_tax(sessionmaker: Sessionmaker, gateway: StripeGateway, order: Order) -> str | None:
    """The paid card order's tax transaction (recorded once; a replay answers the first)."""
    if order.tax_calculation_id is None or order.tax_transaction_id is not None:
        return order.tax_transaction_id
    tx = await gateway.record_tax_transaction(
        calculation_id=order.tax_calculation_id, reference=tax.order_tax_reference(order.order_id),
        key=idem("order", order.order_id, "tax"),
        metadata={"commerce_account_id": order.account_id, "commerce_order_id": order.order_id})
    async with sessionmaker() as session, session.begin():
        await tax.record_tax_transaction(session, order.account_id, order.order_id, tx.id)
    order.tax_transaction_id = tx.id
    return tx.id


async def reverse_refund_tax(sessionmaker: Sessionmaker, gateway: StripeGateway, refund: OrderRefund) -> str | None:
    """Reverse the tax of a succeeded refund in proportion to what it returned (all of it: in full)."""
    async with sessionmaker() as session:
        order = await session.get_one(Order, (refund.account_id, refund.order_id))
        row = await session.get_one(OrderRefund, (refund.account_id, refund.refund_id))
    if order.tax_transaction_id is None or row.tax_reversal_id is not None or row.status != "succeeded":
        return row.tax_reversal_id
    whole = row.seq == 1 and row.amount_minor == order.total_minor
    reversal = await gateway.reverse_tax_transaction(
        transaction_id=order.tax_transaction_id,
        reference=f"{tax.order_tax_reference(order.order_id)}:refund:{row.seq}",
        key=idem("order", order.order_id, "refund", row.seq, "tax"),
        flat_amount_minor=None if whole else row.amount_minor,
        metadata={"commerce_account_id": order.account_id, "commerce_order_id": order.order_id,
                  "commerce_refund_id": row.refund_id})
    async with sessionmaker() as session, session.begin():
        await tax.record_tax_reversal(session, row, reversal.id)
    return reversal.id


@register_prepared("payment_intent.succeeded")
async def tax_on_success(event: stripe.Event, gateway: StripeGateway) -> Step | None:
    """A card payment succeeded (also after 3-D Secure, by webhook): record its tax transaction at Stripe Tax
    before the event's transaction (same key and reference as after ``pay``: a replay, never a second one),
    then keep its id on the order in the event's transaction."""
    pi = event.data.object
    meta = pi.metadata.to_dict() if getattr(pi, "metadata", None) is not None else {}
    calculation, order_id, account_id = (meta.get("commerce_tax_calculation"), meta.get("commerce_order_id"),
                                         meta.get("commerce_account_id"))
    if not (calculation and order_id and account_id):
        return None
    tx = await gateway.record_tax_transaction(
        calculation_id=calculation, reference=tax.order_tax_reference(order_id), key=idem("order", order_id, "tax"),
        metadata={"commerce_account_id": account_id, "commerce_order_id": order_id})

    async def store(session: AsyncSession, ctx: EventContext) -> None:
        await tax.record_tax_transaction(session, account_id, order_id, tx.id)

    return store


async def after_payment(sessionmaker: Sessionmaker, gateway: StripeGateway, order: Order) -> None:
    """Record the tax transaction of an order that is now paid; a failure is left to reconcile (logged)."""
    if order.state not in ("paid", "fulfilled") or order.tax_calculation_id is None:
        return
    try:
        await record_order_tax(sessionmaker, gateway, order)
    except Exception:
        log.exception("recording the tax transaction of order %s failed; reconcile retries it", order.order_id)


async def after_refund(sessionmaker: Sessionmaker, gateway: StripeGateway, refund: OrderRefund) -> None:
    """Reverse the tax share of a refund; a failure is left to reconcile (logged)."""
    try:
        await reverse_refund_tax(sessionmaker, gateway, refund)
    except Exception:
        log.exception("reversing the tax of refund %s failed; reconcile retries it", refund.refund_id)


async def reconcile_tax(sessionmaker: Sessionmaker, gateway: StripeGateway) -> dict[str, int]:
    """Tax transactions of paid card orders and reversals of succeeded refunds still missing (crash, webhook)."""
    counts = {"tax_transactions": 0, "tax_reversals": 0, "tax_errors": 0}
    async with sessionmaker() as session:
        orders = await tax.untaxed_paid_orders(session)
    for order in orders:
        try:
            await record_order_tax(sessionmaker, gateway, order)
            counts["tax_transactions"] += 1
        except Exception:
            log.exception("recording the tax transaction of order %s failed", order.order_id)
            counts["tax_errors"] += 1
    async with sessionmaker() as session:
        refunds = await tax.unreversed_refunds(session)
    for refund in refunds:
        try:
            await reverse_refund_tax(sessionmaker, gateway, refund)
            counts["tax_reversals"] += 1
        except Exception:
            log.exception("reversing the tax of refund %s failed", refund.refund_id)
            counts["tax_errors"] += 1
    return counts
