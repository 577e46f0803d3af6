"""Suggestion use cases: answer a request (gather facts -> rank -> price -> record), feedback, the advisor.
Never commits: the request's transaction does."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import entitlements
from app.accounts import resolve_user
from app.accounts.models import Account, User
from app.accounts.service import resolve_accounts, resolve_user_and_account
from app.auth import Principal, VendorPrincipal
from app.clock import Clock
from app.errors import NotFound
from app.ids import new_id
from app.money import format_minor
from app.settings import Settings
from billing import service as billing
from billing.domain import guardrails as g
from billing.domain.pricing import LineInput, price_line
from entitlements.domain import CatalogView, Snapshot
from entitlements.runtime import Runtime
from entitlements.service import load_snapshot
from suggest import advisor as adv
from suggest import engine, facts, learning, peers
from suggest.models import SuggestionFeedback, SuggestionImpression
from suggest.schemas import (
    FeedbackIn,
    FeedbackRead,
    PaymentRoute,
    PlanChangeRead,
    QuoteLinePreview,
    QuotePreview,
    RecountRead,
    SuggestionList,
    SuggestionRead,
    SuggestionRequest,
)
from suggest.scoring import Weights
from suggest.signals import FeatureInfo, ModuleInfo, Trigger


def in_holdout(user_id: str, *, salt: str, pct: int) -> bool:
    """Stable per user: the same user is in or out for as long as the salt and share stay the same."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 < pct * 100


@dataclass(frozen=True)
class Context:
    settings: Settings
    clock: Clock
    runtime: Runtime
    refresher: peers.Refresher | None = None
    sessionmaker: async_sessionmaker[AsyncSession] | None = None


async def _snapshot(session: AsyncSession, ctx: Context, principal: Principal, user_ref: str,
                    found: tuple[User, Account] | None = None) -> tuple[User, Account, Snapshot, CatalogView]:
    """The user (tenancy enforced), the account, and the entitlement snapshot: from the process cache when
    warm, else read in this request's transaction (not a second one). ``found``: the user and account already
    read (``billing.buyer_facts``)."""
    user, account = found or await resolve_user_and_account(session, principal, user_ref)
    now = ctx.clock.now()
    view = await ctx.runtime.view(session)
    snap = ctx.runtime.snapshots.get(user_ref)
    if (snap is None or now >= snap.valid_until or now < snap.computed_at or snap.catalog_revision != view.revision
            or snap.user_id != user.user_id):
        snap = await load_snapshot(session, user_ref, now=now, view=view)
    if snap is None:
        raise NotFound(f"User {user_ref!r} does not exist.")
    return user, account, snap, view


def _plan_modules(view: CatalogView, cands: list[engine.Candidate], owned: frozenset[str],
                  prices: dict[str, facts.PriceChoice | None]) -> list[adv.PlanModule]:
    out = []
    shown = {c.module.key: c for c in cands}
    for key, m in view.modules.items():
        if key not in shown and key not in owned:
            continue
        price = prices.get(key)
        c = shown.get(key)
        monthly = price.monthly_minor if price is not None and price.model == "recurring" else None
        out.append(adv.PlanModule(key=key, name=m.name, monthly_minor=monthly,
                                  features=dict(m.features), requires=tuple(m.requires),
                                  buyable=c is not None and c.effect in engine.BUYABLE,
                                  metered=price is not None and price.model == "metered"))
    return out


def _preview(modules: tuple[str, ...], prices: dict[str, facts.PriceChoice | None], account: Account,
             now: datetime) -> QuotePreview | None:
    lines = []
    for key in modules:
        p = prices.get(key)
        if p is None:
            return None
        line = price_line(LineInput(module=key, price_id=p.price_id, model=p.model,
                                    unit_amount_minor=p.amount_minor, quantity=1,
                                    interval=p.interval if p.model == "recurring" else None),
                          now=now, anchor_day=1, discount_bps=account.discount_bps)
        lines.append(QuoteLinePreview(module=key, price_id=p.price_id, model=p.model, interval=p.interval,
                                      quantity=1, unit_amount_minor=p.amount_minor, due_now_minor=line.total_minor))
    total = sum(ln.due_now_minor for ln in lines)
    return QuotePreview(currency=account.currency, lines=lines, total_minor=total,
                        total=format_minor(total, account.currency))


Catalog = tuple[dict[str, FeatureInfo], dict[str, ModuleInfo], dict[str, facts.PriceChoice | None]]


def _catalog(ctx: Context, view: CatalogView, currency: str) -> Catalog:
    """The catalog as the engine sees it, per (revision, currency), computed once per process."""
    key = (view.revision, currency)
    hit: Catalog | None = ctx.refresher.catalog.get(key) if ctx.refresher is not None else None
    if hit is None:
        features, modules = facts.catalog_infos(view)
        hit = (features, modules, {k: facts.pick_price(view, k, currency) for k in modules})
        if ctx.refresher is not None:
            if len(ctx.refresher.catalog) >= 64:
                ctx.refresher.catalog.clear()
            ctx.refresher.catalog[key] = hit
    return hit


def _route(decision: g.Decision) -> PaymentRoute:
    if decision.outcome == "blocked" or decision.route is None:
        return "not_buyable"
    if decision.outcome == "approval_required":
        return "needs_approval"
    return "budget_auto_approved" if decision.route == "budget" else "card"


async def suggest(session: AsyncSession, principal: Principal, data: SuggestionRequest, *, ctx: Context,
                  ) -> SuggestionList:
    """Rank, price and record suggestions for one user in one workflow moment (holdout users get none)."""
    s, now = ctx.settings, ctx.clock.now()
    buyer = await billing.buyer_facts(session, principal, data.user, now=now)  # user, account, policy, budget
    user, account, snap, view = await _snapshot(session, ctx, principal, data.user,
                                                (buyer.user, buyer.account) if buyer else None)
    features, modules, prices = _catalog(ctx, view, account.currency)
    policy = buyer.policy if buyer else (await billing.current_policy(session, account))[1]
    requester = g.Requester(roles=frozenset(user.roles), cost_center=user.cost_center)
    restricted = frozenset(k for k in modules if g.module_restrictions(
        g.effective_policy(policy, requester), user.roles, [k]))
    cands = facts.candidates(view, snap, account, modules, prices, restricted)
    cands = [engine.Candidate(module=c.module, effect=c.effect, amount_minor=c.amount_minor,
                              price_text=format_minor(c.amount_minor, account.currency) + " a month"
                              if c.amount_minor else None) for c in cands]
    activity = await entitlements.user_activity(
        session, account.account_id, user.user_id, now=now, sources=("order",),
        demand_since=now.date() - timedelta(days=facts.OLDER_DAYS - 1),
        usage_since=now - timedelta(days=31 * facts.HISTORY_MONTHS),
        recent_since=now - timedelta(days=s.suggest_recent_days))
    read_stored = partial(facts.stored, session, account.account_id, user.user_id, roles=tuple(sorted(snap.roles)),
                          surface=data.surface, now=now, cap=s.suggest_cap_per_surface,
                          cap_hours=s.suggest_cap_window_hours, cooldown_days=s.suggest_dismiss_cooldown_days)
    rows = await read_stored()
    if rows.everyone is None and await _ensure_stats(session, ctx, account.account_id, now):
        rows = await read_stored()
    user_facts, series = await facts.user_facts(session, snap, account, now=now, signal_days=s.suggest_signal_days,
                                                unused_days=s.suggest_unused_days, features=features,
                                                modules=modules, activity=activity, rows=rows,
                                                refresher=ctx.refresher)
    hist = facts.history(rows, user.user_id, now=now, cap=s.suggest_cap_per_surface,
                         recent_days=s.suggest_recent_days)
    user_facts = engine.UserFacts(**{**user_facts.__dict__, "user_typical_minor": hist.user_typical_minor,
                                     "account_typical_minor": hist.account_typical_minor})
    # "Just got it" is any grant of the recent days (orders, imports, admins, trials), not only our orders.
    respect = replace(hist.respect, bought=hist.respect.bought | activity.recent)
    bought = activity.bought
    own = frozenset(k for k in bought if (p := prices.get(k)) is not None and p.model == "recurring")
    advice = adv.advise(_plan_modules(view, cands, own, prices), own,
                        adv.needs_from_usage(series, {k: f.kind for k, f in features.items()}),
                        {k: f.kind for k, f in features.items()}, held_free=snap.modules - own)
    money = {n: format_minor(n, account.currency) for n in (advice.current_minor, advice.best_minor)}
    trigger = Trigger(kind=data.trigger.kind, feature=data.trigger.feature) if data.trigger else None
    opts = engine.Options(limit=data.limit, weights=await _weights(session, ctx, now),
                          demand_days=s.suggest_signal_days, unused_days=s.suggest_unused_days,
                          min_score=s.suggest_min_score)
    items = engine.rank(cands, user_facts, trigger, respect, features=features, opts=opts, advice=advice,
                        money=money, all_names={k: m.name for k, m in view.modules.items()})
    effects = {c.module.key: c.effect for c in cands}
    holdout = in_holdout(user.user_id, salt=s.suggest_holdout_salt, pct=s.suggest_holdout_pct)
    request_id = new_id("sgr")
    funds = buyer.funds if buyer else await _funds(session, account, user, now) if items else None
    reads = []
    for rank, item in enumerate(items, start=1):
        reads.append(_read(item, rank, modules, prices, account, now, effects, policy, requester, hist, funds))
    if reads:
        await session.execute(insert(SuggestionImpression), [{
            "account_id": account.account_id, "suggestion_id": r.id, "request_id": request_id,
            "user_id": user.user_id, "module": r.module, "kind": r.kind, "surface": data.surface,
            "trigger": data.trigger.kind if data.trigger else None, "rank": r.rank, "score": r.score,
            "holdout": holdout, "amount_minor": r.quote.total_minor if r.quote else None,
            "currency": account.currency, "shown_at": now} for r in reads])
    note = None
    if holdout:
        note = "This user is in the measurement holdout: no suggestions are shown (what would have been is recorded)."
    elif hist.respect.capped:
        note = (f"Suggestions on {data.surface!r} are paused for this user: shown {s.suggest_cap_per_surface} times "
                f"in the last {s.suggest_cap_window_hours} hours.")
    return SuggestionList(user=user.external_id, account=account.external_id, request_id=request_id,
                          surface=data.surface, holdout=holdout, capped=hist.respect.capped, note=note,
                          data=[] if holdout else reads)


async def _funds(session: AsyncSession, account: Account, user: User, now: datetime) -> g.BudgetState | None:
    """The user's budget with its balance this period: one statement, and nothing written on a read."""
    _, state, _ = await billing.budget_and_state(session, account.account_id, user.cost_center, now=now)
    return g.BudgetState(currency=state.budget.currency, remaining_minor=state.remaining_minor) if state else None


def _read(item: engine.Item, rank: int, modules: Mapping[str, ModuleInfo],
          prices: dict[str, facts.PriceChoice | None], account: Account, now: datetime,
          effects: Mapping[str, str], policy: g.GuardrailPolicy, requester: g.Requester, hist: facts.History,
          funds: g.BudgetState | None) -> SuggestionRead:
    info = modules[item.module]
    plan = None
    quote = None
    route: PaymentRoute = "not_buyable"
    reasons: tuple[str, ...] = ()
    if item.kind in ("purchase", "trial"):
        buy = (*item.bundle, item.module)
        quote = _preview(buy, prices, account, now)
        if quote is not None and all(effects.get(k) in engine.BUYABLE for k in buy):
            decision = g.decide(policy, requester, g.Purchase(
                modules=buy, total_minor=quote.total_minor, currency=account.currency,
                vendor_approval_required=tuple(k for k in buy if effects.get(k) == "approval_required")),
                spent_minor=hist.spent_this_month_minor, budget=funds)
            route, reasons = _route(decision), decision.reasons
        elif quote is None:
            reasons = ("This module has no price in your account's currency.",)
    elif item.kind == "adoption":
        reasons = ("You already have it: nothing to pay.",)
    elif item.advice is not None:
        a = item.advice
        plan = PlanChangeRead(current=list(a.current), current_monthly_minor=a.current_minor, best=list(a.best),
                              best_monthly_minor=a.best_minor, saving_monthly_minor=a.saving_minor,
                              add=list(a.add), remove=list(a.remove))
        reasons = ("A plan change is made by your admin or in the catalog offers.",)
    return SuggestionRead(
        id=new_id("sug"), module=item.module, name=info.name, kind=item.kind, rank=rank, score=item.score,
        reason=" ".join(item.reasons[:2]), reasons=list(item.reasons), score_breakdown=item.breakdown,
        bundle=list(item.bundle), trial_days=info.trial_days if item.kind == "trial" else None, quote=quote,
        payment_route=route, payment_reasons=list(reasons), plan_change=plan, leads_to=item.leads_to)


async def _weights(session: AsyncSession, ctx: Context, now: datetime) -> Weights:
    """The served weights (explicit setting, else the newest learned fit, else defaults), read at most once a
    minute per process."""
    hit: Weights | None = ctx.refresher.cached_weights(now) if ctx.refresher is not None else None
    if hit is not None:
        return hit
    weights = await learning.served_weights(session, ctx.settings.suggest_weights)
    if ctx.refresher is not None:
        ctx.refresher.keep_weights(now, weights)
    return weights


async def _ensure_stats(session: AsyncSession, ctx: Context, account_id: str, now: datetime) -> bool:
    """An account whose statistics were never counted (its "*" row is missing; every change keeps them up to date
    once they are): the refresher counts it in the background and this answer goes without peers; without a
    refresher (a bare call) it is counted here. Returns whether it was counted in this transaction."""
    if ctx.refresher is not None and ctx.sessionmaker is not None:
        ctx.refresher.schedule(ctx.sessionmaker, account_id)
        return False
    await peers.refresh_account(session, account_id, now=now, unused_days=ctx.settings.suggest_unused_days)
    return True


async def recount_accounts(session: AsyncSession, principal: Principal, refs: list[str], *, now: datetime,
                           unused_days: int, refresher: peers.Refresher | None) -> RecountRead:
    """Recount the named accounts (as the principal may see them) now."""
    accounts = await resolve_accounts(session, principal, refs)
    users = await recount(session, account_ids=[a.account_id for a in accounts], now=now, unused_days=unused_days,
                          refresher=refresher)
    return RecountRead(accounts=len(accounts), users=users)


async def recount(session: AsyncSession, *, account_ids: list[str], now: datetime, unused_days: int,
                  refresher: peers.Refresher | None = None) -> int:
    """Recount the given accounts' peer statistics now, in this transaction; returns users counted."""
    total = 0
    for account_id in account_ids:
        total += await peers.refresh_account(session, account_id, now=now, unused_days=unused_days)
    if refresher is not None:
        refresher.segments.clear()
    return total


async def feedback(session: AsyncSession, principal: Principal, suggestion_id: str, data: FeedbackIn, *,
                   clock: Clock) -> FeedbackRead:
    """Record a click or a dismissal once (a repeat answers recorded=false); the user must own the suggestion."""
    user = await resolve_user(session, principal, data.user)
    row = await session.get(SuggestionImpression, (user.account_id, suggestion_id))
    if row is None or row.user_id != user.user_id:
        raise NotFound(f"Suggestion {suggestion_id!r} does not exist.")
    now = clock.now()
    inserted = await session.scalar(pg_insert(SuggestionFeedback).values(
        account_id=user.account_id, suggestion_id=suggestion_id, action=data.action, user_id=user.user_id,
        module=row.module, at=now).on_conflict_do_nothing().returning(SuggestionFeedback.at))
    at = inserted or await session.scalar(select(SuggestionFeedback.at).where(
        SuggestionFeedback.account_id == user.account_id, SuggestionFeedback.suggestion_id == suggestion_id,
        SuggestionFeedback.action == data.action))
    return FeedbackRead(suggestion_id=suggestion_id, module=row.module, action=data.action,
                        recorded=inserted is not None, at=at or now)



async def warm(ctx: Context, *, connections: int = 2) -> None:
    """Before the first request: the catalog view and the engine's view of it (per currency the catalog prices
    in), the served weights, and every statement of a suggestion request compiled and prepared on a few pooled
    connections (run for nobody, in transactions rolled back), so the first request costs what the others do."""
    assert ctx.sessionmaker is not None
    maker = ctx.sessionmaker
    now = ctx.clock.now()
    async with maker() as session, session.begin():
        view = await ctx.runtime.view(session)
        for currency in sorted({lp.price.currency for lp in view.live.prices.values()}):
            _catalog(ctx, view, currency)
        await _weights(session, ctx, now)

    async def statements() -> None:
        async with maker() as session:
            await session.begin()
            await session.execute(select(User, Account).join(Account, Account.account_id == User.account_id)
                                  .where(User.external_id == ""))
            await billing.buyer_facts(session, VendorPrincipal(key_id="", scopes=frozenset()), "", now=now)
            await load_snapshot(session, "", now=now, view=view)
            await entitlements.user_activity(session, "", "", now=now, sources=("order",), demand_since=now.date(),
                                             usage_since=now, recent_since=now)
            await facts.stored(session, "", "", roles=(), surface="", now=now, cap=1, cap_hours=1, cooldown_days=1)
            nobody = Account(account_id="")  # transient: only its id is read
            await billing.current_policy(session, nobody)
            await billing.budget_and_state(session, "", None, now=now)
            await session.rollback()

    await asyncio.gather(*(statements() for _ in range(connections)))
