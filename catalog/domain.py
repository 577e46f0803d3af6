"""Pure catalog decisions: availability evaluation, the plan (diff) of a document against the live
catalog, and the offers a user sees. Plain values in, plain values out; no litestar, no sqlalchemy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import msgspec

from app.errors import FieldError
from catalog.spec import (
    EFFECTS,
    CatalogDoc,
    ConfigFeature,
    Effect,
    Feature,
    LimitFeature,
    MeteredPrice,
    Module,
    OneTimePrice,
    Policy,
    Price,
    RecurringPrice,
    Rule,
    Tier,
    price_model,
    price_slot,
    price_terms,
)

BUYABLE: frozenset[Effect] = frozenset({"purchasable", "approval_required"})
assert set(EFFECTS) >= BUYABLE


# ---------------------------------------------------------------------------------------------
# Live catalog as plain data


@dataclass(frozen=True)
class LivePrice:
    """One stored price version."""

    price_id: str
    module: str
    version: int
    price: Price
    is_current: bool
    revision: int
    created_at: datetime
    superseded_at: datetime | None = None

    @property
    def slot(self) -> str:
        return price_slot(self.price)


@dataclass(frozen=True)
class Live:
    """The live catalog: the document it corresponds to, plus price version bookkeeping.

    ``doc`` holds every feature and module ever applied (absent ones as retired) with each module's
    current prices; ``prices`` maps (module, slot) to the current version; ``last_version`` to the
    highest version ever stored for that slot (so numbering continues after a price ended).
    """

    revision: int
    doc: CatalogDoc
    prices: dict[tuple[str, str], LivePrice] = field(default_factory=dict)
    last_version: dict[tuple[str, str], int] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Availability


@dataclass(frozen=True)
class Audience:
    """Who is asking: the user's roles, the account's segment and region, and what the user owns."""

    roles: frozenset[str]
    segment: str
    region: str
    owned: frozenset[str] = frozenset()


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """An availability effect and why: which policy and rule (1-based) decided, or the default."""

    effect: Effect
    reason: str
    policy: str | None = None
    rule: int | None = None


def rule_matches(rule: Rule, who: Audience) -> bool:
    """Every condition given must hold; an empty condition matches anyone."""
    return (
        (not rule.roles or bool(who.roles & set(rule.roles)))
        and (not rule.segments or who.segment in rule.segments)
        and (not rule.regions or who.region in rule.regions)
        and all(m in who.owned for m in rule.owns)
        and not any(m in who.owned for m in rule.not_owns)
    )


def describe_rule(rule: Rule) -> str:
    parts = [f"{name}={'|'.join(values)}" for name, values in (
        ("role", rule.roles), ("segment", rule.segments), ("region", rule.regions), ("owns", rule.owns),
        ("not_owns", rule.not_owns)) if values]
    return ", ".join(parts) or "everyone"


def evaluate(policies: Sequence[Policy], default_effect: Effect, who: Audience) -> Decision:
    """Deterministic: policies in precedence order (module before category); in each, the first
    matching rule wins, then the policy's default if it has one; else the catalog default."""
    for policy in policies:
        for i, rule in enumerate(policy.rules, start=1):
            if rule_matches(rule, who):
                return Decision(effect=rule.effect, policy=policy.key, rule=i,
                                reason=f"{rule.effect}: rule {i} of policy {policy.key!r} ({describe_rule(rule)})")
        if policy.default is not None:
            return Decision(effect=policy.default, policy=policy.key,
                            reason=f"{policy.default}: default of policy {policy.key!r} (no rule matched)")
    return Decision(effect=default_effect, reason=f"{default_effect}: catalog default (no policy decided)")


def policies_for(doc: CatalogDoc, module: Module) -> list[Policy]:
    """The module's policy first, then its category's (at most one each, by validation)."""
    by_module = [p for p in doc.policies if p.module == module.key]
    by_category = [p for p in doc.policies if p.category == module.category and p.module is None]
    return by_module + by_category


def availability(doc: CatalogDoc, module: Module, who: Audience, *, has_price: bool = True) -> Decision:
    """Policy evaluation plus the catalog's own limits: drafts and unowned retired modules are hidden,
    exclusions and a missing price in the buyer's currency make a module visible but not buyable."""
    if module.status == "draft":
        return Decision(effect="hidden", reason="hidden: module is a draft")
    if module.status == "retired":
        if module.key in who.owned:
            return Decision(effect="visible", reason="visible: retired (no longer sold); you keep it")
        return Decision(effect="hidden", reason="hidden: module is retired")
    decision = evaluate(policies_for(doc, module), doc.default_effect, who)
    if decision.effect not in BUYABLE:
        return decision
    owned_modules = {m.key: m for m in doc.modules if m.key in who.owned}
    clash = sorted({k for k in module.excludes if k in who.owned}
                   | {k for k, m in owned_modules.items() if module.key in m.excludes})
    if clash:
        return msgspec.structs.replace(decision, effect="visible",
                                       reason=f"visible: excluded by owned module(s) {', '.join(clash)}")
    if not has_price:
        return msgspec.structs.replace(decision, effect="visible",
                                       reason="visible: no price in the account's currency")
    return decision


# ---------------------------------------------------------------------------------------------
# Price views


class PriceView(msgspec.Struct, frozen=True, kw_only=True):
    """A price version, flattened for the API (fields not used by its model are null)."""

    id: str
    module: str
    slot: str
    version: int
    current: bool
    model: str
    currency: str
    interval: str | None
    amount_minor: int | None
    per_seat: bool
    unit: str | None
    tier_mode: str | None
    included_quantity: int | None
    per_units: int | None
    tiers: list[Tier] | None
    migrate_existing_at: datetime | None
    revision: int
    created_at: datetime
    superseded_at: datetime | None
    commitment_minor: int | None = None


def price_view(lp: LivePrice) -> PriceView:
    p = lp.price
    metered = p if isinstance(p, MeteredPrice) else None
    return PriceView(
        id=lp.price_id, module=lp.module, slot=lp.slot, version=lp.version, current=lp.is_current,
        model=price_model(p), currency=p.currency, interval=getattr(p, "interval", None),
        amount_minor=p.amount_minor if isinstance(p, OneTimePrice | RecurringPrice) else None,
        per_seat=isinstance(p, RecurringPrice) and p.per_seat,
        unit=metered.unit if metered else None, tier_mode=metered.tier_mode if metered else None,
        included_quantity=metered.included_quantity if metered else None,
        per_units=metered.per_units if metered else None, tiers=list(metered.tiers) if metered else None,
        migrate_existing_at=p.migrate_existing_at, revision=lp.revision, created_at=lp.created_at,
        superseded_at=lp.superseded_at, commitment_minor=metered.commitment_minor if metered else None,
    )


def headline_amount(price: Price | None) -> int | None:
    """The single amount of a flat price (one-time, recurring); None for metered or no price."""
    return price.amount_minor if isinstance(price, OneTimePrice | RecurringPrice) else None


# ---------------------------------------------------------------------------------------------
# Offers


class Unlock(msgspec.Struct, frozen=True, kw_only=True):
    feature: str
    name: str
    kind: str
    limit: int | None = None
    unit: str | None = None
    period: str | None = None
    value: str | None = None


class Offer(msgspec.Struct, frozen=True, kw_only=True):
    module: str
    name: str
    description: str
    category: str
    status: str
    effect: Effect
    reason: str
    policy: str | None
    rule: int | None
    owned: bool
    unlocks: list[Unlock]
    prices: list[PriceView]
    trial_days: int | None
    trial_available: bool
    requires_unmet: list[str]


def unlocks(module: Module, features: dict[str, Feature]) -> list[Unlock]:
    out = []
    for key, value in module.features.items():
        f = features.get(key)
        if f is None:
            continue
        if isinstance(f, LimitFeature):
            limit = value if isinstance(value, int) and not isinstance(value, bool) else None
            out.append(Unlock(feature=key, name=f.name, kind="limit", limit=limit, unit=f.unit, period=f.period))
        elif isinstance(f, ConfigFeature):
            out.append(Unlock(feature=key, name=f.name, kind="config",
                              value=value if isinstance(value, str) else f.value))
        else:
            out.append(Unlock(feature=key, name=f.name, kind="boolean"))
    return out


def offers(live: Live, who: Audience, *, currency: str, trials_used: frozenset[str] = frozenset()) -> list[Offer]:
    """Every module this audience may see (never hidden ones), in category then key order; ``trials_used``:
    modules whose trial this user (or its account) already had, so it is not offered again."""
    doc = live.doc
    features = {f.key: f for f in doc.features}
    result = []
    for module in sorted(doc.modules, key=lambda m: (m.category, m.key)):
        current = [lp for (mk, _), lp in sorted(live.prices.items()) if mk == module.key]
        in_currency = [lp for lp in current if lp.price.currency == currency]
        decision = availability(doc, module, who, has_price=bool(in_currency) or not current)
        if decision.effect == "hidden":
            continue
        owned = module.key in who.owned
        result.append(Offer(
            module=module.key, name=module.name, description=module.description, category=module.category,
            status=module.status, effect=decision.effect, reason=decision.reason, policy=decision.policy,
            rule=decision.rule, owned=owned, unlocks=unlocks(module, features),
            prices=[price_view(lp) for lp in in_currency], trial_days=module.trial_days,
            trial_available=(module.trial_days is not None and not owned and decision.effect in BUYABLE
                             and module.key not in trials_used),
            requires_unmet=[r for r in module.requires if r not in who.owned],
        ))
    return result


# ---------------------------------------------------------------------------------------------
# Plan: the document against the live catalog

ChangeKind = Literal["setting", "category", "feature", "module", "price", "policy"]
ChangeAction = Literal["added", "changed", "retired", "removed", "new_version", "schedule_changed", "ended"]


class PriceOwner(msgspec.Struct, frozen=True, kw_only=True):
    """An account (and user, for per-user grants) holding a price version."""

    account_id: str
    user_id: str | None = None
    price_id: str
    holding: str | None = None  # the subscription (or metered plan) that pays the price
    quantity: int = 1
    amount_minor_before: int | None = None  # what it pays a period now (None: metered, priced by usage)
    amount_minor_after: int | None = None  # what it will pay at the new version


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a plan; price lines carry versions, amounts, the schedule and who it affects."""

    kind: ChangeKind
    action: ChangeAction
    key: str
    detail: str
    fields: list[str] = []
    module: str | None = None
    slot: str | None = None
    from_version: int | None = None
    to_version: int | None = None
    currency: str | None = None
    amount_minor_before: int | None = None
    amount_minor_after: int | None = None
    migrate_existing_at: datetime | None = None
    affected_owners: list[PriceOwner] = []


def _changed_fields(a: msgspec.Struct, b: msgspec.Struct) -> list[str]:
    if type(a) is not type(b):
        return ["kind"]
    return [f for f in a.__struct_fields__ if getattr(a, f) != getattr(b, f)]


def _keyed_diff(kind: ChangeKind, live: dict[str, msgspec.Struct], desired: dict[str, msgspec.Struct],
                *, retire: bool) -> list[Change]:
    out = []
    for key in sorted(live.keys() | desired.keys()):
        old, new = live.get(key), desired.get(key)
        if old is None:
            out.append(Change(kind=kind, action="added", key=key, detail=f"new {kind} {key!r}"))
        elif new is None:
            if not retire:
                out.append(Change(kind=kind, action="removed", key=key, detail=f"{kind} {key!r} removed"))
            elif getattr(old, "status", None) != "retired":
                out.append(Change(kind=kind, action="retired", key=key,
                                  detail=f"{kind} {key!r} is no longer in the catalog: retired (owners keep it)"))
        elif old != new:
            fields = _changed_fields(old, new)
            out.append(Change(kind=kind, action="changed", key=key, fields=fields,
                              detail=f"{kind} {key!r} changed: {', '.join(fields)}"))
    return out


def _price_changes(live: Live, module: Module) -> list[Change]:
    out = []
    desired = {price_slot(p): p for p in module.prices}
    current = {slot: lp for (mk, slot), lp in live.prices.items() if mk == module.key}
    for slot in sorted(desired.keys() | current.keys()):
        new, old = desired.get(slot), current.get(slot)
        key = f"{module.key}/{slot}"

        def change(*, key: str = key, slot: str = slot, **fields: Any) -> Change:
            return Change(kind="price", key=key, module=module.key, slot=slot, **fields)

        if new is None:
            assert old is not None
            out.append(change(action="ended", from_version=old.version, currency=old.price.currency,
                              amount_minor_before=headline_amount(old.price),
                              detail=f"price {key} v{old.version} ends: not sold any more; owners keep it"))
            continue
        if old is not None and price_terms(old.price) == price_terms(new):
            if old.price.migrate_existing_at != new.migrate_existing_at:
                out.append(change(action="schedule_changed", from_version=old.version, to_version=old.version,
                                  currency=new.currency, migrate_existing_at=new.migrate_existing_at,
                                  detail=f"price {key} v{old.version}: existing owners move at "
                                         f"{_when(new.migrate_existing_at)}"))
            continue
        version = live.last_version.get((module.key, slot), 0) + 1
        before = headline_amount(old.price) if old else None
        after = headline_amount(new)
        if old is None:
            detail = f"price {key} v{version}: new price line"
        elif new.migrate_existing_at is None:
            detail = f"price {key} v{old.version} -> v{version} for new purchases; existing owners keep v{old.version}"
        else:
            detail = (f"price {key} v{old.version} -> v{version}; existing owners move at "
                      f"{_when(new.migrate_existing_at)}")
        out.append(change(action="added" if old is None else "new_version",
                          from_version=old.version if old else None, to_version=version, currency=new.currency,
                          amount_minor_before=before, amount_minor_after=after,
                          migrate_existing_at=new.migrate_existing_at, detail=detail))
    return out


def _when(at: datetime | None) -> str:
    return at.isoformat() if at is not None else "no date (schedule removed)"


def plan(live: Live, desired: CatalogDoc) -> list[Change]:
    """What applying ``desired`` (valid, normalised) would change; empty when already live."""
    changes: list[Change] = []
    if live.doc.default_effect != desired.default_effect:
        changes.append(Change(kind="setting", action="changed", key="default_effect", fields=["default_effect"],
                              detail=f"default_effect {live.doc.default_effect} -> {desired.default_effect}"))
    changes += _keyed_diff("category", {c.key: c for c in live.doc.categories},
                           {c.key: c for c in desired.categories}, retire=False)
    changes += _keyed_diff("feature", {f.key: f for f in live.doc.features},
                           {f.key: f for f in desired.features}, retire=True)
    strip = msgspec.structs.replace
    changes += _keyed_diff("module", {m.key: strip(m, prices=[]) for m in live.doc.modules},
                           {m.key: strip(m, prices=[]) for m in desired.modules}, retire=True)
    for module in desired.modules:
        changes += _price_changes(live, module)
    changes += _keyed_diff("policy", {p.key: p for p in live.doc.policies},
                           {p.key: p for p in desired.policies}, retire=False)
    return changes


def check_schedules(changes: Sequence[Change], now: datetime) -> list[FieldError]:
    """A new or moved migration date must lie ahead, so owners can be told before it happens."""
    return [
        FieldError(field=f"modules.{c.module}.prices.{c.slot}.migrate_existing_at",
                   message=f"price {c.key}: migrate_existing_at {c.migrate_existing_at.isoformat()} is not in the "
                           "future")
        for c in changes
        if c.action in ("new_version", "schedule_changed") and c.migrate_existing_at is not None
        and c.migrate_existing_at <= now
    ]


def summarise(changes: Sequence[Change]) -> dict[str, int]:
    """Counts per ``kind.action`` (for the revision record and the event)."""
    counts: dict[str, int] = {}
    for c in changes:
        counts[f"{c.kind}.{c.action}"] = counts.get(f"{c.kind}.{c.action}", 0) + 1
    return dict(sorted(counts.items()))


_MARKS = {"added": "+", "changed": "~", "new_version": "~", "schedule_changed": "~", "retired": "-", "removed": "-",
          "ended": "-"}


def render_plan(base_revision: int, changes: Sequence[Change]) -> str:
    """The plan as text for a terminal (one line per change, owners indented)."""
    if not changes:
        return f"No changes: the live catalog (revision {base_revision}) already matches."
    lines = [f"Plan against revision {base_revision}: {len(changes)} change(s)"]
    for c in changes:
        lines.append(f"  {_MARKS[c.action]} {c.kind:<8} {c.detail}")
        if c.amount_minor_before is not None or c.amount_minor_after is not None:
            lines.append(f"      amount_minor: {c.amount_minor_before} -> {c.amount_minor_after} {c.currency}")
        if c.migrate_existing_at is not None:
            lines.append(f"      affects {len(c.affected_owners)} existing owner(s)")
            lines += [f"        account {o.account_id} user {o.user_id or '-'} on {o.price_id}"
                      for o in c.affected_owners]
    return "\n".join(lines)


class MatrixCell(msgspec.Struct, frozen=True, kw_only=True):
    module: str
    role: str
    effect: Effect
    reason: str
    policy: str | None
    rule: int | None


def matrix(live: Live, *, roles: Sequence[str], segment: str, region: str, currency: str | None) -> list[MatrixCell]:
    """Availability of every module for one role at a time (nothing owned), decided as offers decide it."""
    cells = []
    for module in sorted(live.doc.modules, key=lambda m: (m.category, m.key)):
        current = [lp for (mk, _), lp in sorted(live.prices.items()) if mk == module.key]
        has_price = currency is None or not current or any(lp.price.currency == currency for lp in current)
        for role in roles:
            who = Audience(roles=frozenset({role}), segment=segment, region=region)
            d = availability(live.doc, module, who, has_price=has_price)
            cells.append(MatrixCell(module=module.key, role=role, effect=d.effect, reason=d.reason, policy=d.policy,
                                    rule=d.rule))
    return cells


def roles_named(doc: CatalogDoc) -> list[str]:
    """Every role the availability rules name, sorted."""
    return sorted({r for p in doc.policies for rule in p.rules for r in rule.roles})
