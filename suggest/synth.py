"""A reproducible synthetic customer base: accounts of several segments, users with roles, and latent needs
that drive both usage (use, attempts on features not owned, limits pressed) and purchases over months.

Used by the offline evaluation (bench/suggest_eval.py) and to give ``make demo`` a believable history.
Everything comes from one seeded ``random.Random``: the same seed gives the same world.

The latent model, in words: each module has a base appeal per role; each account adds its own team taste
(peers in one account buy alike) and each segment a taste of its own; each user's need for a module is that
appeal plus personal noise, and some needs grow month by month. A user acts on a need: uses what they own
(more when the need is strong), tries features they lack (attempts, denied checks), and each month buys a
needed module with a probability rising with the need, much higher right after friction (a feature tried
without having it, a limit pressed), prerequisites first.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field

from suggest.signals import ModuleInfo

SEGMENTS = {"smb": (4, 12), "mid_market": (15, 45), "enterprise": (50, 120)}  # users per account (min, max)
ROLES = {"analyst": 0.45, "manager": 0.2, "engineer": 0.2, "viewer": 0.15}
# Base appeal of a module category for a role (log-odds-ish scale, 0 = indifferent).
APPEAL = {
    "analyst": {"reporting": 1.2, "visualization": 1.0, "data": 0.0, "collaboration": 0.3, "governance": -1.5,
                "ai": 0.5},
    "manager": {"reporting": 0.8, "visualization": 0.2, "data": -1.0, "collaboration": 1.0, "governance": 0.0,
                "ai": 0.3},
    "engineer": {"reporting": -0.5, "visualization": -0.2, "data": 1.4, "collaboration": 0.0, "governance": 0.5,
                 "ai": 0.2},
    "viewer": {"reporting": -0.8, "visualization": -0.5, "data": -2.0, "collaboration": 0.6, "governance": -2.0,
               "ai": -1.0},
}


@dataclass
class SynthUser:
    user_id: str
    account: str
    segment: str
    role: str
    need: dict[str, float]  # module -> latent need in [0, 1]
    growth: dict[str, float]  # module -> need added per month
    owned: set[str] = field(default_factory=set)
    bought: list[tuple[int, str]] = field(default_factory=list)  # (month, module)
    usage: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))  # feature -> per month
    attempts: dict[int, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))  # month -> feature -> n


@dataclass
class World:
    modules: dict[str, ModuleInfo]
    users: list[SynthUser]
    months: int

    def accounts(self) -> dict[str, list[SynthUser]]:
        out: dict[str, list[SynthUser]] = defaultdict(list)
        for u in self.users:
            out[u.account].append(u)
        return dict(out)


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def generate(modules: dict[str, ModuleInfo], *, seed: int = 7, accounts_per_segment: int = 12, months: int = 6,
             limit_of: dict[str, int] | None = None) -> World:
    """Simulate ``months`` months of a customer base over the catalog's active modules."""
    rng = random.Random(seed)  # noqa: S311 - a simulation, not security
    limits = limit_of or {}
    users: list[SynthUser] = []
    segment_taste = {s: {m: rng.gauss(0, 0.6) for m in modules} for s in SEGMENTS}
    for segment, (lo, hi) in SEGMENTS.items():
        for a in range(accounts_per_segment):
            account = f"{segment}-{a:02d}"
            team_taste = {m: rng.gauss(0, 1.0) for m in modules}
            for i in range(rng.randint(lo, hi)):
                role = rng.choices(list(ROLES), weights=list(ROLES.values()))[0]
                need, growth = {}, {}
                for key, m in modules.items():
                    logit = (APPEAL[role].get(m.category, 0.0) + team_taste[key] + segment_taste[segment][key]
                             + rng.gauss(0, 0.8) - 1.6)
                    need[key] = _sigmoid(logit)
                    growth[key] = max(0.0, rng.gauss(0.02, 0.05)) if rng.random() < 0.3 else 0.0
                users.append(SynthUser(user_id=f"{account}-u{i:03d}", account=account, segment=segment, role=role,
                                       need=need, growth=growth))
    for month in range(months):
        for u in users:
            _live_a_month(rng, u, month, modules, limits)
    return World(modules=modules, users=users, months=months)


def _live_a_month(rng: random.Random, u: SynthUser, month: int, modules: dict[str, ModuleInfo],
                  limits: dict[str, int]) -> None:
    need = {k: min(1.0, u.need[k] + u.growth[k] * month) for k in modules}
    granting: dict[str, list[str]] = defaultdict(list)
    pressed: set[str] = set()
    for key, m in modules.items():
        for feature in m.features:
            granting[feature].append(key)
    for feature, keys in granting.items():
        want = max(need[k] for k in keys)
        held = [k for k in keys if k in u.owned]
        usage = u.usage[feature]
        while len(usage) <= month:
            usage.append(0)
        if held:
            grants = [modules[k].features[feature] for k in held]
            cap = sum(g for g in grants if isinstance(g, int) and not isinstance(g, bool)) or limits.get(feature, 10)
            usage[month] = min(cap, int(want * cap * rng.uniform(0.6, 1.15)))
            if usage[month] >= 0.9 * cap and any(isinstance(g, int) and not isinstance(g, bool) for g in grants):
                pressed.add(feature)
        elif want > 0.45 and rng.random() < want:
            u.attempts[month][feature] = rng.randint(1, 1 + int(want * 4))
    tried = set(u.attempts.get(month, {})) | set(u.attempts.get(month - 1, {}))
    for key, m in modules.items():
        # Friction (a wall hit this month or last, a limit pressed) is what turns a need into a purchase.
        friction = bool(set(m.features) & (tried | pressed))
        if key not in u.owned and rng.random() < need[key] * (0.01 + (0.6 if friction else 0.0)):
            for req in (*m.requires, key):
                if req in modules and req not in u.owned:
                    u.owned.add(req)
                    u.bought.append((month, req))
