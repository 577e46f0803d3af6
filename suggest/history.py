"""A vendor's history as plain values, and what the engine would have known about each user at a past moment.

Both the offline backtest and the learned weights read history this way: the synthetic worlds of bench/ build
it in memory, the service loads it from the database (``suggest.backtest_service``). ``facts_at(history, t)``
reconstructs, from events dated before ``t`` only, the same ``UserFacts`` a live request at ``t`` would have
gathered: holdings, demand (denied checks and attempts) in the signal window and before it, usage per period,
role, account and segment peers, co-ownership. Nothing at or after ``t`` leaks in. Pure.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import combinations

from suggest.engine import UserFacts
from suggest.signals import FeatureInfo, ModuleInfo, PeerCount


@dataclass(frozen=True)
class HUser:
    user_id: str
    account: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class HGrant:
    """A module held by a user (``user`` None: by everyone in the account) from ``starts_at`` until ``ends_at``;
    ``purchased`` when it came from an order (live or imported), which is what the backtest predicts."""

    account: str
    user: str | None
    module: str
    starts_at: datetime
    ends_at: datetime | None = None
    purchased: bool = False


@dataclass(frozen=True)
class HDemand:
    """Denied checks plus attempts of a user for a feature on one UTC day."""

    user: str
    feature: str
    day: date
    count: int


@dataclass(frozen=True)
class HUsage:
    """Use of a feature by a user in one counter period."""

    user: str
    feature: str
    period_start: datetime
    period_end: datetime
    used: int


@dataclass
class History:
    modules: dict[str, ModuleInfo]
    features: dict[str, FeatureInfo]
    segments: dict[str, str]  # account -> segment
    users: list[HUser]
    grants: list[HGrant] = field(default_factory=list)
    demand: list[HDemand] = field(default_factory=list)
    usage: list[HUsage] = field(default_factory=list)
    prices: dict[str, int] = field(default_factory=dict)  # module -> monthly minor units

    def purchases(self, since: datetime, until: datetime) -> dict[str, set[str]]:
        """user -> modules bought (own grants from orders) in (since, until]."""
        out: dict[str, set[str]] = defaultdict(set)
        for g in self.grants:
            if g.purchased and g.user is not None and since < g.starts_at <= until:
                out[g.user].add(g.module)
        return dict(out)


def holdings_at(history: History, t: datetime) -> dict[str, frozenset[str]]:
    """user -> modules held at ``t`` (own grants and the account's)."""
    own: dict[str, set[str]] = defaultdict(set)
    everyone: dict[str, set[str]] = defaultdict(set)
    for g in history.grants:
        if g.starts_at <= t and (g.ends_at is None or g.ends_at > t):
            (own[g.user] if g.user is not None else everyone[g.account]).add(g.module)
    return {u.user_id: frozenset(own.get(u.user_id, set()) | everyone.get(u.account, set())) for u in history.users}


@dataclass(frozen=True)
class PeerTables:
    """Counts at one moment: per (account, role) and (segment, role) the users and owners of each module; per
    account its users and owners; per segment the co-owned pairs and owners (the inputs of every peer fact)."""

    role_users: Mapping[tuple[str, str], int]
    role_owners: Mapping[tuple[str, str, str], int]  # (account, role, module)
    role_active: Mapping[tuple[str, str, str], int]
    account_users: Mapping[str, int]
    account_owners: Mapping[tuple[str, str], int]  # (account, module)
    segment_role_users: Mapping[tuple[str, str], int]
    segment_role_owners: Mapping[tuple[str, str, str], int]  # (segment, role, module)
    segment_pairs: Mapping[str, Mapping[tuple[str, str], int]]
    segment_owners: Mapping[str, Mapping[str, int]]
    segment_users: Mapping[str, int]
    legacy_users: Mapping[tuple[str, str, str], int] | None = None  # the pre-issue-19 denominator (backtest only)


def count_tables(users: Sequence[HUser], segments: Mapping[str, str], held: Mapping[str, frozenset[str]],
                 active: Mapping[str, frozenset[str]] | None = None,
                 features_of: Mapping[str, frozenset[str]] | None = None) -> PeerTables:
    """Every peer count from users, their holdings and (optionally) the features they used lately. Pure; the
    live recount (``suggest.peers``) and the backtest both use it, so a stated figure means one thing."""
    role_users: Counter[tuple[str, str]] = Counter()
    role_owners: Counter[tuple[str, str, str]] = Counter()
    role_active: Counter[tuple[str, str, str]] = Counter()
    account_users: Counter[str] = Counter()
    account_owners: Counter[tuple[str, str]] = Counter()
    seg_role_users: Counter[tuple[str, str]] = Counter()
    seg_role_owners: Counter[tuple[str, str, str]] = Counter()
    seg_pairs: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    seg_owners: dict[str, Counter[str]] = defaultdict(Counter)
    seg_users: Counter[str] = Counter()
    for u in users:
        seg = segments.get(u.account, "")
        mods = sorted(held.get(u.user_id, frozenset()))
        used = (active or {}).get(u.user_id, frozenset())
        account_users[u.account] += 1
        seg_users[seg] += 1
        for m in mods:
            account_owners[(u.account, m)] += 1
            seg_owners[seg][m] += 1
        for a, b in combinations(mods, 2):
            seg_pairs[seg][(a, b)] += 1
        for role in sorted(set(u.roles)):
            role_users[(u.account, role)] += 1
            seg_role_users[(seg, role)] += 1
            for m in mods:
                role_owners[(u.account, role, m)] += 1
                seg_role_owners[(seg, role, m)] += 1
                if used & (features_of or {}).get(m, frozenset()):
                    role_active[(u.account, role, m)] += 1
    return PeerTables(role_users, role_owners, role_active, account_users, account_owners, seg_role_users,
                      seg_role_owners, seg_pairs, seg_owners, seg_users)


def _months_back(t: datetime, n: int) -> list[tuple[datetime, datetime]]:
    """The ``n`` 30-day windows ending at ``t``, oldest first (usage series buckets)."""
    return [(t - timedelta(days=30 * (i + 1)), t - timedelta(days=30 * i)) for i in reversed(range(n))]


def facts_at(history: History, t: datetime, *, signal_days: int = 30, older_days: int = 90,
             users: Sequence[HUser] | None = None, legacy_segment_share: bool = False) -> dict[str, UserFacts]:
    """user -> what the engine would have known at ``t`` (events strictly before ``t``)."""
    held = holdings_at(history, t)
    features_of = {k: frozenset(m.features) for k, m in history.modules.items()}
    active_since = t - timedelta(days=30)
    active: dict[str, set[str]] = defaultdict(set)
    series: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0]))
    windows = _months_back(t, 3)
    last_used: dict[tuple[str, str], tuple[datetime, int]] = {}
    for row in history.usage:
        if row.period_start >= t:
            continue
        if row.used > 0 and row.period_end > active_since:
            active[row.user].add(row.feature)
        for i, (lo, hi) in enumerate(windows):
            if lo <= row.period_start < hi:
                series[row.user][row.feature][i] += row.used
        key = (row.user, row.feature)
        if key not in last_used or row.period_start > last_used[key][0]:  # the latest period begun before t
            last_used[key] = (row.period_start, row.used)
    tables = count_tables(history.users, history.segments, held, {u: frozenset(f) for u, f in active.items()},
                          features_of)
    if legacy_segment_share:
        tables = _legacy(tables, history.segments)
    recent_day = (t - timedelta(days=signal_days)).date()
    older_day = (t - timedelta(days=older_days)).date()
    week_day = (t - timedelta(days=7)).date()
    demand: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0]))
    for d in history.demand:
        if d.day >= t.date() or d.day < older_day:
            continue
        demand[d.user][d.feature][0 if d.day >= recent_day else 1] += d.count
        if d.day >= week_day:
            demand[d.user][d.feature][2] += d.count
    out: dict[str, UserFacts] = {}
    for u in users if users is not None else history.users:
        out[u.user_id] = user_facts_from(u, history, tables, held, demand.get(u.user_id, {}),
                                         series.get(u.user_id, {}), last_used, active.get(u.user_id, set()))
    return out


def _legacy(tables: PeerTables, segments: Mapping[str, str]) -> PeerTables:
    """The segment share as the engine computed it before issue 19 (for the backtest's "before" figure only):
    owners over the users of those accounts only where someone in the role owns the module."""
    users: Counter[tuple[str, str, str]] = Counter()
    for (account, role, m), n in tables.role_owners.items():
        if n > 0:
            users[(segments.get(account, ""), role, m)] += tables.role_users.get((account, role), 0)
    return PeerTables(tables.role_users, tables.role_owners, tables.role_active, tables.account_users,
                      tables.account_owners, tables.segment_role_users, tables.segment_role_owners,
                      tables.segment_pairs, tables.segment_owners, tables.segment_users, legacy_users=dict(users))


def limits_of(owned: frozenset[str], modules: Mapping[str, ModuleInfo]) -> dict[str, int]:
    """feature -> limit the owned modules add up to (limit features only)."""
    limits: dict[str, int] = defaultdict(int)
    for m in owned:
        info = modules.get(m)
        for f, g in (info.features.items() if info else ()):
            if isinstance(g, int) and not isinstance(g, bool):
                limits[f] += g
    return dict(limits)


def user_facts_from(u: HUser, history: History, tables: PeerTables, held: Mapping[str, frozenset[str]],
                    demand: Mapping[str, list[int]], series: Mapping[str, list[int]],
                    last_used: Mapping[tuple[str, str], tuple[datetime, int]], used_lately: set[str],
                    ) -> UserFacts:
    """One user's facts from the counted tables (the user is excluded from every peer count)."""
    owned = held.get(u.user_id, frozenset())
    seg = history.segments.get(u.account, "")
    limits = limits_of(owned, history.modules)
    usage = {f: (last_used[(u.user_id, f)][1] if (u.user_id, f) in last_used else 0, lim)
             for f, lim in limits.items() if lim > 0}
    team: dict[tuple[str, str], PeerCount] = {}
    team_active: dict[tuple[str, str], PeerCount] = {}
    seg_peers: dict[tuple[str, str], PeerCount] = {}
    for role in u.roles:
        n_role = tables.role_users.get((u.account, role), 0) - 1
        n_seg = tables.segment_role_users.get((seg, role), 0)
        for m in history.modules:
            mine = 1 if m in owned else 0
            o = tables.role_owners.get((u.account, role, m), 0) - mine
            team[(role, m)] = PeerCount(owners=o, users=n_role)
            act = tables.role_active.get((u.account, role, m), 0)
            if mine and used_lately & frozenset(history.modules[m].features):
                act -= 1
            team_active[(role, m)] = PeerCount(owners=act, users=o)
            seg_users = n_seg if tables.legacy_users is None else tables.legacy_users.get((seg, role, m), 0)
            seg_peers[(role, m)] = PeerCount(owners=tables.segment_role_owners.get((seg, role, m), 0), users=seg_users)
    n_account = tables.account_users.get(u.account, 0) - 1
    account_peers = {m: PeerCount(owners=tables.account_owners.get((u.account, m), 0) - (1 if m in owned else 0),
                                  users=n_account) for m in history.modules}
    tracked = {k for k, f in history.features.items() if f.kind in ("boolean", "limit")}
    unused = frozenset(m for m in owned if m in history.modules and set(history.modules[m].features) & tracked
                       and not set(history.modules[m].features) & used_lately)
    return UserFacts(
        roles=u.roles, segment=seg, owned=owned, usage=usage,
        demand={f: (0, c[0]) for f, c in demand.items() if c[0] > 0},
        series={f: list(v) for f, v in series.items()}, team=team, segment_peers=seg_peers, team_active=team_active,
        pairs=tables.segment_pairs.get(seg, {}), owners=tables.segment_owners.get(seg, {}), unused=unused,
        account_peers=account_peers, demand_week={f: c[2] for f, c in demand.items() if c[2] > 0},
        older_demand={f: c[1] for f, c in demand.items() if c[1] > 0},
        segment_all={m: PeerCount(owners=n, users=tables.segment_users.get(seg, 0))
                     for m, n in tables.segment_owners.get(seg, {}).items()})
