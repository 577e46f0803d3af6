"""Use cases over the vendor's own history: load it from the database as plain values, backtest the engine at a
past date, fit and store weights (versioned), and read the weights the engine serves. Never commits.

The history is read through entitlements' public reads (grants, demand per day, usage counters) and the
accounts of the kernel; purchases are grants that came from orders (live or imported). Bounded: at most
``MAX_ROWS`` rows of each kind are read, oldest first, and the caller is told when the bound was reached.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import entitlements
from app.accounts.models import Account, User
from app.errors import Unprocessable
from entitlements.service import catalog_view
from suggest import backtest as bt
from suggest import facts, learn
from suggest.history import HDemand, HGrant, History, HUsage, HUser
from suggest.models import LearnedWeights
from suggest.schemas import BacktestRead, BacktestScoreRead, WeightsRead
from suggest.scoring import DEFAULT, Weights, parse_weights
from suggest.signals import SIGNALS

MAX_ROWS = 2_000_000
MAX_BACK_DAYS = 3 * 366  # a backtest looks back at most three years
PURCHASE_SOURCES = frozenset({"order", "import"})


@dataclass(frozen=True)
class Loaded:
    history: History
    truncated: bool


async def load_history(session: AsyncSession, *, until: datetime, days: int = 200) -> Loaded:
    """Everything the engine could have known before ``until`` (``days`` back) plus what happened up to it."""
    view = await catalog_view(session)
    features, modules = facts.catalog_infos(view)
    accounts = {a: s for a, s in await session.execute(select(Account.account_id, Account.segment))}
    users = [HUser(u, a, tuple(sorted(r or ()))) for u, a, r in await session.execute(
        select(User.user_id, User.account_id, User.roles).order_by(User.account_id, User.user_id).limit(MAX_ROWS))]
    since = until - timedelta(days=days)
    grants = await entitlements.grant_history(session, until=until, limit=MAX_ROWS)
    demand = await entitlements.demand_history(session, since=since.date(), until=until.date(), limit=MAX_ROWS)
    usage = await entitlements.usage_history_rows(session, since=since, until=until, limit=MAX_ROWS)
    prices = {k: p.monthly_minor for k in modules
              if (p := facts.pick_price(view, k, "USD")) is not None and p.monthly_minor is not None}
    history = History(
        modules=modules, features=features, segments=accounts, users=users,
        grants=[HGrant(a, u, m, s, e, purchased=src in PURCHASE_SOURCES) for a, u, m, src, s, e in grants],
        demand=[HDemand(u, f, d, n) for _, u, f, d, n in demand],
        usage=[HUsage(u, f, s, e, n) for _, u, f, s, e, n in usage], prices=prices)
    truncated = MAX_ROWS in (len(users), len(grants), len(demand), len(usage))
    return Loaded(history, truncated)


def _report(report: bt.Report, *, truncated: bool, learned_note: str | None) -> BacktestRead:
    return BacktestRead(
        at=report.at, window_days=report.window_days, k=report.k, users=report.users, buyers=report.buyers,
        purchases=report.purchases, truncated=truncated, learned_note=learned_note,
        scores=[BacktestScoreRead(strategy=name, recall=s.recall, precision=s.precision, hit_rate=s.hit_rate,
                                  lift_over_popularity=report.lift_over_popularity.get(name))
                for name, s in report.scores.items()])


async def backtest(session: AsyncSession, *, at: datetime, now: datetime, window_days: int = 30, k: int = 3,
                   ) -> BacktestRead:
    """Suggest as of ``at`` from history before it; score on the purchases of the following window. The window
    must have ended (``at + window_days <= now``): a backtest never guesses the future."""
    if at < now - timedelta(days=MAX_BACK_DAYS):
        raise Unprocessable(f"Choose a date within the last {MAX_BACK_DAYS} days.", field="at")
    if at > now - timedelta(days=window_days):  # (no arithmetic on ``at``: a far date must not overflow)
        raise Unprocessable(f"The window after {at.date()} has not ended yet: choose a date at least "
                            f"{window_days} days ago.")
    loaded = await load_history(session, until=at + timedelta(days=window_days))
    h = loaded.history
    # The fit reads only history before ``at``; scikit-learn and the replay are CPU work: off the event loop.
    fitted = await asyncio.to_thread(learn.fit, h, at, window_days=window_days)
    strategies = {"popularity": bt.popularity(h, at, k=k), "engine (default weights)": bt.engine_rules(h, k=k),
                  "engine (learned weights)": bt.engine_rules(h, k=k, weights=fitted.weights)}
    report = await asyncio.to_thread(bt.evaluate, h, at, strategies, k=k, window_days=window_days)
    return _report(report, truncated=loaded.truncated, learned_note=fitted.note)


def weights_text(w: Weights) -> str:
    return ",".join([f"bias={w.bias}", *(f"{n}={w.weights[n]}" for n in SIGNALS)])


async def fit_weights(session: AsyncSession, *, now: datetime, window_days: int = 30) -> WeightsRead:
    """Fit weights on the history up to ``now`` and store them as a new version. They are served only when
    weights fitted the same way one window earlier beat the defaults on the last window (recall@3): a fit must
    earn its place. Too little history, or no gain, keeps the defaults, and the note says why."""
    loaded = await load_history(session, until=now)
    h = loaded.history
    fitted = await asyncio.to_thread(learn.fit, h, now, window_days=window_days)
    check_at = now - timedelta(days=window_days)
    earlier = await asyncio.to_thread(learn.fit, h, check_at, window_days=window_days)
    report = await asyncio.to_thread(bt.evaluate, h, check_at, {
        "popularity": bt.popularity(h, check_at, k=3), "default": bt.engine_rules(h, k=3),
        "learned": bt.engine_rules(h, k=3, weights=earlier.weights)}, k=3, window_days=window_days)
    learned_recall, default_recall = report.scores["learned"].recall, report.scores["default"].recall
    serve = fitted.learned and earlier.learned and report.buyers > 0 and learned_recall >= default_recall
    note = fitted.note
    if fitted.learned and not serve:
        note += (f" Not served: on the last {window_days} days they named {learned_recall:.3f} of purchases in the "
                 f"top 3 against {default_recall:.3f} for the defaults.")
    row = LearnedWeights(fitted_at=now, trained_until=now, window_days=window_days, rows=fitted.rows,
                         positives=fitted.positives, learned=serve, weights=weights_text(fitted.weights),
                         note=note, recall_at_3=learned_recall if report.buyers else None,
                         popularity_recall_at_3=report.scores["popularity"].recall if report.buyers else None)
    session.add(row)
    await session.flush()
    return _weights_read(row)


def _weights_read(row: LearnedWeights | None) -> WeightsRead:
    if row is None:
        return WeightsRead(version=None, learned=False, bias=DEFAULT.bias, weights=dict(DEFAULT.weights),
                           note="No fit yet: the documented default weights are served.")
    w = parse_weights(row.weights) if row.learned else DEFAULT  # what is served: a fit only when it earned it
    return WeightsRead(version=row.version, learned=row.learned, bias=w.bias, weights=dict(w.weights),
                       note=row.note, fitted_at=row.fitted_at, rows=row.rows, positives=row.positives,
                       recall_at_3=row.recall_at_3, popularity_recall_at_3=row.popularity_recall_at_3)


async def current_weights(session: AsyncSession) -> WeightsRead:
    """The newest stored fit (or the defaults)."""
    row = await session.scalar(select(LearnedWeights).order_by(LearnedWeights.version.desc()).limit(1))
    return _weights_read(row)


async def served_weights(session: AsyncSession, override: str) -> Weights:
    """What a request scores with: an explicit COMMERCE_SUGGEST_WEIGHTS wins; else the newest fit when it earned
    its place; else the defaults."""
    if override.strip():
        return parse_weights(override)
    row = (await session.execute(select(LearnedWeights.learned, LearnedWeights.weights)
                                 .order_by(LearnedWeights.version.desc()).limit(1))).first()
    return parse_weights(row.weights) if row is not None and row.learned else DEFAULT
