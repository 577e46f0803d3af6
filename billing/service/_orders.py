"""Orders from quotes (auto-close), approvals, fulfilment (auto-entitle + auto-provision), cancel and refund.

Every state change goes through ``_move``, which applies the pure state machine and writes the outbox
event in the caller's transaction. On the budget route the whole path (hold or capture, grants, events)
is one transaction, so a crash leaves either all of it or none of it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import String, and_, func, select
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import catalog
import entitlements
from app import audit
from app.accounts.models import Account, User
from app.auth import Principal, UserPrincipal
from app.clock import Clock
from app.errors import Forbidden, NotFound
from app.events import publish
from app.ids import new_id
from billing.domain import orders as machine
from billing.domain.credit import classify
from billing.domain.guardrails import GuardrailPolicy
from billing.domain.periods import period_key, period_of
from billing.domain.quotes import modules_of
from billing.errors import (
    ApprovalConflict,
    BudgetExhausted,
    IllegalOrderTransition,
    OrderNotFound,
    PurchaseBlocked,
    QuoteUnusable,
)
from billing.events import (
    ApprovalDecided,
    ApprovalRequested,
    ProvisionAcknowledged,
    ProvisionedFeature,
    ProvisionFailed,
    ProvisionItem,
    ProvisionRequested,
    order_event,
    typed_event,
)
from billing.models import Approval, Budget, BudgetHold, Order, Quote, SalesCredit
from billing.schemas import ApprovalRead, OrderRead
from billing.service import _subscriptions as subscriptions
from billing.service._budgets import capture, refund, release, reserve
from billing.service._credit import reverse_credit
from billing.service._guardrails import current_policy
from billing.service._order_reads import approval_read, approval_reads, load_quote, order_read, order_read_of
from billing.service._quotes import decide_in_context, decision_dict
from billing.service._tax import order_tax_terms
from catalog.spec import ConfigFeature, GrantValue, LimitFeature


def order_payload(order: Order, account: Account, user: User) -> dict[str, Any]:
    return {"order_id": order.order_id, "account": account.external_id, "user": user.external_id,
            "state": order.state, "route": order.route, "total_minor": order.total_minor, "currency": order.currency,
            "modules": list(modules_of(order.lines))}


async def _move(session: AsyncSession, order: Order, target: machine.OrderState, *, account: Account, user: User,
                clock: Clock, flush: bool = True, **extra: Any) -> Order:
    """``flush=False``: a later move in the same step writes the row (one UPDATE for both states)."""
    try:
        order.state = machine.transition(order.state, target)
    except machine.IllegalTransition as exc:
        raise IllegalOrderTransition(str(exc).capitalize() + ".", state=order.state) from exc
    order.updated_at = clock.now()
    if flush:
        await session.flush()
    event, beside = order_event(target, {**order_payload(order, account, user), **extra})
    await publish(session, event, clock=clock, account_id=order.account_id, extra=beside)
    return order


async def _hold(session: AsyncSession, order: Order) -> BudgetHold | None:
    return await session.scalar(select(BudgetHold).where(BudgetHold.account_id == order.account_id,
                                                         BudgetHold.order_id == order.order_id))


async def find_order(session: AsyncSession, principal: Principal, order_id: str, *, lock: bool = False,
                     whole_account: bool = False) -> Order:
    """The order as this principal may see it (end users: their own; admins and approvers: their account's)."""
    query = select(Order).where(Order.order_id == order_id)
    if lock:
        query = query.with_for_update()
    order = await session.scalar(query)
    if order is None or not (principal.may_access_account(order.account_id) if whole_account
                             else principal.may_access_user(order.account_id, order.user_id)):
        raise OrderNotFound(f"Order {order_id!r} does not exist.")
    return order


async def load_order(session: AsyncSession, principal: Principal, order_id: str, *, lock: bool = False,
                     whole_account: bool = False) -> tuple[Order, Account, User]:
    """The order (see find_order) with its account and buyer."""
    order = await find_order(session, principal, order_id, lock=lock, whole_account=whole_account)
    account = await session.get_one(Account, order.account_id)
    user = await session.get_one(User, (order.account_id, order.user_id))
    return order, account, user


async def place_order(session: AsyncSession, quote: Quote, account: Account, user: User, *, reason: str | None,
                      clock: Clock) -> Order:
    """Auto-close a quote: re-check the guardrails, then hold or capture budget, or start the card payment."""
    now = clock.now()
    if quote.status != "open":
        raise QuoteUnusable("This quote was already ordered; ask for a new quote.")
    if quote.expires_at <= now:
        raise QuoteUnusable("This quote has expired; ask for a new quote (prices are locked only until expiry).")
    modules = modules_of(quote.lines)
    if len(set(modules)) != len(modules):  # quoted before duplicates were refused: never grant a module twice
        raise QuoteUnusable("This quote lists a module twice; ask for a new quote.")
    context = await decide_in_context(session, account, user, modules=modules_of(quote.lines),
                                      total_minor=quote.total_minor, currency=quote.currency,
                                      vendor_approval=quote.decision.vendor_approval_required, clock=clock)
    decision = context.decision
    if decision.outcome == "blocked" or decision.route is None:
        raise PurchaseBlocked(" ".join(decision.reasons), reasons=list(decision.reasons))
    quote.status = "ordered"
    budget = context.budget if decision.route == "budget" else None
    order = Order(account_id=account.account_id, order_id=new_id("ord"), quote_id=quote.quote_id,
                  user_id=user.user_id, route=decision.route, state="approved", currency=quote.currency,
                  total_minor=quote.total_minor, refunded_minor=0, lines=quote.lines,
                  budget_id=budget.budget_id if budget is not None else None, reason=reason,
                  created_at=now, updated_at=now, paid_at=None, fulfilled_at=None)
    if decision.outcome == "approval_required":
        order.state = "pending_approval"
    order_tax_terms(order, quote)  # a card order charges the quote's gross (tax included)
    session.add(order)
    await session.flush()
    created, beside = order_event("created", {**order_payload(order, account, user),
                                              "decision": decision_dict(decision)})
    await publish(session, created, clock=clock, account_id=account.account_id, extra=beside)
    if decision.route == "budget":
        assert budget is not None, "the guardrails chose the budget route, so a budget exists"
        await _budget_route(session, order, account, user, approval=decision.outcome == "approval_required",
                            reasons=list(decision.reasons), budget=budget, policy=context.policy,
                            period=context.period, clock=clock)
    else:
        await _card_route(session, order, account, user, approval=decision.outcome == "approval_required",
                          reasons=list(decision.reasons), clock=clock)
    return order


async def _budget_route(session: AsyncSession, order: Order, account: Account, user: User, *, approval: bool,
                        reasons: list[str], budget: Budget, policy: GuardrailPolicy, period: str | None,
                        clock: Clock) -> None:
    """The budget and policy are those the decision was made from, in this transaction (not read again)."""
    order.budget_id = budget.budget_id
    if order.total_minor == 0:
        if not approval:
            await _pay_and_fulfil(session, order, account, user, clock=clock, after_approval=False)
        else:
            await _request_approval(session, order, account, user, reasons=reasons, policy=policy, clock=clock)
        return
    if not approval:
        # Fulfil first, capture last: the guarded UPDATE locks the budget period row until commit, so taking it
        # at the end keeps that lock (which every buyer on the budget queues for) to the last few statements.
        # A budget that cannot cover the order raises here and the whole transaction, grants included, rolls back.
        await _pay_and_fulfil(session, order, account, user, clock=clock, after_approval=False)
    try:
        await reserve(session, budget, order_id=order.order_id, amount_minor=order.total_minor, clock=clock,
                      capture_now=not approval, thresholds=list(policy.alert_thresholds_pct), new_order=True,
                      period=period)
    except BudgetExhausted as exc:
        raise BudgetExhausted(f"{exc.detail} Nothing was charged.", budget_id=budget.budget_id) from exc
    if approval:
        await _request_approval(session, order, account, user, reasons=reasons, policy=policy, clock=clock)


async def _card_route(session: AsyncSession, order: Order, account: Account, user: User, *, approval: bool,
                      reasons: list[str], clock: Clock) -> None:
    """The card payment itself runs after this transaction commits (never across a Stripe call)."""
    if approval:
        await _request_approval(session, order, account, user, reasons=reasons, clock=clock)
        return
    if order.total_minor == 0:
        await _pay_and_fulfil(session, order, account, user, clock=clock)
        return
    await _move(session, order, "payment_pending", account=account, user=user, clock=clock)


async def _request_approval(session: AsyncSession, order: Order, account: Account, user: User, *,
                            reasons: list[str], policy: GuardrailPolicy | None = None, clock: Clock) -> Approval:
    if policy is None:
        _, policy = await current_policy(session, account)
    now = clock.now()
    temporary_until = now + timedelta(hours=policy.temporary_access_hours) if policy.temporary_access_hours else None
    approval = Approval(account_id=account.account_id, approval_id=new_id("apr"), order_id=order.order_id,
                        requester_user_id=user.user_id, reason=order.reason, reasons=reasons,
                        approver_roles=list(policy.approver_roles), state="pending", decided_by=None,
                        decision_note=None, created_at=now,
                        expires_at=now + timedelta(hours=policy.approval_expiry_hours), decided_at=None,
                        temporary_access_until=temporary_until)
    session.add(approval)
    await session.flush()
    if temporary_until is not None:
        for line in order.lines:
            await entitlements.grant(session, account_id=account.account_id, user_id=user.user_id,
                                     module=line.module, source="order",
                                     source_ref=f"{order.order_id}:temporary", starts_at=now,
                                     ends_at=temporary_until, clock=clock)
    await publish(session, ApprovalRequested(
        approval_id=approval.approval_id, order_id=order.order_id, account=account.external_id,
        requester=user.external_id, reason=order.reason, why=reasons, total_minor=order.total_minor,
        currency=order.currency, modules=list(modules_of(order.lines)), approver_roles=approval.approver_roles,
        expires_at=approval.expires_at.isoformat(),
        temporary_access_until=temporary_until.isoformat() if temporary_until else None),
        clock=clock, account_id=account.account_id)
    return approval


async def _pay_and_fulfil(session: AsyncSession, order: Order, account: Account, user: User, *,
                          clock: Clock, after_approval: bool = True) -> None:
    order.paid_at = clock.now()
    # fulfil's own move (to fulfilled) writes the row; nothing in between reads the order's state from the
    # database (order.paid has no in-transaction subscribers)
    await _move(session, order, "paid", account=account, user=user, clock=clock, flush=False)
    await fulfil(session, order, account, user, clock=clock, after_approval=after_approval)


async def fulfil(session: AsyncSession, order: Order, account: Account, user: User, *, clock: Clock,
                 after_approval: bool = True) -> None:
    """Auto-entitle (grants with the order as source), auto-provision (event), auto-credit (sales credit).

    ``after_approval=False``: the order never waited for an approver in any transaction, so it has no temporary
    access to end (no lookup for one).
    """
    now = clock.now()
    live = await catalog.load_live(session)
    modules = {m.key: m for m in live.doc.modules}
    categories = [line.category or (modules[line.module].category if line.module in modules else "uncategorised")
                  for line in order.lines]
    owned_categories = await _owned_categories(session, account.account_id, exclude_order=order.order_id,
                                               among=set(categories))
    features: dict[str, dict[str, GrantValue]] = {}
    renewal = order.subscription_id is not None
    for index, line in enumerate(order.lines):
        # a renewal is access from the period boundary on (a late run or a paid retry leaves no gap)
        starts_at = min(now, line.period_start) if renewal and line.period_start else now
        await entitlements.grant(
            session, account_id=account.account_id, user_id=None if line.seat_pool else user.user_id,
            module=line.module, source="order", source_ref=order.order_id, starts_at=starts_at,
            ends_at=line.period_end, seats=line.quantity if line.seat_pool else None, clock=clock)
        await entitlements.mark_trial_converted(session, account_id=account.account_id, user_id=user.user_id,
                                                module=line.module, clock=clock)
        module = modules.get(line.module)
        features[line.module] = dict(module.features) if module else {}
        category = categories[index]
        motion = classify(category=category, is_renewal=renewal, owned_categories=owned_categories)
        owned_categories.add(category)
        session.add(SalesCredit(account_id=account.account_id, credit_id=new_id("crd"), order_id=order.order_id,
                                module=line.module, category=category, motion=motion,
                                amount_minor=line.total_minor, currency=order.currency,
                                team=account.sales_team, rep=account.sales_rep,
                                period=period_key(period_of(now)[0]), booked_at=now))
    if after_approval:
        await entitlements.revoke_by_source(session, account_id=account.account_id, source="order",
                                            source_ref=f"{order.order_id}:temporary", reason="purchase completed",
                                            clock=clock)
    await subscriptions.after_fulfil(session, order, clock=clock)
    order.fulfilled_at = now
    order.provision_status = "requested"
    await publish(session, ProvisionRequested(
        order_id=order.order_id, account_id=account.account_id, account=account.external_id,
        user=user.external_id, requested_at=now,
        items=[ProvisionItem(module=line.module, quantity=line.quantity,
                             features=_provisioned(features[line.module], live)) for line in order.lines]),
        clock=clock, account_id=account.account_id)
    await _move(session, order, "fulfilled", account=account, user=user, clock=clock)


def _provisioned(grants: dict[str, GrantValue], live: catalog.Live) -> list[ProvisionedFeature]:
    """What each granted feature switches on, in the terms the vendor's code checks."""
    kinds = {f.key: f for f in live.doc.features}
    out = []
    for key, value in sorted(grants.items()):
        feature = kinds.get(key)
        if isinstance(feature, LimitFeature) or (feature is None and type(value) is int):
            kind = "limit"
        elif isinstance(feature, ConfigFeature) or (feature is None and not isinstance(value, bool)):
            kind = "config"
        else:
            kind = "boolean"
        if kind == "limit":
            out.append(ProvisionedFeature(key=key, kind="limit", limit=int(value)))
        elif kind == "config":
            out.append(ProvisionedFeature(key=key, kind="config", value=str(value)))
        else:
            out.append(ProvisionedFeature(key=key, kind="boolean"))
    return out


async def _owned_categories(session: AsyncSession, account_id: str, *, exclude_order: str,
                            among: set[str]) -> set[str]:
    """Which of the ``among`` categories the account was already credited for (bounded by the order's lines,
    not by the account's history: one index probe per category)."""
    if not among:
        return set()
    wanted = func.unnest(array(sorted(among), type_=String)).table_valued("category").render_derived(name="wanted")
    rows = await session.scalars(select(wanted.c.category).where(select(SalesCredit.category).where(
        SalesCredit.account_id == account_id, SalesCredit.category == wanted.c.category,
        SalesCredit.order_id != exclude_order).exists()))
    return set(rows.all())


async def load_approval(session: AsyncSession, principal: Principal, approval_id: str) -> Approval:
    query = select(Approval).where(Approval.approval_id == approval_id).with_for_update()
    approval = await session.scalar(query)
    if approval is None or not principal.may_access_account(approval.account_id):
        raise NotFound(f"Approval {approval_id!r} does not exist.")
    return approval


async def visible_approval(session: AsyncSession, principal: Principal, approval_id: str) -> Approval:
    """The approval as this principal may read it: its requester, the account's admins and approvers, vendor keys.

    Anyone else in the account gets the same 404 as for an unknown id: a request's reason, modules and total
    are the requester's and its approvers' business only.
    """
    approval = await load_approval(session, principal, approval_id)
    if isinstance(principal, UserPrincipal) and not await _may_see(session, principal, approval):
        raise NotFound(f"Approval {approval_id!r} does not exist.")
    return approval


async def _may_see(session: AsyncSession, principal: UserPrincipal, approval: Approval) -> bool:
    if principal.is_admin or principal.user_id == approval.requester_user_id:
        return True
    if principal.roles & set(approval.approver_roles):  # the roles asked to decide when it was requested
        return True
    _, policy = await current_policy(session, await session.get_one(Account, approval.account_id))
    return bool(principal.roles & set(policy.approver_roles))  # the approver roles now (as the queue shows)


async def approval_view(session: AsyncSession, principal: Principal, approval_id: str) -> ApprovalRead:
    """GET /v1/approvals/{id}: read only by its requester, the account's admins and approvers, and vendor keys."""
    return await approval_read(session, await visible_approval(session, principal, approval_id))


def _check_approver(principal: Principal, approval: Approval) -> str:
    if isinstance(principal, UserPrincipal):
        if principal.user_id == approval.requester_user_id:
            raise Forbidden("You cannot decide on your own request.")
        if not (principal.roles & set(approval.approver_roles)):
            raise Forbidden(f"Only {', '.join(approval.approver_roles)} may decide on this request.")
    return principal.actor


async def decide_approval(session: AsyncSession, principal: Principal, approval_id: str, *, approve: bool,
                          note: str | None, clock: Clock) -> tuple[Approval, Order]:
    """Approve (capture, continue to payment or fulfilment) or deny (release). Decided once."""
    approval = await visible_approval(session, principal, approval_id)
    actor = _check_approver(principal, approval)
    order, account, user = await load_order(session, principal, approval.order_id, lock=True, whole_account=True)
    await expire_if_due(session, approval, order, account, user, clock=clock)
    if approval.state != "pending":
        raise ApprovalConflict(f"This request was already {approval.state}.", state=approval.state)
    approval.state = machine.approval_transition(approval.state, "approved" if approve else "denied")
    approval.decided_by, approval.decision_note, approval.decided_at = actor, note, clock.now()
    hold = await _hold(session, order)
    if approve:
        await _move(session, order, "approved", account=account, user=user, clock=clock, decided_by=actor)
        if order.route == "budget":
            if hold is not None:
                await capture(session, hold, currency=order.currency, clock=clock)
            await _pay_and_fulfil(session, order, account, user, clock=clock)
        elif order.total_minor == 0:
            await _pay_and_fulfil(session, order, account, user, clock=clock)
        else:
            await _move(session, order, "payment_pending", account=account, user=user, clock=clock)
    else:
        if hold is not None:
            await release(session, hold, currency=order.currency, clock=clock)
        await _end_temporary_access(session, order, clock=clock, why="request denied")
        await _move(session, order, "denied", account=account, user=user, clock=clock, decided_by=actor, note=note)
    decision: Literal["approved", "denied"] = "approved" if approve else "denied"
    await publish(session, ApprovalDecided(approval_id=approval.approval_id, order_id=order.order_id,
                                           decision=decision, decided_by=actor, note=note),
                  clock=clock, account_id=order.account_id)
    await audit.record(session, clock=clock, actor=actor, action=f"approval.{approval.state}", target_type="approval",
                       target_id=approval.approval_id, account_id=order.account_id,
                       after={"order_id": order.order_id, "note": note})
    return approval, order


async def _end_temporary_access(session: AsyncSession, order: Order, *, clock: Clock, why: str) -> None:
    await entitlements.revoke_by_source(session, account_id=order.account_id, source="order",
                                        source_ref=f"{order.order_id}:temporary", reason=why, clock=clock)


async def expire_if_due(session: AsyncSession, approval: Approval, order: Order, account: Account, user: User, *,
                        clock: Clock) -> bool:
    """Expire a pending approval whose time ran out: release its hold, end temporary access."""
    if approval.state != "pending" or approval.expires_at > clock.now():
        return False
    approval.state, approval.decided_at = machine.approval_transition(approval.state, "expired"), clock.now()
    hold = await _hold(session, order)
    if hold is not None:
        await release(session, hold, currency=order.currency, clock=clock)
    await _end_temporary_access(session, order, clock=clock, why="request expired")
    await _move(session, order, "expired", account=account, user=user, clock=clock)
    await publish(session, ApprovalDecided(approval_id=approval.approval_id, order_id=order.order_id,
                                           decision="expired", decided_by=None, note=None),
                  clock=clock, account_id=order.account_id)
    return True


async def expire_due_approvals(session: AsyncSession, *, clock: Clock, limit: int = 500,
                               account_id: str | None = None, approval_id: str | None = None) -> int:
    """Expire pending approvals whose time ran out (the sweep, and the lazy pass before reads and decisions)."""
    query = (select(Approval, Order, Account, User)
             .join(Order, and_(Order.account_id == Approval.account_id, Order.order_id == Approval.order_id))
             .join(Account, Account.account_id == Order.account_id)
             .join(User, and_(User.account_id == Order.account_id, User.user_id == Order.user_id))
             .where(Approval.state == "pending", Approval.expires_at <= clock.now())
             .order_by(Approval.expires_at).limit(limit).with_for_update(skip_locked=True, of=Approval))
    if account_id is not None:
        query = query.where(Approval.account_id == account_id)
    if approval_id is not None:
        query = query.where(Approval.approval_id == approval_id)
    count = 0
    for approval, order, account, user in (await session.execute(query)).all():
        count += await expire_if_due(session, approval, order, account, user, clock=clock)
    return count


async def expire_apart(sessionmaker: async_sessionmaker[AsyncSession], *, clock: Clock,
                       approval_id: str | None = None, account_id: str | None = None) -> int:
    """Expire due approvals in a transaction of their own, so a decision that then fails keeps the expiry."""
    async with sessionmaker() as session, session.begin():
        return await expire_due_approvals(session, clock=clock, approval_id=approval_id, account_id=account_id)


async def cancel_order(session: AsyncSession, principal: Principal, order_id: str, *, clock: Clock) -> Order:
    """Cancel before payment: releases any hold, ends temporary access. Paid orders are refunded instead."""
    order, account, user = await load_order(session, principal, order_id, lock=True)
    if order.state in ("paid", "fulfilled"):
        raise IllegalOrderTransition("This order is paid; refund it instead.", state=order.state)
    # A card attempt without an answer does not stop the cancel: reconcile later learns its outcome from Stripe
    # (never charging again for a closed order) and refunds it if it was in fact charged.
    hold = await _hold(session, order)
    if hold is not None and hold.state == "pending":
        await release(session, hold, currency=order.currency, clock=clock)
    approval = await session.scalar(select(Approval).where(Approval.account_id == order.account_id,
                                                           Approval.order_id == order.order_id).with_for_update())
    if approval is not None and approval.state == "pending":
        approval.state = machine.approval_transition(approval.state, "canceled")
        approval.decided_at, approval.decided_by = clock.now(), principal.actor
    await _end_temporary_access(session, order, clock=clock, why="order canceled")
    await audit.record(session, clock=clock, actor=principal.actor, action="order.canceled", target_type="order",
                       target_id=order.order_id, account_id=order.account_id, after={"from": order.state})
    return await _move(session, order, "canceled", account=account, user=user, clock=clock)


async def refund_budget_order(session: AsyncSession, principal: Principal, order_id: str, *, clock: Clock,
                              note: str | None) -> Order:
    """Refund a paid budget-route order in full: money back to its budget period, grants revoked now."""
    order, account, user = await load_order(session, principal, order_id, lock=True)
    if order.route != "budget":
        raise IllegalOrderTransition("Card orders are refunded through the card payment.", state=order.state)
    if order.state not in ("paid", "fulfilled"):
        raise IllegalOrderTransition(f"A {order.state} order has nothing to refund.", state=order.state)
    hold = await _hold(session, order)
    remaining = order.total_minor - order.refunded_minor
    if hold is not None and remaining > 0:
        await refund(session, hold, amount_minor=remaining, currency=order.currency, clock=clock)
    order.refunded_minor = order.total_minor
    await reverse_credit(session, order, amount_minor=remaining, reference="refund:budget", clock=clock)
    await entitlements.revoke_by_source(session, account_id=order.account_id, source="order",
                                        source_ref=order.order_id, reason="order refunded", clock=clock)
    await audit.record(session, clock=clock, actor=principal.actor, action="order.refunded", target_type="order",
                       target_id=order.order_id, account_id=order.account_id,
                       after={"refunded_minor": remaining, "note": note})
    return await _move(session, order, "refunded", account=account, user=user, clock=clock,
                       refunded_minor=remaining)


async def acknowledge_provisioning(session: AsyncSession, principal: Principal, order_id: str, *, ok: bool,
                                   note: str | None, clock: Clock) -> Order:
    """The vendor's app says it switched the modules on (or could not, which keeps the order visible)."""
    order, account, user = await load_order(session, principal, order_id, lock=True)
    if order.state != "fulfilled":
        raise IllegalOrderTransition("Only fulfilled orders are provisioned.", state=order.state)
    target: machine.ProvisionStatus = "done" if ok else "failed"
    try:
        moves = machine.provision_step(order.provision_status, target)
    except machine.IllegalTransition as exc:
        raise IllegalOrderTransition(f"Provisioning is already {exc.current}; it cannot become {exc.target}.",
                                     state=order.state, provision_status=exc.current) from exc
    if not moves:
        return order  # a repeated acknowledgement: no second event
    order.provision_status, order.provision_note, order.updated_at = target, note, clock.now()
    await audit.record(session, clock=clock, actor=principal.actor, action=f"order.provision_{target}",
                       target_type="order", target_id=order.order_id, account_id=order.account_id,
                       after={"provision_status": target, "note": note})
    provisioned, beside = typed_event(ProvisionAcknowledged if ok else ProvisionFailed,
                                      {**order_payload(order, account, user), "note": note})
    await publish(session, provisioned, clock=clock, account_id=order.account_id, extra=beside)
    return order


async def order_quote(session: AsyncSession, principal: Principal, quote_id: str, *, reason: str | None,
                      clock: Clock) -> Order:
    """POST /v1/orders: the quote's own user (or an admin or the vendor for them) orders it."""
    order, _, _ = await _order_quote(session, principal, quote_id, reason=reason, clock=clock)
    return order


async def order_quote_read(session: AsyncSession, principal: Principal, quote_id: str, *, reason: str | None,
                           clock: Clock) -> OrderRead:
    """``order_quote`` and the order as the API shows it. A budget order that never waited for an approver has
    neither an approval nor a card payment, so its read is built from what this request holds (no query)."""
    order, account, user = await _order_quote(session, principal, quote_id, reason=reason, clock=clock)
    if order.route != "budget" or order.state == "pending_approval":
        return await order_read(session, order)
    return order_read_of(order, account_ref=account.external_id, user_ref=user.external_id)


async def _order_quote(session: AsyncSession, principal: Principal, quote_id: str, *, reason: str | None,
                       clock: Clock) -> tuple[Order, Account, User]:
    quote, account, user = await load_quote(session, principal, quote_id)
    if isinstance(principal, UserPrincipal) and principal.user_id != user.user_id:
        raise Forbidden("Only the user a quote was made for can order it.")
    order = await place_order(session, quote, account, user, reason=reason, clock=clock)
    await audit.record(session, clock=clock, actor=principal.actor, action="order.placed", target_type="order",
                       target_id=order.order_id, account_id=order.account_id,
                       after={"quote": quote.quote_id, "route": order.route, "state": order.state,
                              "total_minor": order.total_minor, "currency": order.currency, "user": user.external_id})
    return order, account, user


async def read_order(session: AsyncSession, principal: Principal, order_id: str) -> OrderRead:
    """GET /v1/orders/{id}: the stored state. Reads never write: a pending approval past its time is expired by
    the scheduled job (``commerce billing expire-approvals``) or when someone tries to decide it."""
    order = await find_order(session, principal, order_id)
    return await order_read(session, order)


async def approval_queue(session: AsyncSession, principal: Principal, account: Account, *,
                         state: machine.ApprovalState | None, limit: int, clock: Clock) -> list[ApprovalRead]:
    """The account's approval requests, for its admins and the policy's approver roles (a read: nothing expires)."""
    if isinstance(principal, UserPrincipal) and not principal.is_admin:
        _, policy = await current_policy(session, account)
        if not principal.roles & set(policy.approver_roles):
            raise Forbidden("Only admins and approvers see the approval queue.")
    return list(await approval_reads(session, account_id=account.account_id, state=state, limit=limit,
                                     now=clock.now()))


async def decide(sessionmaker: async_sessionmaker[AsyncSession], session: AsyncSession, principal: Principal,
                 approval_id: str, *, approve: bool, note: str | None, clock: Clock) -> Approval:
    """Approve or deny; an approval already due is expired in its own transaction first, so a refused
    decision (409) still leaves the expiry (and its released hold) behind."""
    await expire_apart(sessionmaker, clock=clock, approval_id=approval_id)
    approval, _ = await decide_approval(session, principal, approval_id, approve=approve, note=note, clock=clock)
    return approval
