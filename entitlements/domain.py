"""Pure entitlement decisions: periods, resolution of a user's features from active grants, the check,
and the offer that would unlock a denied feature. Plain values in and out; no litestar, no sqlalchemy."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgspec

from catalog.domain import BUYABLE, Audience, Live, availability, headline_amount
from catalog.spec import ConfigFeature, Feature, LimitFeature, LimitPeriod, Module

Subject = Literal["user", "seat", "account"]
GrantStatus = Literal["scheduled", "active", "ended", "revoked"]
Reason = Literal["granted", "within_limit", "limit_exceeded", "not_entitled"]

MEMO_MAX = 32
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FOREVER = datetime(9999, 12, 31, tzinfo=UTC)
COUNTER_PERIOD_DEFAULT: LimitPeriod = "month"
_SUBJECT_RANK: dict[Subject, int] = {"user": 0, "seat": 1, "account": 2}


# ---------------------------------------------------------------------------------------------
# Periods (UTC calendar)


def period_bounds(period: LimitPeriod, at: datetime) -> tuple[datetime, datetime]:
    """The [start, end) of the period containing ``at``: UTC day, ISO week (Monday), month, year, or lifetime."""
    at = at.astimezone(UTC)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day, day + timedelta(days=1)
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if period == "month":
        start = day.replace(day=1)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
        return start, end
    if period == "year":
        start = day.replace(month=1, day=1)
        return start, start.replace(year=start.year + 1)
    return EPOCH, FOREVER


def counter_period(feature: Feature) -> LimitPeriod:
    """Limit features count per their own period; other features per month (for signals and history)."""
    return feature.period if isinstance(feature, LimitFeature) else COUNTER_PERIOD_DEFAULT


def grant_status(*, starts_at: datetime, ends_at: datetime | None, revoked_at: datetime | None,
                 now: datetime) -> GrantStatus:
    """Status by time: a revocation with a future effective time keeps the grant active until then."""
    if ends_at is not None and ends_at <= now:
        return "revoked" if revoked_at is not None else "ended"
    if revoked_at is not None and revoked_at <= now:
        return "revoked"
    return "scheduled" if starts_at > now else "active"


# ---------------------------------------------------------------------------------------------
# The catalog as the check path needs it


@dataclass(frozen=True)
class CatalogView:
    """The live catalog indexed for resolution: features and modules by key, and who grants what."""

    live: Live
    features: dict[str, Feature]
    modules: dict[str, Module]
    granting: dict[str, tuple[str, ...]]

    @property
    def revision(self) -> int:
        return self.live.revision

    @classmethod
    def build(cls, live: Live) -> CatalogView:
        granting: dict[str, list[str]] = {}
        for m in live.doc.modules:
            for key in m.features:
                granting.setdefault(key, []).append(m.key)
        return cls(live=live, features={f.key: f for f in live.doc.features},
                   modules={m.key: m for m in live.doc.modules},
                   granting={k: tuple(sorted(v)) for k, v in granting.items()})


# ---------------------------------------------------------------------------------------------
# Resolution


@dataclass(frozen=True, slots=True)
class HeldGrant:
    """An active grant as resolution sees it."""

    grant_id: str
    module: str
    subject: Subject
    starts_at: datetime


@dataclass(slots=True)
class FeatureState:
    """One feature of a user's snapshot: granted or not, its summed limit or resolved value, and usage."""

    kind: str
    granted: bool
    limit: int | None
    value: str | None
    period: LimitPeriod | None
    modules: tuple[str, ...]


@dataclass(slots=True)
class Snapshot:
    """Everything a check needs about one user, resolved at ``computed_at``; valid until ``valid_until``."""

    user_ref: str
    account_ref: str
    account_id: str
    user_id: str
    roles: frozenset[str]
    segment: str
    region: str
    currency: str
    catalog_revision: int
    computed_at: datetime
    valid_until: datetime
    modules: frozenset[str]
    features: dict[str, FeatureState]
    used: dict[str, tuple[datetime, datetime, int]]  # feature -> (period start, period end, used)
    version: str = ""
    loaded_at: float = 0.0
    offers: dict[str, OfferHint | None] = field(default_factory=dict)
    trials_used: frozenset[str] = frozenset()  # modules whose trial the user (or its account) already had
    # Answers already computed from this snapshot, per (feature, quantity): the snapshot does not change
    # until it is replaced (invalidation, TTL or valid_until), so neither do they. Bounded by MEMO_MAX.
    memo: dict[tuple[str, int], Any] = field(default_factory=dict)


def _config_value(feature: ConfigFeature, module_value: object) -> str:
    return module_value if isinstance(module_value, str) else feature.value


def resolve_config(candidates: Sequence[tuple[HeldGrant, str]]) -> str:
    """Documented rule: when every candidate is an integer, the largest wins (more retention, a higher tier);
    otherwise the most specific subject (own grant, then seat, then account-wide), then the latest start,
    then the smallest grant id."""
    values = [v for _, v in candidates]
    if all(_is_int(v) for v in values):
        return max(values, key=int)
    best = min(candidates, key=lambda c: (_SUBJECT_RANK[c[0].subject], -c[0].starts_at.timestamp(), c[0].grant_id))
    return best[1]


def _is_int(value: str) -> bool:
    return value.lstrip("-").isdigit() and len(value) < 19


def resolve(grants: Iterable[HeldGrant], catalog: CatalogView) -> dict[str, FeatureState]:
    """Effective features: union over active grants; limits add up (each grant counts once); config by rule."""
    limits: dict[str, int] = {}
    configs: dict[str, list[tuple[HeldGrant, str]]] = {}
    sources: dict[str, list[str]] = {}
    for g in grants:
        module = catalog.modules.get(g.module)
        if module is None:
            continue
        for key, value in module.features.items():
            feature = catalog.features.get(key)
            if feature is None:
                continue
            sources.setdefault(key, []).append(g.module)
            if isinstance(feature, LimitFeature) and isinstance(value, int) and not isinstance(value, bool):
                limits[key] = limits.get(key, 0) + value
            elif isinstance(feature, ConfigFeature):
                configs.setdefault(key, []).append((g, _config_value(feature, value)))
    out: dict[str, FeatureState] = {}
    for key, mods in sources.items():
        feature = catalog.features[key]
        modules = tuple(sorted(set(mods)))
        if isinstance(feature, LimitFeature):
            out[key] = FeatureState(kind="limit", granted=True, limit=limits.get(key, 0), value=None,
                                    period=feature.period, modules=modules)
        elif isinstance(feature, ConfigFeature):
            out[key] = FeatureState(kind="config", granted=True, limit=None, value=resolve_config(configs[key]),
                                    period=None, modules=modules)
        else:
            out[key] = FeatureState(kind="boolean", granted=True, limit=None, value=None, period=None,
                                    modules=modules)
    return out


def next_boundary(now: datetime, boundaries: Iterable[datetime | None]) -> datetime:
    """The earliest future instant at which a snapshot computed at ``now`` stops being true."""
    return min((b for b in boundaries if b is not None and b > now), default=FOREVER)


def snapshot_version(snap: Snapshot) -> str:
    """A stable tag of what the snapshot says (the ETag): same grants, values and usage -> same version."""
    parts = [snap.account_id, snap.user_id, str(snap.catalog_revision), ",".join(sorted(snap.modules))]
    for key in sorted(snap.features):
        f = snap.features[key]
        parts.append(f"{key}={f.kind}:{f.limit}:{f.value}")
    for key in sorted(snap.used):
        start, _, used = snap.used[key]
        parts.append(f"u:{key}:{start.isoformat()}:{used}")
    parts.append("t:" + ",".join(sorted(snap.trials_used)))
    parts.append(snap.valid_until.isoformat())
    return hashlib.blake2b("|".join(parts).encode(), digest_size=12).hexdigest()


# ---------------------------------------------------------------------------------------------
# Check


class OfferHint(msgspec.Struct, frozen=True, kw_only=True):
    """The module that would unlock a denied feature for this user, with its price and availability."""

    module: str
    name: str
    effect: str
    reason: str
    grants_limit: int | None = None
    grants_value: str | None = None
    price_id: str | None = None
    price_model: str | None = None
    amount_minor: int | None = None
    currency: str | None = None
    interval: str | None = None
    per_seat: bool = False
    trial_days: int | None = None
    trial_available: bool = False
    requires_unmet: list[str] = []


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to ``may this user use this feature for this quantity now``."""

    allowed: bool
    reason: Reason
    kind: str
    limit: int | None
    used: int | None
    remaining: int | None
    period: str | None
    period_start: datetime | None
    period_end: datetime | None
    value: str | None
    modules: tuple[str, ...]


def used_now(snap: Snapshot, feature: str, period: LimitPeriod, now: datetime) -> tuple[datetime, datetime, int]:
    entry = snap.used.get(feature)
    if entry is not None and entry[0] <= now < entry[1]:
        return entry
    start, end = period_bounds(period, now)
    return start, end, 0


def check(snap: Snapshot, feature: Feature, quantity: int, now: datetime) -> Outcome:
    """Pure decision over a snapshot (the caller made sure ``now`` is before ``snap.valid_until``)."""
    state = snap.features.get(feature.key)
    if isinstance(feature, LimitFeature):
        start, end, used = used_now(snap, feature.key, feature.period, now)
        limit = state.limit if state is not None else 0
        assert limit is not None
        allowed = state is not None and used + quantity <= limit
        reason: Reason = "within_limit" if allowed else ("limit_exceeded" if state is not None else "not_entitled")
        return Outcome(allowed=allowed, reason=reason, kind="limit", limit=limit, used=used,
                       remaining=max(0, limit - used), period=feature.period, period_start=start, period_end=end,
                       value=None, modules=state.modules if state else ())
    kind = "config" if isinstance(feature, ConfigFeature) else "boolean"
    value = None
    if isinstance(feature, ConfigFeature):
        value = state.value if state is not None else feature.value
    return Outcome(allowed=state is not None, reason="granted" if state is not None else "not_entitled", kind=kind,
                   limit=None, used=None, remaining=None, period=None, period_start=None, period_end=None,
                   value=value, modules=state.modules if state else ())


def best_offer(snap: Snapshot, feature: Feature, catalog: CatalogView, *, needed: int = 0) -> OfferHint | None:
    """Among modules granting ``feature`` that the user does not hold and may see: buyable before visible,
    then (for limits) one that covers ``needed`` more, then the cheapest in the account's currency."""
    who = Audience(roles=snap.roles, segment=snap.segment, region=snap.region, owned=snap.modules)
    ranked: list[tuple[tuple[int, int, int, str], OfferHint]] = []
    for key in catalog.granting.get(feature.key, ()):
        module = catalog.modules[key]
        if key in snap.modules:
            continue
        prices = [lp for (mk, _), lp in sorted(catalog.live.prices.items()) if mk == key]
        in_currency = [lp for lp in prices if lp.price.currency == snap.currency]
        decision = availability(catalog.live.doc, module, who, has_price=bool(in_currency) or not prices)
        if decision.effect == "hidden":
            continue
        value = module.features[feature.key]
        limit = value if isinstance(value, int) and not isinstance(value, bool) else None
        chosen = in_currency[0] if in_currency else None
        amount = headline_amount(chosen.price) if chosen else None
        buyable = decision.effect in BUYABLE
        hint = OfferHint(
            module=key, name=module.name, effect=decision.effect, reason=decision.reason,
            grants_limit=limit if isinstance(feature, LimitFeature) else None,
            grants_value=value if isinstance(value, str) else None,
            price_id=chosen.price_id if chosen else None,
            price_model=str(type(chosen.price).__struct_config__.tag) if chosen else None,
            amount_minor=amount, currency=chosen.price.currency if chosen else None,
            interval=getattr(chosen.price, "interval", None) if chosen else None,
            per_seat=bool(getattr(chosen.price, "per_seat", False)) if chosen else False,
            trial_days=module.trial_days,
            trial_available=module.trial_days is not None and buyable and key not in snap.trials_used,
            requires_unmet=[r for r in module.requires if r not in snap.modules],
        )
        covers = 0 if limit is None or limit >= needed else 1
        ranked.append(((0 if buyable else 1, covers, amount if amount is not None else 10**15, key), hint))
    return min(ranked, key=lambda r: r[0])[1] if ranked else None


