"""Outcomes other packages report (purchases from order fulfilment, denials from approvals), their
attribution to the suggestion that preceded them, and the statistics over impressions and outcomes."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.ids import new_id
from app.onestatement import Statement
from suggest import stats as st
from suggest.models import SuggestionFeedback, SuggestionImpression, SuggestionOutcome
from suggest.schemas import FunnelRead, LiftRead, ModuleStatsRead, StatsRead


async def record_purchase(session: AsyncSession, *, account_id: str, user_id: str, module: str, order_id: str,
                          amount_minor: int, currency: str, at: datetime, attribution_days: int = 7,
                          ) -> str | None:
    """Record a fulfilled purchase (idempotent per order and module) and attribute it to the latest suggestion
    of that module shown to the user within ``attribution_days`` before ``at``. Returns the suggestion id
    it was attributed to, or None. Called by order fulfilment, in its transaction."""
    assert amount_minor >= 0 and 1 <= attribution_days <= 365
    shown = (await session.execute(
        select(SuggestionImpression.suggestion_id, SuggestionImpression.holdout).where(
            SuggestionImpression.account_id == account_id, SuggestionImpression.user_id == user_id,
            SuggestionImpression.module == module, SuggestionImpression.shown_at <= at,
            SuggestionImpression.shown_at > at - timedelta(days=attribution_days),
            SuggestionImpression.kind.in_(("purchase", "trial", "plan_change")))
        .order_by(SuggestionImpression.shown_at.desc()).limit(1))).first()
    await session.execute(insert(SuggestionOutcome).values(
        account_id=account_id, outcome_id=new_id("sgo"), user_id=user_id, module=module, kind="purchase",
        source_ref=order_id, amount_minor=amount_minor, currency=currency, at=at,
        suggestion_id=shown.suggestion_id if shown else None, holdout=shown.holdout if shown else None,
    ).on_conflict_do_nothing())
    return shown.suggestion_id if shown else None


def record_purchase_in(statement: Statement, *, account_id: str, user_id: str, module: str, order_id: str,
                       amount_minor: int, currency: str, at: datetime, attribution_days: int = 7) -> None:
    """``record_purchase`` as part of a fast path's one statement: the same outcome row and attribution (the peer
    counts follow the grant's event, ``peers.granted_in``)."""
    assert amount_minor >= 0 and 1 <= attribution_days <= 365
    p = statement.param
    a, u, m = p(account_id, "VARCHAR"), p(user_id, "VARCHAR"), p(module, "VARCHAR")
    shown = statement.cte("sug_shown", (
        "SELECT suggestion_id, holdout FROM sug_impressions "
        f"WHERE account_id = {a} AND user_id = {u} AND module = {m} AND shown_at <= {p(at, 'TIMESTAMPTZ')} "
        f"AND shown_at > {p(at - timedelta(days=attribution_days), 'TIMESTAMPTZ')} "
        "AND kind IN ('purchase', 'trial', 'plan_change') ORDER BY shown_at DESC LIMIT 1"), materialized=True)
    statement.cte("sug_outcome", (
        "INSERT INTO sug_outcomes (account_id, outcome_id, user_id, module, kind, source_ref, amount_minor, "
        f"currency, at, suggestion_id, holdout) SELECT {a}, {p(new_id('sgo'), 'VARCHAR')}, {u}, {m}, 'purchase', "
        f"{p(order_id, 'VARCHAR')}, {p(amount_minor, 'BIGINT')}, {p(currency, 'VARCHAR')}, {p(at, 'TIMESTAMPTZ')}, "
        f"(SELECT suggestion_id FROM {shown}), (SELECT holdout FROM {shown}) ON CONFLICT DO NOTHING RETURNING 1"))


async def record_denial(session: AsyncSession, *, account_id: str, user_id: str, module: str, approval_id: str,
                        at: datetime) -> None:
    """An admin denied this user's request for ``module``: it is not suggested to the user for a while
    (``COMMERCE_SUGGEST_RECENT_DAYS``). Idempotent per approval. Called by the approval flow."""
    await session.execute(insert(SuggestionOutcome).values(
        account_id=account_id, outcome_id=new_id("sgo"), user_id=user_id, module=module, kind="admin_denied",
        source_ref=approval_id, amount_minor=0, currency=None, at=at).on_conflict_do_nothing())


def _lift(t: tuple[int, int], h: tuple[int, int]) -> LiftRead:
    x = st.lift(t[0], t[1], h[0], h[1])
    return LiftRead(treatment_users=x.treatment_users, treatment_converted=x.treatment_converted,
                    holdout_users=x.holdout_users, holdout_converted=x.holdout_converted,
                    treatment_rate=x.treatment_rate, holdout_rate=x.holdout_rate, difference=x.difference,
                    ci95_low=x.ci_low, ci95_high=x.ci_high, relative=x.relative, significant=x.significant)


def _funnel(imp: int, clicks: int, dismissals: int, purchases: int, revenue: dict[str, int]) -> FunnelRead:
    f = st.funnel(imp, clicks, dismissals, purchases)
    return FunnelRead(impressions=f.impressions, clicks=f.clicks, dismissals=f.dismissals, purchases=f.purchases,
                      ctr=f.ctr, conversion=f.conversion, revenue_minor=dict(sorted(revenue.items())))


async def suggestion_stats(session: AsyncSession, *, since: datetime, until: datetime, holdout_pct: int,
                           attribution_days: int, module_limit: int = 200) -> StatsRead:
    """Funnel per module and overall (shown suggestions only) and lift against the holdout, per user."""
    imp = SuggestionImpression
    where = [imp.shown_at >= since, imp.shown_at <= until]
    shown: dict[str, int] = defaultdict(int)
    users: dict[tuple[str, bool], int] = {}
    for module, holdout, n, n_users in await session.execute(
            select(imp.module, imp.holdout, func.count(), func.count(func.distinct(imp.user_id)))
            .where(*where).group_by(imp.module, imp.holdout)):
        if not holdout:
            shown[module] += n
        users[(module, holdout)] = n_users
    feedback: dict[tuple[str, str], int] = defaultdict(int)
    for module, action, n in await session.execute(
            select(imp.module, SuggestionFeedback.action, func.count()).join(SuggestionFeedback, and_(
                SuggestionFeedback.account_id == imp.account_id, SuggestionFeedback.suggestion_id == imp.suggestion_id))
            .where(*where, imp.holdout.is_(False)).group_by(imp.module, SuggestionFeedback.action)):
        feedback[(module, action)] = n
    out = SuggestionOutcome
    bought: dict[tuple[str, bool], int] = {}
    converted: dict[tuple[str, bool], int] = {}
    revenue: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for module, holdout, currency, n, n_users, amount in await session.execute(
            select(out.module, imp.holdout, out.currency, func.count(), func.count(func.distinct(out.user_id)),
                   func.sum(out.amount_minor))
            .join(imp, and_(imp.account_id == out.account_id, imp.suggestion_id == out.suggestion_id))
            .where(*where, out.kind == "purchase").group_by(out.module, imp.holdout, out.currency)):
        bought[(module, holdout)] = bought.get((module, holdout), 0) + n
        converted[(module, holdout)] = converted.get((module, holdout), 0) + n_users
        if not holdout and currency:
            revenue[module][currency] += int(amount or 0)
    overall_users = {h: int(n or 0) for h, n in await session.execute(
        select(imp.holdout, func.count(func.distinct(imp.user_id))).where(*where).group_by(imp.holdout))}
    overall_conv = {h: int(n or 0) for h, n in await session.execute(
        select(imp.holdout, func.count(func.distinct(out.user_id)))
        .join(imp, and_(imp.account_id == out.account_id, imp.suggestion_id == out.suggestion_id))
        .where(*where, out.kind == "purchase").group_by(imp.holdout))}
    total_revenue: dict[str, int] = defaultdict(int)
    for per in revenue.values():
        for c, a in per.items():
            total_revenue[c] += a
    modules = []
    for module in sorted(shown.keys() | {m for m, _ in users})[:module_limit]:
        modules.append(ModuleStatsRead(module=module, funnel=_funnel(
            shown.get(module, 0), feedback[(module, "click")], feedback[(module, "dismiss")],
            bought.get((module, False), 0), dict(revenue.get(module, {}))),
            lift=_lift((converted.get((module, False), 0), users.get((module, False), 0)),
                       (converted.get((module, True), 0), users.get((module, True), 0)))))
    overall = _funnel(sum(shown.values()), sum(n for (_, a), n in feedback.items() if a == "click"),
                      sum(n for (_, a), n in feedback.items() if a == "dismiss"),
                      sum(n for (_, h), n in bought.items() if not h), dict(total_revenue))
    return StatsRead(since=since, until=until, holdout_pct=holdout_pct, attribution_days=attribution_days,
                     overall=overall, modules=modules,
                     lift=_lift((overall_conv.get(False, 0), overall_users.get(False, 0)),
                                (overall_conv.get(True, 0), overall_users.get(True, 0))))
