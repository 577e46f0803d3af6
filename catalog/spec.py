"""The catalog document: what a TOML catalog file (or the API body) holds, bounded everywhere.

Pure: msgspec and the standard library only. ``parse_toml`` decodes and checks the shape,
``validate`` checks the meaning (references, cycles, currencies, duplicates) and names each culprit.
"""

from __future__ import annotations

import itertools
import tomllib
from collections import Counter
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from app.errors import FieldError

Key = Annotated[str, Meta(min_length=1, max_length=60, pattern=r"^[a-z0-9][a-z0-9_.-]*$",
                          description="A stable lower-case key such as 'advanced_charts'")]
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]
Text = Annotated[str, Meta(max_length=2000, pattern=r"^[^\x00]*$")]
ConfigValue = Annotated[str, Meta(max_length=500, pattern=r"^[^\x00]*$")]
Currency = Annotated[str, Meta(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$",
                                description="ISO 4217 code, e.g. USD")]
AmountMinor = Annotated[int, Meta(ge=0, le=10**12, description="Integer minor units (cents)")]
Quantity = Annotated[int, Meta(ge=0, le=10**12)]
LimitValue = Annotated[int, Meta(ge=0, le=10**12)]
PerUnits = Annotated[int, Meta(ge=1, le=10**9)]
TrialDays = Annotated[int, Meta(ge=1, le=365)]
UtcTime = Annotated[datetime, Meta(tz=True)]

Effect = Literal["hidden", "visible", "purchasable", "approval_required"]
ModuleStatus = Literal["draft", "active", "retired"]
FeatureStatus = Literal["active", "retired"]
LimitPeriod = Literal["day", "week", "month", "year", "lifetime"]
Interval = Literal["month", "year"]
TierMode = Literal["graduated", "volume"]
TaxBehavior = Literal["exclusive", "inclusive"]
TaxCode = Annotated[str, Meta(min_length=6, max_length=40, pattern=r"^txcd_[0-9]{8}$",
                              description="A Stripe Tax product tax code, e.g. txcd_10103001 (SaaS, business use)")]

EFFECTS: tuple[Effect, ...] = ("hidden", "visible", "purchasable", "approval_required")
MAX_MODULES = 500
MAX_FEATURES = 1000


class Doc(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True, frozen=True):
    """Base of the document's tables: unknown keys are errors, defaults are omitted on export."""


# Features: a tagged union on ``kind``.
class FeatureBase(Doc, tag_field="kind", kw_only=True, frozen=True):
    key: Key
    name: Name
    description: Text = ""
    status: FeatureStatus = "active"


class BooleanFeature(FeatureBase, tag="boolean", kw_only=True, frozen=True):
    """On or off."""


class LimitFeature(FeatureBase, tag="limit", kw_only=True, frozen=True):
    """A quota: ``unit`` per ``period`` (e.g. 100 reports a month); modules grant the amount."""

    unit: Key
    period: LimitPeriod = "month"


class ConfigFeature(FeatureBase, tag="config", kw_only=True, frozen=True):
    """A value the product reads (a tier name, a retention); modules may override the default."""

    value: ConfigValue


Feature = BooleanFeature | LimitFeature | ConfigFeature


# Prices: a tagged union on ``model``; ``slot`` (model, interval, currency) identifies a price line.
class PriceBase(Doc, tag_field="model", kw_only=True, frozen=True):
    currency: Currency
    migrate_existing_at: UtcTime | None = None
    tax_behavior: TaxBehavior = "exclusive"  # does amount_minor include tax (inclusive) or is tax added on top


class OneTimePrice(PriceBase, tag="one_time", kw_only=True, frozen=True):
    amount_minor: AmountMinor


class RecurringPrice(PriceBase, tag="recurring", kw_only=True, frozen=True):
    interval: Interval
    amount_minor: AmountMinor
    per_seat: bool = False


class Tier(Doc, kw_only=True, frozen=True):
    """Up to ``up_to`` units (the last tier has none: unbounded) at ``unit_amount_minor`` per ``per_units``."""

    up_to: Quantity | None = None
    unit_amount_minor: AmountMinor
    flat_amount_minor: AmountMinor = 0


class MeteredPrice(PriceBase, tag="metered", kw_only=True, frozen=True):
    interval: Interval = "month"
    unit: Key
    tier_mode: TierMode = "graduated"
    included_quantity: Quantity = 0
    per_units: PerUnits = 1
    tiers: Annotated[list[Tier], Meta(min_length=1, max_length=20)]
    # a prepaid commitment per period: billed whether used or not, usage charges draw it down first
    commitment_minor: AmountMinor = 0


Price = OneTimePrice | RecurringPrice | MeteredPrice

GrantValue = bool | LimitValue | ConfigValue


class Category(Doc, kw_only=True, frozen=True):
    key: Key
    name: Name
    description: Text = ""


class Module(Doc, kw_only=True, frozen=True):
    key: Key
    name: Name
    description: Text = ""
    category: Key
    status: ModuleStatus = "active"
    trial_days: TrialDays | None = None
    tax_code: TaxCode | None = None  # Stripe Tax's product tax code; none: the vendor's default at Stripe
    requires: Annotated[list[Key], Meta(max_length=50)] = []
    excludes: Annotated[list[Key], Meta(max_length=50)] = []
    features: Annotated[dict[Key, GrantValue], Meta(max_length=100)] = {}
    prices: Annotated[list[Price], Meta(max_length=30)] = []


class Rule(Doc, kw_only=True, frozen=True):
    """Matches when every condition given matches: any of ``roles``/``segments``/``regions``,
    all of ``owns``, none of ``not_owns``. An empty condition matches everyone."""

    effect: Effect
    roles: Annotated[list[Key], Meta(max_length=50)] = []
    segments: Annotated[list[Key], Meta(max_length=50)] = []
    regions: Annotated[list[Key], Meta(max_length=50)] = []
    owns: Annotated[list[Key], Meta(max_length=50)] = []
    not_owns: Annotated[list[Key], Meta(max_length=50)] = []


class Policy(Doc, kw_only=True, frozen=True):
    """Ordered rules for one module or one category; the first matching rule decides."""

    key: Key
    module: Key | None = None
    category: Key | None = None
    description: Text = ""
    default: Effect | None = None
    rules: Annotated[list[Rule], Meta(max_length=100)] = []


class CatalogDoc(Doc, kw_only=True, frozen=True):
    """The whole catalog: the unit of plan and apply."""

    format: Literal[1] = 1
    default_effect: Effect = "purchasable"
    categories: Annotated[list[Category], Meta(max_length=100)] = []
    features: Annotated[list[Feature], Meta(max_length=MAX_FEATURES)] = []
    modules: Annotated[list[Module], Meta(max_length=MAX_MODULES)] = []
    policies: Annotated[list[Policy], Meta(max_length=MAX_MODULES)] = []


class CatalogInvalidError(ValueError):
    """The document is malformed or inconsistent; ``errors`` name each culprit by path."""

    def __init__(self, message: str, errors: list[FieldError]) -> None:
        super().__init__(message)
        self.errors = errors


def price_slot(price: Price) -> str:
    """The identity of a price line within its module: at most one current version per slot."""
    interval = getattr(price, "interval", None) or "once"
    return f"{type(price).__struct_config__.tag}:{interval}:{price.currency}"


def price_model(price: Price) -> str:
    return str(type(price).__struct_config__.tag)


def price_terms(price: Price) -> Price:
    """The price without its migration schedule: a change here is a new version."""
    return msgspec.structs.replace(price, migrate_existing_at=None)


def _field_of(exc: msgspec.ValidationError) -> tuple[str, str]:
    text = str(exc)
    message, sep, where = text.rpartition(" - at `")
    if not sep:
        return "catalog", text
    return where.rstrip("`").removeprefix("$.").removeprefix("$") or "catalog", message


def _culprit(raw: Any, field: str) -> str:
    """`` in module 'reports_pro'`` for a path such as ``modules[1].prices[0]``, when the raw entry has a key."""
    table, sep, rest = field.partition("[")
    index = rest.partition("]")[0]
    if not sep or not index.isdigit() or not isinstance(raw, dict):
        return ""
    entries = raw.get(table)
    if not isinstance(entries, list) or int(index) >= len(entries) or not isinstance(entries[int(index)], dict):
        return ""
    key = entries[int(index)].get("key")
    return f" in {table.rstrip('s').replace('categorie', 'category').replace('policie', 'policy')} {key!r}" if (
        isinstance(key, str) and len(key) <= 60) else ""


def convert(raw: Any) -> CatalogDoc:
    """Builtins (from TOML or JSON) -> a normalised document; shape errors name the field path."""
    try:
        doc = msgspec.convert(raw, CatalogDoc)
    except msgspec.ValidationError as exc:
        field, message = _field_of(exc)
        message += _culprit(raw, field)
        raise CatalogInvalidError(f"{field}: {message}", [FieldError(field=field, message=message)]) from exc
    return normalise(doc)


def parse_toml(text: str) -> CatalogDoc:
    """Parse and validate the shape of a TOML catalog (meaning is checked by ``validate``)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogInvalidError(f"TOML syntax: {exc}", [FieldError(field="toml", message=str(exc))]) from exc
    except RecursionError:  # tomllib recurses once per nested array or inline table
        message = "arrays or inline tables nest too deeply"
        raise CatalogInvalidError(f"TOML syntax: {message}", [FieldError(field="toml", message=message)]) from None
    return convert(raw)


def to_toml(doc: CatalogDoc) -> str:
    """The document as TOML (defaults omitted); ``parse_toml(to_toml(d)) == d`` for a normalised ``d``."""
    return msgspec.toml.encode(normalise(doc)).decode()


def _sorted_unique(items: list[str]) -> list[str]:
    return sorted(set(items))


def normalise(doc: CatalogDoc) -> CatalogDoc:
    """Canonical order, so two documents meaning the same thing compare equal (rule order is kept)."""
    replace = msgspec.structs.replace
    modules = [
        replace(m, requires=_sorted_unique(m.requires), excludes=_sorted_unique(m.excludes),
                features=dict(sorted(m.features.items())),
                prices=sorted(m.prices, key=price_slot))
        for m in sorted(doc.modules, key=lambda m: m.key)
    ]
    policies = [
        replace(p, rules=[replace(r, roles=_sorted_unique(r.roles), segments=_sorted_unique(r.segments),
                                  regions=_sorted_unique(r.regions), owns=_sorted_unique(r.owns),
                                  not_owns=_sorted_unique(r.not_owns)) for r in p.rules])
        for p in sorted(doc.policies, key=lambda p: p.key)
    ]
    return replace(doc, categories=sorted(doc.categories, key=lambda c: c.key),
                   features=sorted(doc.features, key=lambda f: f.key), modules=modules, policies=policies)


def find_requires_cycle(requires: dict[str, list[str]]) -> list[str] | None:
    """A cycle in the ``requires`` graph as a closed path (``[a, b, a]``), or None; deterministic."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(requires.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(requires):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def _duplicates(keys: list[str]) -> list[str]:
    return sorted(k for k, n in Counter(keys).items() if n > 1)


def _check_grant(feature: Feature | None, value: GrantValue) -> str | None:
    if feature is None:
        return "unknown feature"
    if isinstance(feature, BooleanFeature):
        return None if value is True else "a boolean feature is granted with 'true'"
    if isinstance(feature, LimitFeature):
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"a limit feature is granted with a number of {feature.unit} per {feature.period}"
    ok = isinstance(value, str) or value is True
    return None if ok else "a config feature is granted with a text value (or 'true' for its default)"


def _check_price(where: str, price: Price, is_currency: Any) -> list[FieldError]:
    errors = []
    if not is_currency(price.currency):
        errors.append(FieldError(field=f"{where}.currency", message=f"unknown currency {price.currency!r}"))
    if isinstance(price, MeteredPrice):
        bounds = [t.up_to for t in price.tiers]
        if bounds[-1] is not None:
            errors.append(FieldError(field=f"{where}.tiers", message="the last tier must have no 'up_to'"))
        inner = bounds[:-1]
        if any(b is None for b in inner) or any(
                a is not None and b is not None and a >= b for a, b in itertools.pairwise(inner)):
            errors.append(FieldError(field=f"{where}.tiers",
                                     message="tiers need strictly increasing 'up_to' bounds"))
    return errors


def validate(doc: CatalogDoc, *, is_currency: Any) -> list[FieldError]:
    """Every inconsistency of a (normalised) document, each naming its culprit; empty when valid."""
    errors: list[FieldError] = []
    for table, keys in (("categories", [c.key for c in doc.categories]), ("features", [f.key for f in doc.features]),
                        ("modules", [m.key for m in doc.modules]), ("policies", [p.key for p in doc.policies])):
        errors += [FieldError(field=f"{table}.{k}", message=f"duplicate key {k!r}") for k in _duplicates(keys)]
    categories = {c.key for c in doc.categories}
    features = {f.key: f for f in doc.features}
    modules = {m.key for m in doc.modules}
    for m in doc.modules:
        where = f"modules.{m.key}"
        if m.category not in categories:
            errors.append(FieldError(field=f"{where}.category", message=f"unknown category {m.category!r}"))
        for fkey, value in m.features.items():
            if (problem := _check_grant(features.get(fkey), value)) is not None:
                errors.append(FieldError(field=f"{where}.features.{fkey}",
                                         message=f"module {m.key!r}: {problem} {fkey!r}"))
        for rel in ("requires", "excludes"):
            for other in getattr(m, rel):
                if other == m.key:
                    errors.append(FieldError(field=f"{where}.{rel}", message=f"module {m.key!r} {rel} itself"))
                elif other not in modules:
                    errors.append(FieldError(field=f"{where}.{rel}",
                                             message=f"module {m.key!r} {rel} unknown module {other!r}"))
        if both := sorted(set(m.requires) & set(m.excludes)):
            errors.append(FieldError(field=f"{where}.excludes",
                                     message=f"module {m.key!r} both requires and excludes {', '.join(both)}"))
        slots = [price_slot(p) for p in m.prices]
        for slot in _duplicates(slots):
            errors.append(FieldError(field=f"{where}.prices",
                                     message=f"two current versions of price {slot!r} of module {m.key!r}"))
        for p in m.prices:
            errors += _check_price(f"{where}.prices.{price_slot(p)}", p, is_currency)
    cycle = find_requires_cycle({m.key: [r for r in m.requires if r in modules] for m in doc.modules})
    if cycle:
        errors.append(FieldError(field=f"modules.{cycle[0]}.requires",
                                 message=f"requires cycle: {' -> '.join(cycle)}"))
    errors += _validate_policies(doc, modules, categories)
    return errors


def _validate_policies(doc: CatalogDoc, modules: set[str], categories: set[str]) -> list[FieldError]:
    errors: list[FieldError] = []
    targets: dict[str, str] = {}
    for p in doc.policies:
        where = f"policies.{p.key}"
        if (p.module is None) == (p.category is None):
            errors.append(FieldError(field=where, message=f"policy {p.key!r} needs exactly one of module, category"))
            continue
        if p.module is not None and p.module not in modules:
            errors.append(FieldError(field=f"{where}.module",
                                     message=f"policy {p.key!r} references unknown module {p.module!r}"))
        if p.category is not None and p.category not in categories:
            errors.append(FieldError(field=f"{where}.category",
                                     message=f"policy {p.key!r} references unknown category {p.category!r}"))
        target = f"module {p.module!r}" if p.module is not None else f"category {p.category!r}"
        if target in targets:
            errors.append(FieldError(field=where, message=f"{target} already has policy {targets[target]!r}"))
        targets.setdefault(target, p.key)
        for i, rule in enumerate(p.rules, start=1):
            for rel in ("owns", "not_owns"):
                for other in getattr(rule, rel):
                    if other not in modules:
                        errors.append(FieldError(
                            field=f"{where}.rules[{i}].{rel}",
                            message=f"policy {p.key!r} rule {i} references unknown module {other!r}"))
    return errors


def load(text_or_raw: str | dict[str, Any], *, is_currency: Any) -> CatalogDoc:
    """Parse (TOML text) or convert (builtins), then validate; raises CatalogInvalidError."""
    doc = parse_toml(text_or_raw) if isinstance(text_or_raw, str) else convert(text_or_raw)
    errors = validate(doc, is_currency=is_currency)
    if errors:
        head = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise CatalogInvalidError(f"The catalog is not valid: {head}{more}", errors)
    return doc
