"""Synthetic customer bases with different hidden buying patterns, for the suggestion backtest.

Each world is built from one seed and one structure, with its own generated catalog (25 modules, some with
limits, some with prerequisite chains), not the demo's, so the engine is judged on worlds it was not written
for. The hidden model: a user's need for a module is a logistic mix of a role taste, an account taste, a
segment taste and personal noise, weighted by the structure; needs drive use of what the user owns (limits
pressed), attempts on what the user lacks (denied checks), and purchases: a small base rate, much higher right
after friction (tries early in a week, purchases later in it), higher still when colleagues in the account own
the module (contagion). A module whose prerequisite is missing is bought by buying the prerequisite first (the
next step), as real users do.

Structures (the weight of each latent source, and the shape of the catalog):
  role      needs follow the role (analysts want reports, engineers data)
  account   needs follow the account (a team standardises on tools)
  segment   needs follow the segment (enterprise wants governance)
  chains    balanced tastes, many prerequisite chains (2-3 deep)
  metered   balanced tastes, many limit features pressed by growing use

Three more, written after the engine's default weights were fixed and never used to choose them (the fairer
test of worlds "the engine never saw"); each breaks one assumption the five above share:
  sequence  needs follow what the user already bought: every module has a follow-on module whose need jumps
            once the user owns it (complements), on weak role, account and segment tastes
  quiet     the product hides what a user lacks: no denied attempts are recorded and no limits are pressed,
            so purchases come from need and from colleagues only (no friction signal to read)
  newcomers four users in ten join in the two weeks before the split, with no history of their own: the
            engine knows only their role, their account and its colleagues

Time: 120 days from ``START`` in weekly steps; the backtest trains on days 0-90 and tests on 90-120.
Every event carries its date; the oracle knows each user's true needs at the split (``World.true_need``).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from suggest.history import HDemand, HGrant, History, HUsage, HUser
from suggest.signals import FeatureInfo, ModuleInfo

START = datetime(2026, 1, 5, tzinfo=UTC)
DAYS = 120
SPLIT_DAY = 90
STRUCTURES = ("role", "account", "segment", "chains", "metered")
UNSEEN = ("sequence", "quiet", "newcomers")  # written after the defaults were fixed (see the docstring)
FOLLOW_BOOST = 2.5  # sequence: what owning a module adds to the logit of its follow-on's need
ROLES = {"analyst": 0.4, "manager": 0.2, "engineer": 0.25, "finance": 0.15}
SEGMENTS = {"smb": (5, 15), "mid_market": (15, 40), "enterprise": (40, 90)}
CATEGORIES = ("reporting", "data", "collaboration", "governance", "automation", "ai")

# (role, account, segment) weights of the latent tastes, prerequisite share, limit-module share
_SHAPE = {
    "role": (2.2, 0.5, 0.4, 0.2, 0.2),
    "account": (0.5, 2.2, 0.4, 0.2, 0.2),
    "segment": (0.5, 0.6, 2.0, 0.2, 0.2),
    "chains": (1.0, 1.0, 0.7, 0.6, 0.2),
    "metered": (1.0, 1.0, 0.7, 0.2, 0.6),
    "sequence": (0.5, 0.5, 0.3, 0.2, 0.2),
    "quiet": (1.0, 1.0, 0.7, 0.2, 0.0),
    "newcomers": (1.0, 1.0, 0.7, 0.2, 0.2),
}


@dataclass
class World:
    structure: str
    seed: int
    history: History
    true_need: dict[str, dict[str, float]]  # user -> module -> need at the split (the oracle's knowledge)
    split: datetime
    end: datetime
    shared_need: dict[str, dict[str, float]] = field(default_factory=dict)  # the need without the user's own taste
    follows: dict[str, str] = field(default_factory=dict)  # sequence: each module's follow-on
    joined: dict[str, int] = field(default_factory=dict)  # newcomers: the day each joined


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def make_catalog(rng: random.Random, *, prereq_share: float, limit_share: float, n: int = 25,
                 ) -> tuple[dict[str, ModuleInfo], dict[str, FeatureInfo]]:
    """``n`` modules over the categories; a share add limits (a base module granting a small limit and a
    pro module, requiring it, granting a large one); a share require an earlier module (chains form)."""
    modules: dict[str, ModuleInfo] = {}
    features: dict[str, FeatureInfo] = {}
    i = 0
    while len(modules) < n:
        cat = CATEGORIES[i % len(CATEGORIES)]
        if rng.random() < limit_share and len(modules) <= n - 2:
            f = f"f{i}_quota"
            features[f] = FeatureInfo(f, f"Quota {i}", "limit", unit="run", period="month")
            base, pro = f"m{i}_base", f"m{i}_pro"
            modules[base] = ModuleInfo(base, f"Module {i} Base", cat, {f: rng.choice((20, 50, 100))})
            modules[pro] = ModuleInfo(pro, f"Module {i} Pro", cat, {f: 1000, f"f{i}_extra": True}, requires=(base,))
            features[f"f{i}_extra"] = FeatureInfo(f"f{i}_extra", f"Extra {i}", "boolean")
        else:
            key = f"m{i}"
            feats: dict[str, int | str | bool] = {}
            for j in range(rng.randint(1, 2)):
                fk = f"f{i}_{j}"
                features[fk] = FeatureInfo(fk, f"Feature {i}.{j}", "boolean")
                feats[fk] = True
            earlier = [k for k in modules if modules[k].category == cat]
            requires = (rng.choice(earlier),) if earlier and rng.random() < prereq_share else ()
            modules[key] = ModuleInfo(key, f"Module {i}", cat, feats, requires=requires)
        i += 1
    return modules, features


def generate(structure: str, *, seed: int, accounts_per_segment: int = 16) -> World:
    """One world: about 60 accounts, 1,200-1,700 users, 120 days of events."""
    assert structure in _SHAPE, structure
    rng = random.Random(f"{structure}:{seed}")
    w_role, w_acct, w_seg, prereq_share, limit_share = _SHAPE[structure]
    modules, features = make_catalog(rng, prereq_share=prereq_share, limit_share=limit_share)
    keys = sorted(modules)
    role_taste = {r: {m: rng.gauss(0, 1) for m in keys} for r in ROLES}
    seg_taste = {s: {m: rng.gauss(0, 1) for m in keys} for s in SEGMENTS}
    popularity = {m: rng.gauss(0, 0.7) for m in keys}
    segments: dict[str, str] = {}
    users: list[HUser] = []
    logit: dict[str, dict[str, float]] = {}
    personal: dict[str, dict[str, float]] = {}
    growth: dict[str, dict[str, float]] = {}
    for seg, (lo, hi) in SEGMENTS.items():
        for a in range(accounts_per_segment):
            account = f"{seg}-{a:02d}"
            segments[account] = seg
            acct_taste = {m: rng.gauss(0, 1) for m in keys}
            for i in range(rng.randint(lo, hi)):
                role = rng.choices(list(ROLES), weights=list(ROLES.values()))[0]
                uid = f"{account}-u{i:03d}"
                users.append(HUser(uid, account, (role,)))
                shared = {m: w_role * role_taste[role][m] + w_acct * acct_taste[m] + w_seg * seg_taste[seg][m]
                          + popularity[m] for m in keys}
                personal[uid] = {m: rng.gauss(0, 0.7) for m in keys}  # the user's own taste: no peer shows it
                logit[uid] = {m: shared[m] + personal[uid][m] - 2.3 for m in keys}
                growth[uid] = {m: (rng.uniform(0.0, 0.004) if rng.random() < 0.3 else 0.0) for m in keys}
    dynamics = Dynamics(structure, logit, personal, growth,
                        follows=_follows(rng, modules) if structure == "sequence" else {},
                        joined={u.user_id: rng.randint(SPLIT_DAY - 14, SPLIT_DAY - 1) for u in users
                                if rng.random() < 0.4} if structure == "newcomers" else {})
    history = History(modules=modules, features=features, segments=segments, users=users,
                      prices={m: rng.choice((500, 1000, 1500, 2500, 4000)) for m in keys})
    owned: dict[str, set[str]] = defaultdict(set)
    before = START - timedelta(days=200)
    for u in users:  # what they held before the history begins (newcomers: nothing)
        if u.user_id in dynamics.joined:
            continue
        for m in keys:
            if rng.random() < dynamics.need(u.user_id, m, frozenset()) * 0.5:
                for k in (*modules[m].requires, m):
                    if k not in owned[u.user_id]:
                        owned[u.user_id].add(k)
                        history.grants.append(HGrant(u.account, u.user_id, k, before, purchased=True))
    at_split = _simulate(rng, history, dynamics, owned)
    split = START + timedelta(days=SPLIT_DAY)
    true_need = {u.user_id: {m: dynamics.need(u.user_id, m, at_split[u.user_id], day=SPLIT_DAY) for m in keys}
                 for u in users}
    shared_need = {u.user_id: {m: dynamics.need(u.user_id, m, at_split[u.user_id], day=SPLIT_DAY, personal=False)
                               for m in keys} for u in users}
    return World(structure, seed, history, true_need, split, START + timedelta(days=DAYS), shared_need,
                 dynamics.follows, dynamics.joined)


@dataclass
class Dynamics:
    """How a world's hidden needs move: each user's base logit per module, its slow growth, and per structure the
    follow-on modules (sequence) and the day each newcomer joined (newcomers)."""

    structure: str
    logit: dict[str, dict[str, float]]
    personal: dict[str, dict[str, float]]  # the part of each logit that is the user's own taste
    growth: dict[str, dict[str, float]]
    follows: dict[str, str]  # module -> its follow-on
    joined: dict[str, int]  # newcomer -> day joined

    def need(self, user: str, module: str, owned: frozenset[str] | set[str], *, week: int | None = None,
             day: int = 0, personal: bool = True) -> float:
        """The need in ``week`` of the simulation (or on ``day``), given what the user owns then; without
        ``personal``, what role, account, segment and ownership alone predict."""
        z = self.logit[user][module] if personal else self.logit[user][module] - self.personal[user][module]
        if self.follows:
            z += FOLLOW_BOOST * sum(1 for k in owned if self.follows.get(k) == module)
        grown = self.growth[user][module] * 7 * week if week is not None else self.growth[user][module] * day
        return min(1.0, _sigmoid(z) + grown)


def _follows(rng: random.Random, modules: dict[str, ModuleInfo]) -> dict[str, str]:
    """Each module's follow-on: another module that neither requires it nor is required by it."""
    keys = sorted(modules)
    out = {}
    for k in keys:
        others = [m for m in keys if m != k and k not in modules[m].requires and m not in modules[k].requires]
        out[k] = rng.choice(others)
    return out


def _simulate(rng: random.Random, h: History, dyn: Dynamics, owned: dict[str, set[str]]) -> dict[str, frozenset[str]]:
    """The 120 days, week by week; returns what each user owned at the split."""
    modules = h.modules
    quiet = dyn.structure == "quiet"
    granting: dict[str, list[str]] = defaultdict(list)
    for k, info in modules.items():
        for f in info.features:
            granting[f].append(k)
    by_account: dict[str, list[HUser]] = defaultdict(list)
    for u in h.users:
        by_account[u.account].append(u)
    friction: dict[tuple[str, str], int] = {}  # (user, module) -> last week with friction
    used: dict[tuple[str, str, datetime], int] = defaultdict(int)  # (user, feature, period start) -> use
    at_split: dict[str, frozenset[str]] = {}
    for week in range(DAYS // 7 + 1):
        day0 = START + timedelta(days=7 * week)
        if day0 >= START + timedelta(days=DAYS):
            break
        if 7 * week <= SPLIT_DAY < 7 * (week + 1):
            at_split = {u.user_id: frozenset(owned[u.user_id]) for u in h.users}
        period = START + timedelta(days=30 * ((7 * week) // 30))
        here = {a: [u for u in us if dyn.joined.get(u.user_id, -1) <= 7 * week] for a, us in by_account.items()}
        share = {a: {m: sum(m in owned[u.user_id] for u in us) / len(us) if us else 0.0 for m in modules}
                 for a, us in here.items()}
        for u in h.users:
            if dyn.joined.get(u.user_id, -1) > 7 * week:
                continue  # not here yet
            uid, mine = u.user_id, owned[u.user_id]
            now_need = {m: dyn.need(uid, m, mine, week=week) for m in modules}
            for f, ks in granting.items():
                want = max(now_need[k] for k in ks)
                held = [k for k in ks if k in mine]
                if held:
                    cap = sum(g for k in held if isinstance(g := modules[k].features[f], int)
                              and not isinstance(g, bool))
                    weekly = want * (cap / 4 if cap else 10) * rng.uniform(0.6, 1.4)
                    n = int(weekly) if cap == 0 else min(int(weekly), cap // 4 + 1)
                    if n > 0:
                        used[(uid, f, period)] += n
                    if cap and weekly >= cap / 4 * 0.9:
                        for k in ks:
                            if k not in mine:
                                friction[(uid, k)] = week
                elif not quiet and want > 0.3 and rng.random() < want * 0.6:
                    day = (day0 + timedelta(days=rng.randrange(3))).date()
                    h.demand.append(HDemand(uid, f, day, rng.randint(1, 1 + int(want * 4))))
                    for k in ks:
                        friction[(uid, k)] = week
            for m in sorted(modules):
                if m in mine:
                    continue
                recent = week - friction.get((uid, m), -99) <= 1
                p = (now_need[m] * (0.015 + 0.06 * share[u.account][m]) if quiet else
                     now_need[m] * (0.003 + (0.12 if recent else 0.0) + 0.05 * share[u.account][m]))
                if rng.random() < p:
                    step = next((r for r in _chain(modules, m) if r not in mine), m)
                    at = day0 + timedelta(days=3 + rng.randrange(4), hours=rng.randrange(24))
                    mine.add(step)
                    h.grants.append(HGrant(u.account, uid, step, at, purchased=True))
    h.usage.extend(HUsage(uid, f, start, start + timedelta(days=30), n) for (uid, f, start), n in sorted(used.items()))
    return at_split


def _chain(modules: dict[str, ModuleInfo], key: str) -> list[str]:
    """Prerequisites deepest first, then the module."""
    out: list[str] = []
    for r in modules[key].requires:
        out += [k for k in _chain(modules, r) if k not in out]
    return [*out, key]
