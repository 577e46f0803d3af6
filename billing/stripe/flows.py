"""Every flow that calls Stripe, one orchestrating function each: the only code that mixes Stripe and the database.

Each shows the same three steps (STYLE.md, "Transactions"):
1. **commit** the pending state in its own transaction (an attempt, a refund, a claimed renewal), carrying the
   idempotency key of the Stripe request to come;
2. **call Stripe** outside any transaction (the gateway asserts it: app.db.assert_outside_transaction);
3. **record** the answer in a new transaction.
A crash or a lost answer between 1 and 3 leaves the pending row: the next run (a retry, ``reconcile``, the
billing run) replays the same request under the same key, so Stripe answers with its first outcome. Reads
that decide what to ask Stripe run in short read-only sessionmaker closed before the call.

Flows: card setup (``start_card_setup``, ``list_saved_cards``, ``remove_card``, ``set_default_card``), pay an
order (``pay_order``), refund (``refund_order``), renewal charge (``renew_one``, ``run_billing``), invoice a
statement (``invoice_statement``, ``invoice_period``), ``reconcile``. Stripe's events in follow the same
steps in billing.stripe.inbound.process (the card-saved handler calls Stripe before the event's transaction).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import stripe
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import audit
from app.accounts import resolve_user
from app.accounts.models import Account, User
from app.auth import Principal
from app.clock import Clock
from app.errors import Unprocessable
from app.settings import Settings
from billing.domain.tax import CUSTOMER_EXEMPT
from billing.models import CardPayment, Order, OrderRefund, Statement, Subscription
from billing.service import _card_refunds as refunds
from billing.service import _invoices as invoices
from billing.service import _payments as payments
from billing.service import _renewals as renewals
from billing.service._orders import load_order, refund_budget_order
from billing.stripe import cards, inbound, tax_flows
from billing.stripe.errors import (
    AuthenticationRequired,
    CardDeclined,
    CardPaymentsDisabled,
    CardSetupRequired,
    PaymentProviderRejected,
    PaymentProviderUnavailable,
)
from billing.stripe.gateway import StripeGateway, idem
from billing.stripe.schemas import CardList, CardRead, CardSetupRead

log = logging.getLogger("commerce.stripe.flows")
Sessionmaker = async_sessionmaker[AsyncSession]
# ``progress(done, total)`` after each item of a long run (the CLI's progress bar); total None when unknown
Progress = Callable[[int, int | None], None]


# --- card setup ------------------------------------------------------------------------------------------

async def _user(sessionmaker: Sessionmaker, principal: Principal, user_ref: str) -> User:
    """The user this principal may act for (a short read: no transaction stays open)."""
    async with sessionmaker() as session:
        return await resolve_user(session, principal, user_ref)


async def _customer(sessionmaker: Sessionmaker, gateway: StripeGateway, user: User) -> str:
    """The user's Stripe customer: created once by key (Stripe), then its id recorded (own transaction)."""
    if user.stripe_customer_id:
        return user.stripe_customer_id
    customer_id = await cards.create_customer(gateway, user)
    async with sessionmaker() as session, session.begin():
        await cards.store_customer(session, user, customer_id)
    user.stripe_customer_id = customer_id
    return customer_id


async def start_card_setup(sessionmaker: Sessionmaker, gateway: StripeGateway, principal: Principal, user_ref: str, *,
                           attempt: str) -> CardSetupRead:
    """A SetupIntent (usage off_session) for the widget to save a card with; the customer is made lazily."""
    user = await _user(sessionmaker, principal, user_ref)
    customer_id = await _customer(sessionmaker, gateway, user)
    seti = await gateway.create_setup_intent(customer_id=customer_id, key=idem("user", user.user_id, "setup", attempt),
                                             metadata=cards.customer_metadata(user))
    assert seti.client_secret is not None
    return CardSetupRead(setup_intent=seti.id, client_secret=seti.client_secret, status=seti.status)


async def list_saved_cards(sessionmaker: Sessionmaker, gateway: StripeGateway, principal: Principal,
                           user_ref: str) -> CardList:
    """``GET /v1/payment-methods``: the user's saved cards, the default flagged (Stripe reads only)."""
    user = await _user(sessionmaker, principal, user_ref)
    if not user.stripe_customer_id:
        return CardList(data=[])
    default_id = cards.default_of(await gateway.get_customer(user.stripe_customer_id))
    return CardList(data=[cards.card_read(pm, default_id) for pm in await gateway.list_cards(user.stripe_customer_id)])


async def remove_card(sessionmaker: Sessionmaker, gateway: StripeGateway, principal: Principal, user_ref: str,
                      payment_method_id: str, *, clock: Clock) -> None:
    """``DELETE /v1/payment-methods/{id}``: detach the card (Stripe), then audit it (its own transaction)."""
    user = await _user(sessionmaker, principal, user_ref)
    pm = await cards.own_card(gateway, user, payment_method_id)
    await gateway.detach_payment_method(pm.id, key=idem("pm", pm.id, "detach"))
    async with sessionmaker() as session, session.begin():
        await audit.record(session, clock=clock, actor=principal.actor, action="card.removed", target_type="user",
                           target_id=user.external_id, account_id=user.account_id, after={"payment_method": pm.id})


async def set_default_card(sessionmaker: Sessionmaker, gateway: StripeGateway, principal: Principal, user_ref: str,
                           payment_method_id: str, *, clock: Clock) -> CardRead:
    """``POST /v1/payment-methods/{id}/default``: make it the default (Stripe), then audit it."""
    user = await _user(sessionmaker, principal, user_ref)
    pm = await cards.own_card(gateway, user, payment_method_id)
    assert user.stripe_customer_id is not None
    await cards.make_default(gateway, user.stripe_customer_id, pm.id)
    async with sessionmaker() as session, session.begin():
        await audit.record(session, clock=clock, actor=principal.actor, action="card.default_set",
                           target_type="user", target_id=user.external_id, account_id=user.account_id,
                           after={"payment_method": pm.id})
    return cards.card_read(pm, pm.id)


# --- paying an order -------------------------------------------------------------------------------------

async def charge(gateway: StripeGateway, payment: CardPayment) -> payments.Outcome:
    """The Stripe call of a committed attempt (replays the first answer for its key). Unavailability propagates."""
    try:
        pi = await gateway.charge_off_session(
            amount_minor=payment.amount_minor, currency=payment.currency, customer_id=payment.customer_id,
            payment_method_id=payment.payment_method_id, metadata=payments.metadata(payment),
            key=payment.idempotency_key, description=f"Order {payment.order_id}")
    except AuthenticationRequired as exc:
        return payments.Outcome("requires_action", exc.extensions.get("payment_intent"),
                                exc.extensions.get("client_secret"), "authentication_required", exc.detail)
    except CardDeclined as exc:
        return payments.Outcome("failed", exc.extensions.get("payment_intent"), None,
                                str(exc.extensions.get("decline_code") or "card_declined"), exc.detail)
    except PaymentProviderRejected:  # Stripe refused the request itself: nothing was charged, ever will be
        return payments.Outcome("failed", None, None, "payment_rejected",
                                "The card payment was refused by the payment provider; nothing was charged. "
                                "Cancel the order or ask your admin for another way to pay.")
    if pi.status == "succeeded":
        return payments.Outcome("succeeded", pi.id)
    if pi.status == "requires_action":
        return payments.Outcome("requires_action", pi.id, pi.client_secret, "authentication_required",
                                "Your bank asks you to confirm this payment.")
    return payments.Outcome("pending", pi.id)  # processing: the webhook completes it


# Stripe forgets an idempotency key 24 hours after its first use; replaying an attempt older than this margin
# could make a second charge, so such an attempt first looks its PaymentIntent up (our payment id in metadata).
IDEMPOTENCY_WINDOW = timedelta(hours=23)


def outcome_of(pi: stripe.PaymentIntent) -> payments.Outcome:
    """What a PaymentIntent found at Stripe says about the attempt that made it."""
    if pi.status == "succeeded":
        return payments.Outcome("succeeded", pi.id)
    if pi.status == "requires_action":
        return payments.Outcome("requires_action", pi.id, pi.client_secret, "authentication_required",
                                "Your bank asks you to confirm this payment.")
    if pi.status in ("requires_payment_method", "canceled"):
        error = pi.last_payment_error
        code = (error.decline_code or error.code) if error is not None else pi.status
        message = (error.message if error is not None else None) or "The payment did not go through."
        return payments.Outcome("failed", pi.id, None, code or "card_declined", message)
    return payments.Outcome("pending", pi.id)  # processing, requires_confirmation: the webhook completes it


async def adopt(gateway: StripeGateway, payment: CardPayment) -> payments.Outcome | None:
    """The outcome of the PaymentIntent this attempt already made at Stripe, if it made one."""
    pi = await gateway.find_payment_intent(customer_id=payment.customer_id, metadata_key="commerce_payment_id",
                                           metadata_value=payment.payment_id)
    return None if pi is None else outcome_of(pi)


async def settle(sessionmaker: Sessionmaker, gateway: StripeGateway, payment: CardPayment, *, clock: Clock) -> Order:
    """Steps 2 and 3 for a committed attempt: charge, then record the outcome in a new transaction.

    An attempt older than Stripe's idempotency window adopts the PaymentIntent it made, if any, instead of
    replaying its key (which Stripe no longer knows, so a replay would charge again).
    """
    outcome = None
    if payment.created_at <= clock.now() - IDEMPOTENCY_WINDOW:
        outcome = await adopt(gateway, payment)
    if outcome is None:
        outcome = await charge(gateway, payment)
    async with sessionmaker() as session, session.begin():
        order = await payments.record_outcome(session, payment, outcome, clock=clock)
    await tax_flows.after_payment(sessionmaker, gateway, order)  # the tax transaction of the charged gross
    return order


async def pay_order(sessionmaker: Sessionmaker, gateway: StripeGateway, principal: Principal, order_id: str, *,
                    payment_method_id: str | None, clock: Clock) -> None:
    """POST /v1/orders/{id}/pay: charge the order's card off-session."""
    async with sessionmaker() as session:  # which card to ask Stripe about (a short read)
        order, _, user = await load_order(session, principal, order_id)
        replay = await payments.latest_attempt(session, order)
        needs_card = (order.route == "card" and order.state in ("payment_pending", "failed")
                      and not (replay is not None and replay.status == "pending"))
        customer_id = user.stripe_customer_id
    card = await cards.choose_card(gateway, customer_id, payment_method_id) if needs_card else None
    async with sessionmaker() as session, session.begin():  # 1. commit the pending attempt
        order, account, user = await load_order(session, principal, order_id, lock=True)
        payment = await payments.start_attempt(session, order, account, user, payment_method_id=card, clock=clock)
    if payment is not None:
        await settle(sessionmaker, gateway, payment, clock=clock)  # 2. charge, 3. record


# --- refunds ---------------------------------------------------------------------------------------------

async def _send_refund(sessionmaker: Sessionmaker, gateway: StripeGateway, refund: OrderRefund, *,
                       clock: Clock) -> None:
    """Steps 2 and 3 of a committed refund. An outage leaves it pending (replayed later); a refusal fails it."""
    async with sessionmaker() as session:
        payment_intent_id = await refunds.refund_target(session, refund)
    try:
        sent = await gateway.refund(payment_intent_id=payment_intent_id, key=refunds.refund_key(refund),
                                    amount_minor=refund.amount_minor, reason="requested_by_customer",
                                    metadata=refunds.refund_metadata(refund))
    except PaymentProviderUnavailable:
        raise
    except Exception:
        async with sessionmaker() as session, session.begin():
            await refunds.refund_failed(session, refund, clock=clock)
        raise
    async with sessionmaker() as session, session.begin():
        if sent.status == "succeeded":
            await refunds.record_refund(session, refund, stripe_refund_id=sent.id, clock=clock)
        elif sent.status in ("failed", "canceled"):
            await refunds.refund_failed(session, refund, clock=clock, status="canceled" if sent.status == "canceled"
                                        else "failed", reason=sent.failure_reason)
        else:  # pending (or requires_action): Stripe's refund.updated event settles it
            await refunds.refund_processing(session, refund, stripe_refund_id=sent.id, clock=clock)
    if sent.status == "succeeded":
        await tax_flows.after_refund(sessionmaker, gateway, refund)  # its share of the tax goes back too


async def refund_order(sessionmaker: Sessionmaker, gateway: StripeGateway | None, principal: Principal,
                       order_id: str, *, amount_minor: int | None, note: str | None, clock: Clock) -> None:
    """Refund a paid order: budget orders in full to their budget (one transaction), card orders through Stripe."""
    async with sessionmaker() as session, session.begin():  # 1. commit the pending refund (or do a budget one)
        order, _, _ = await load_order(session, principal, order_id, lock=True)
        if order.route == "budget":
            if amount_minor is not None and amount_minor != order.total_minor - order.refunded_minor:
                raise Unprocessable("Budget orders are refunded in full.", field="amount_minor")
            await refund_budget_order(session, principal, order_id, clock=clock, note=note)
            return
        if gateway is None:
            raise CardPaymentsDisabled("Card payments are not configured on this service (STRIPE_SECRET_KEY).")
        refund = await refunds.start_refund(session, order, amount_minor=amount_minor, note=note,
                                            actor=principal.actor, clock=clock)
    await _send_refund(sessionmaker, gateway, refund, clock=clock)  # 2. refund, 3. record


# --- renewals --------------------------------------------------------------------------------------------

async def renew_one(sessionmaker: Sessionmaker, gateway: StripeGateway | None, account_id: str, subscription_id: str, *,
                    settings: Settings, clock: Clock) -> str:
    """One renewal attempt of one subscription: renewed | failed | ended | pending | skipped."""
    async with sessionmaker() as session:  # which card (a short read)
        sub = await session.get(Subscription, (account_id, subscription_id))
        if sub is None:
            return "skipped"
        route = sub.route
        customer_id = (await session.get_one(User, (account_id, sub.user_id))).stripe_customer_id
    card: str | None = None
    if route == "card":
        if gateway is None:
            return "skipped"
        try:
            card = await cards.choose_card(gateway, customer_id, None)
        except CardSetupRequired:
            card = None  # the claim fails the renewal with the reason
        except PaymentProviderUnavailable:
            return "pending"
    async with sessionmaker() as session, session.begin():  # 1. claim; budget renewals complete here
        claim = await renewals.claim_renewal(session, account_id, subscription_id, card=card, settings=settings,
                                             clock=clock)
    if claim.result is not None:
        return claim.result
    assert claim.order_id is not None
    if claim.payment is not None:
        assert gateway is not None
        try:
            await settle(sessionmaker, gateway, claim.payment, clock=clock)  # 2. charge, 3. record
        except PaymentProviderUnavailable:
            return "pending"  # stays renewing; the next run (after reconcile_after_seconds) replays the charge
    async with sessionmaker() as session, session.begin():
        return await renewals.finish_renewal(session, account_id, subscription_id, claim.order_id,
                                             attempt=claim.attempt, settings=settings, clock=clock)


async def run_billing(sessionmaker: Sessionmaker, gateway: StripeGateway | None, *, settings: Settings, clock: Clock,
                      limit: int = 500, progress: Progress | None = None) -> renewals.RunReport:
    """``commerce billing run``: renew every due subscription (repeating while a pass makes progress)."""
    report = renewals.RunReport()
    seen: dict[tuple[str, str], int] = {}
    handled = 0
    while True:
        async with sessionmaker() as session:
            due = await renewals.due_subscriptions(session, settings=settings, clock=clock, limit=limit)
        moved = False
        for key in due:
            seen[key] = seen.get(key, 0) + 1
            if seen[key] > 24:  # bounded: never loop on one subscription
                continue
            try:
                result = await renew_one(sessionmaker, gateway, *key, settings=settings, clock=clock)
            except Exception as exc:  # one subscription's surprise must not stop the others' renewals
                log.exception("renewing subscription %s failed", key[1])
                report.errors.append(f"{key[1]}: {type(exc).__name__}")
                continue
            setattr(report, result, getattr(report, result) + 1)
            moved = moved or result in ("renewed", "failed", "ended")
            handled += 1
            if progress is not None:
                progress(handled, None)  # later passes may find more: the total is not known up front
        if not moved:
            return report


# --- bill-back invoices ----------------------------------------------------------------------------------

async def _account_customer(sessionmaker: Sessionmaker, gateway: StripeGateway, account: Account) -> str:
    """The account's Stripe customer (the bill-back payer): created once by key, then recorded."""
    if account.stripe_customer_id:
        return account.stripe_customer_id
    customer = await gateway.create_customer(key=idem("account", account.account_id, "customer"),
                                             metadata={"commerce_account_id": account.account_id}, name=account.name)
    async with sessionmaker() as session, session.begin():
        await invoices.store_account_customer(session, account.account_id, customer.id)
    return customer.id


async def invoice_statement(sessionmaker: Sessionmaker, gateway: StripeGateway, account_id: str, statement_id: str, *,
                            clock: Clock) -> str | None:
    """Invoice one closed statement; returns the Stripe invoice id (None when there is nothing to bill).

    The closed statement is the committed pending state (step 1 happened when the period closed); every key
    derives from its id, so a re-run after a crash replays items, invoice, finalize and send.
    """
    async with sessionmaker() as session:
        statement = await session.get_one(Statement, (account_id, statement_id))
        account = await session.get_one(Account, account_id)
    if statement.total_minor <= 0:
        return None
    if statement.stripe_invoice_id is not None and statement.status != "closed":
        return statement.stripe_invoice_id
    customer_id = await _account_customer(sessionmaker, gateway, account)
    automatic = account.billing_address is not None  # Stripe Tax needs the customer's location
    if automatic:
        await gateway.set_customer_tax_identity(
            customer_id, address=tax_flows.stripe_address(account), tax_exempt=CUSTOMER_EXEMPT[account.tax_status],
            tax_ids=[(t.type, t.value) for t in account.tax_ids], key=idem("statement", statement_id, "customer"))
    meta = {"commerce_account_id": account_id, "commerce_statement_id": statement_id, "period": statement.period}
    for n, line in enumerate(invoices.invoice_lines(statement), start=1):  # 2. the Stripe calls
        await gateway.create_invoice_item(
            customer_id=customer_id, amount_minor=line.amount_minor, currency=statement.currency,
            description=line.description, key=idem("statement", statement_id, "item", n),
            metadata={**meta, "ref": line.ref}, tax_code=line.tax_code if automatic else None,
            tax_behavior=line.tax_behavior if automatic else None)
    invoice = await gateway.create_invoice(
        customer_id=customer_id, days_until_due=account.payment_terms_days,
        key=idem("statement", statement_id, "invoice"), metadata=meta,
        description=f"Purchases from your budgets, {statement.period}", automatic_tax=automatic)
    if invoice.status == "draft":
        invoice = await gateway.finalize_invoice(invoice.id, key=idem("statement", statement_id, "finalize"))
    if invoice.status == "open":
        await gateway.send_invoice(invoice.id, key=idem("statement", statement_id, "send"))
    taxes = tax_flows.invoice_taxes(await gateway.invoice_lines(invoice)) if automatic else None
    async with sessionmaker() as session, session.begin():  # 3. record
        await invoices.record_invoice(session, account, statement_id, invoice_id=invoice.id,
                                      paid=invoice.status == "paid", hosted_invoice_url=invoice.hosted_invoice_url,
                                      clock=clock, taxes=taxes)
    return invoice.id


async def invoice_period(sessionmaker: Sessionmaker, gateway: StripeGateway, period: str, *,
                         clock: Clock, progress: Progress | None = None) -> dict[str, int]:
    """Invoice every closed statement of ``period`` with spend (the invoicing step of closing a period)."""
    async with sessionmaker() as session:
        todo = await invoices.statements_to_invoice(session, period)
    counts = {"invoiced": 0, "failed": 0}
    for done, (account_id, statement_id) in enumerate(todo, start=1):
        if progress is not None:
            progress(done - 1, len(todo))
        try:
            await invoice_statement(sessionmaker, gateway, account_id, statement_id, clock=clock)
            counts["invoiced"] += 1
        except Exception:
            log.exception("invoicing statement %s failed; the next run retries it", statement_id)
            counts["failed"] += 1
    if progress is not None:
        progress(len(todo), len(todo))
    return counts


# --- reconcile -------------------------------------------------------------------------------------------

async def _complete_waiting(sessionmaker: Sessionmaker, gateway: StripeGateway, payment: CardPayment, *,
                            clock: Clock) -> bool:
    """An attempt waiting for the customer: re-read its PaymentIntent; a success or a cancel is recorded."""
    assert payment.payment_intent_id is not None
    pi = await gateway.get_payment_intent(payment.payment_intent_id)
    outcome = {"succeeded": payments.Outcome("succeeded", pi.id),
               "canceled": payments.Outcome("failed", pi.id, None, "canceled", "The payment was canceled.")
               }.get(pi.status)
    if outcome is None:
        return False
    async with sessionmaker() as session, session.begin():
        await payments.record_outcome(session, payment, outcome, clock=clock)
    return True


async def _reconcile_payment(sessionmaker: Sessionmaker, gateway: StripeGateway, payment: CardPayment, *, clock: Clock,
                             counts: dict[str, int]) -> None:
    if payment.status == "pending":
        async with sessionmaker() as session:
            state = await session.scalar(select(Order.state).where(Order.account_id == payment.account_id,
                                                                   Order.order_id == payment.order_id))
        if state in ("canceled", "expired", "denied"):  # never charge for a closed order: only learn the truth
            outcome = await adopt(gateway, payment) or payments.Outcome(
                "failed", None, None, "order_closed", "The order was closed before this payment reached Stripe.")
            async with sessionmaker() as session, session.begin():
                await payments.record_outcome(session, payment, outcome, clock=clock)
            counts["payments_completed"] += 1
            return
        await settle(sessionmaker, gateway, payment, clock=clock)  # replays the committed attempt under its key
        counts["payments_replayed"] += 1
    elif payment.payment_intent_id is not None and await _complete_waiting(sessionmaker, gateway, payment, clock=clock):
        counts["payments_completed"] += 1


async def reconcile(sessionmaker: Sessionmaker, gateway: StripeGateway, *, settings: Settings,
                    clock: Clock) -> dict[str, int]:
    """``commerce billing reconcile``: repair what a lost answer, a crash or a lost webhook left unfinished.

    Card attempts still ``pending`` are replayed under their key (a charge made before a crash is recorded,
    never made twice); attempts waiting for the customer are re-read; refunds still ``pending``, and refunds
    owed for payments that succeeded on closed orders, are (re)sent; stored events whose handler failed run
    again. Only rows older than ``reconcile_after_seconds`` are touched, so work in flight is left alone.
    """
    counts = {"payments_replayed": 0, "payments_completed": 0, "refunds_replayed": 0, "orphans_refunded": 0,
              "events_reprocessed": 0, "errors": 0}
    older = timedelta(seconds=settings.reconcile_after_seconds)
    async with sessionmaker() as session:
        attempts = await payments.unresolved_attempts(session, older_than=older, clock=clock)
        pending = [r for r in await refunds.pending_refunds(session) if r.created_at <= clock.now() - older]
    for payment in attempts:
        try:
            await _reconcile_payment(sessionmaker, gateway, payment, clock=clock, counts=counts)
        except Exception:
            log.exception("reconciling payment %s failed", payment.payment_id)
            counts["errors"] += 1
    async with sessionmaker() as session, session.begin():  # 1. commit the refunds owed
        orphans = await refunds.refunds_for_orphans(session, clock=clock)
    counts["orphans_refunded"] = len(orphans)
    for refund in [*pending, *orphans]:
        try:
            await _send_refund(sessionmaker, gateway, refund, clock=clock)  # 2. refund, 3. record
            counts["refunds_replayed"] += 1
        except Exception:
            log.exception("reconciling refund %s failed", refund.refund_id)
            counts["errors"] += 1
    done, failed = await inbound.reprocess_pending(sessionmaker, gateway, clock=clock)
    counts["events_reprocessed"], counts["errors"] = done, counts["errors"] + failed
    taxed = await tax_flows.reconcile_tax(sessionmaker, gateway)
    counts["tax_transactions"], counts["tax_reversals"] = taxed["tax_transactions"], taxed["tax_reversals"]
    counts["errors"] += taxed["tax_errors"]
    return counts
