"""Schema-vs-column gate: whatever a request body accepts fits the column that stores it.

The gate walks the msgspec type of every route's request body (nested structs, lists, dicts and unions
included) and, for each string or integer field, the columns named in STORED:
  * a string's max_length (the longest literal for a Literal) is at most the varchar length; text, arrays
    of text and JSONB have no length to exceed; a string with no max_length may only go to those;
  * an integer's bounds lie inside the column's range (smallint, integer, bigint); an unbounded integer
    (msgspec accepts up to 2**64 - 1) fits no integer column.
Every field is declared: in STORED (where it lands) or in NOT_STORED (why it is never stored as sent).
A struct name alone stands for all its fields (a document kept whole in one JSONB column).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from litestar import Litestar
from msgspec import inspect as mi
from sqlalchemy import BigInteger, Integer, SmallInteger, String, Table
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.types import TypeDecorator

# "Struct.field" (or "Struct") -> the "table.column"s it is written to.
STORED: dict[str, tuple[str, ...]] = {
    # accounts and users
    "AccountUpsert.external_id": ("accounts.external_id",), "AccountUpsert.name": ("accounts.name",),
    "AccountUpsert.segment": ("accounts.segment", "sug_segment_stats.segment", "sug_segment_pairs.segment"),
    "AccountUpsert.region": ("accounts.region",), "AccountUpsert.currency": ("accounts.currency",),
    "AccountUpsert.allowed_origins": ("accounts.allowed_origins",),
    "AccountUpsert.discount_bps": ("accounts.discount_bps",),
    "AccountUpsert.payment_terms_days": ("accounts.payment_terms_days",),
    "AccountUpsert.sales_team": ("accounts.sales_team", "sales_credits.team"),
    "AccountUpsert.sales_rep": ("accounts.sales_rep", "sales_credits.rep"),
    "UserUpsert.external_id": ("users.external_id",), "UserUpsert.email": ("users.email",),
    "UserUpsert.name": ("users.name",), "UserUpsert.roles": ("users.roles", "sug_peer_stats.role"),
    "UserUpsert.cost_center": ("users.cost_center",),
    "UserUpsert.billing_country": ("users.billing_country",),
    "AccountUpsert.tax_status": ("accounts.tax_status",),
    "BillingAddress": ("accounts.billing_address",), "TaxId": ("accounts.tax_ids",),
    "ApiKeyCreate.name": ("api_keys.name",), "ApiKeyCreate.scopes": ("api_keys.scopes",),
    # budgets, guardrails, orders
    "BudgetCreate.name": ("budgets.name",), "BudgetCreate.currency": ("budgets.currency",),
    "BudgetCreate.amount_minor": ("budgets.amount_minor", "budget_periods.amount_minor"),
    "BudgetCreate.cost_center": ("budgets.cost_center",), "BudgetCreate.anchor_day": ("budgets.anchor_day",),
    "BudgetUpdate.name": ("budgets.name",),
    "BudgetUpdate.amount_minor": ("budgets.amount_minor", "budget_periods.amount_minor"),
    "GuardrailPolicy": ("guardrail_versions.policy",), "RoleRule": ("guardrail_versions.policy",),
    "Override": ("guardrail_versions.policy",),
    "QuoteItemIn.quantity": ("quotes.lines", "subscriptions.quantity"),
    "OrderCreate.reason": ("orders.reason", "approvals.reason"),
    "PayIn.payment_method_id": ("card_payments.payment_method_id",),
    "ProvisionAck.status": ("orders.provision_status",), "ProvisionAck.note": ("orders.provision_note",),
    "RefundIn.note": ("order_refunds.note",), "RefundIn.amount_minor": ("order_refunds.amount_minor",),
    "NoteIn.note": ("approvals.decision_note",),
    "CloseRequest.period": ("statements.period",),
    "SubscriptionUpdate.seats": ("subscriptions.quantity",),
    # the catalog document
    "CatalogDoc.default_effect": ("catalog_settings.value",),
    "Category.key": ("catalog_categories.key",), "Category.name": ("catalog_categories.name",),
    "Category.description": ("catalog_categories.description",),
    **{f"{kind}Feature.{field}": column for kind in ("Boolean", "Limit", "Config") for field, column in (
        ("key", ("catalog_features.key", "catalog_module_features.feature_key")), ("name", ("catalog_features.name",)),
        ("description", ("catalog_features.spec",)), ("status", ("catalog_features.status",)))},
    "LimitFeature.unit": ("catalog_features.spec",), "LimitFeature.period": ("catalog_features.spec",),
    "ConfigFeature.value": ("catalog_features.spec", "catalog_module_features.config_value"),
    "Module.key": ("catalog_modules.key", "catalog_module_features.module_key", "catalog_prices.module_key"),
    "Module.name": ("catalog_modules.name",), "Module.description": ("catalog_modules.description",),
    "Module.category": ("catalog_modules.category",), "Module.status": ("catalog_modules.status",),
    "Module.trial_days": ("catalog_modules.trial_days",), "Module.tax_code": ("catalog_modules.tax_code",),
    "Module.requires": ("catalog_modules.requires",),
    "Module.excludes": ("catalog_modules.excludes",),
    "Module.features.keys": ("catalog_module_features.feature_key",),
    "Module.features.values": ("catalog_module_features.limit_value", "catalog_module_features.config_value"),
    **{f"{kind}Price.currency": ("catalog_prices.currency",) for kind in ("OneTime", "Recurring", "Metered")},
    "OneTimePrice.amount_minor": ("catalog_prices.amount_minor",),
    "RecurringPrice.amount_minor": ("catalog_prices.amount_minor",),
    "RecurringPrice.interval": ("catalog_prices.spec",), "RecurringPrice.tax_behavior": ("catalog_prices.spec",),
    "OneTimePrice.tax_behavior": ("catalog_prices.spec",), "MeteredPrice": ("catalog_prices.spec",),
    "Tier": ("catalog_prices.spec",),
    "Policy.key": ("catalog_policies.key",), "Policy.module": ("catalog_policies.module_key",),
    "Policy.category": ("catalog_policies.category",), "Policy.description": ("catalog_policies.spec",),
    "Policy.default": ("catalog_policies.spec",), "Rule": ("catalog_policies.spec",),
    # suggestions
    "FeedbackIn.action": ("sug_feedback.action",), "SuggestionRequest.surface": ("sug_impressions.surface",),
    "TriggerIn.kind": ("sug_impressions.trigger",),
    # webhooks
    **{f"WebhookEndpoint{verb}.{field}": (f"webhook_endpoints.{field}",) for verb in ("Create", "Update")
       for field in ("url", "event_types", "description")},
    # entitlements
    "GrantCreate.module": ("ent_grants.module",), "GrantCreate.source_ref": ("ent_grants.source_ref",),
    "GrantCreate.source": ("ent_grants.source",), "GrantCreate.seats": ("ent_grants.seats",),
    "GrantRevoke.reason": ("ent_grants.revoke_reason",),
    "UsageEventIn.event_id": ("ent_usage_events.event_id",),
    "UsageEventIn.feature": ("ent_usage_events.feature", "ent_usage_counters.feature", "ent_demand_signals.feature"),
    "UsageEventIn.quantity": ("ent_usage_events.quantity", "ent_usage_counters.used"),
    "UsageEventIn.kind": ("ent_usage_events.kind",), "UsageEventIn.properties": ("ent_usage_events.properties",),
    "CheckItem.feature": ("ent_demand_signals.feature",),
    "TrialStart.module": ("ent_trials.module",),
}

_LOOKED_UP = "names an existing object (an external id or our id); the stored value is the found object's"
_CATALOG_KEY = "matched against the live catalog; what is stored is the catalog's own key"
# "Struct.field", "*.field" or "Struct" -> why the value is never stored as sent.
NOT_STORED: dict[str, str] = {
    "*.user": _LOOKED_UP, "SessionTokenCreate.account": _LOOKED_UP, "OrderCreate.quote_id": _LOOKED_UP,
    "ReplayEvent.event_id": _LOOKED_UP, "ApiKeyCreate.accounts": _LOOKED_UP, "RecountIn.accounts": _LOOKED_UP,
    "QuoteItemIn.module": _CATALOG_KEY, "QuoteItemIn.interval": "selects one of the module's prices",
    "SessionTokenCreate.roles": "signed into the token, never stored",
    "SessionTokenCreate.ttl_seconds": "becomes the token's expiry time",
    "GuardrailsImport.toml": "parsed into a GuardrailPolicy (checked as that struct)",
    "CatalogSource.toml": "parsed into a CatalogDoc (checked as that struct)",
    "CatalogSource.expected_revision": "compared with the live revision, never stored",
    "CatalogDoc.format": "the document format version, checked and dropped",
    "SimulateRequest.days": "the window of the simulation, never stored",
    "SuggestionRequest.limit": "how many suggestions to return", "TriggerIn.feature": "a ranking signal only",
    "SecretRotate.overlap_seconds": "becomes the previous secret's expiry time",
    "CheckItem.quantity": "the quantity asked about, never stored",
}


def _int_range(column_type: Any) -> tuple[int, int] | None:
    """The values an integer column holds (int2, int4, int8); None for other types."""
    if isinstance(column_type, SmallInteger):
        bits = 15
    elif isinstance(column_type, BigInteger):
        bits = 63
    elif isinstance(column_type, Integer):
        bits = 31
    else:
        return None
    return -(2**bits), 2**bits - 1


def body_types(app: Litestar) -> dict[type, list[str]]:
    """Every request body type the app decodes, with the routes that take it."""
    found: dict[type, list[str]] = {}
    for route in app.routes:
        for method, (handler, _) in getattr(route, "route_handler_map", {}).items():
            data = handler.parsed_fn_signature.parameters.get("data")
            if data is not None:
                found.setdefault(data.annotation, []).append(f"{method} {route.path}")
    return found


def _leaves(t: mi.Type) -> Iterator[mi.Type]:
    """The scalar types a field can hold (through metadata, containers and unions), and nested structs."""
    if isinstance(t, mi.Metadata):
        yield from _leaves(t.type)
    elif isinstance(t, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        yield from _leaves(t.item_type)
    elif isinstance(t, mi.DictType):
        yield from _leaves(t.key_type)
        yield from _leaves(t.value_type)
    elif isinstance(t, mi.UnionType):
        for member in t.types:
            yield from _leaves(member)
    else:
        yield t


def _field_parts(t: mi.Type) -> list[tuple[str, mi.Type]]:
    """A dict field is two fields for the mapping (``.keys`` and ``.values``): they land in different columns."""
    while isinstance(t, mi.Metadata):
        t = t.type
    if isinstance(t, mi.UnionType) and len(t.types) == 2 and any(isinstance(m, mi.NoneType) for m in t.types):
        return _field_parts(next(m for m in t.types if not isinstance(m, mi.NoneType)))
    if isinstance(t, mi.DictType):
        return [(".keys", t.key_type), (".values", t.value_type)]
    return [("", t)]


def struct_fields(roots: list[type]) -> tuple[dict[str, list[mi.Type]], set[str]]:
    """``"Struct.field"`` -> its string/integer leaf types, over every struct reachable from the roots;
    and the names two different structs share (the mapping could not tell them apart)."""
    out: dict[str, list[mi.Type]] = {}
    seen: dict[str, type] = {}
    clashes: set[str] = set()
    todo = [mi.type_info(root) for root in roots]
    while todo:
        struct = todo.pop()
        if not isinstance(struct, mi.StructType):
            continue
        name = struct.cls.__name__
        if name in seen:
            if seen[name] is not struct.cls:
                clashes.add(name)
            continue
        seen[name] = struct.cls
        for field in struct.fields:
            for suffix, part in _field_parts(field.type):
                leaves = list(_leaves(part))
                todo.extend(leaf for leaf in leaves if isinstance(leaf, mi.StructType))
                out[f"{name}.{field.name}{suffix}"] = [leaf for leaf in leaves if isinstance(
                    leaf, mi.StrType | mi.IntType | mi.LiteralType)]
    return out, clashes


def _is_text(leaf: mi.Type) -> bool:
    return isinstance(leaf, mi.StrType) or (isinstance(leaf, mi.LiteralType) and isinstance(leaf.values[0], str))


def _column_kind(column_type: Any) -> str:
    if isinstance(column_type, JSONB):
        return "any"
    if isinstance(column_type, ARRAY):
        column_type = column_type.item_type
    return "text" if isinstance(column_type, String) else "int" if _int_range(column_type) else "other"


def _fits(where: str, leaf: mi.Type, target: str, column_type: Any) -> str | None:
    """Why values of ``leaf`` may not fit the column (None when they always do)."""
    if isinstance(column_type, JSONB):
        return None
    if isinstance(column_type, ARRAY):
        column_type = column_type.item_type
    values = leaf.values if isinstance(leaf, mi.LiteralType) else ()
    if _is_text(leaf):
        longest = max(len(str(v)) for v in values) if values else getattr(leaf, "max_length", None)
        if column_type.length is not None and (longest is None or longest > column_type.length):
            return (f"{where}: accepts strings of {'any length' if longest is None else f'up to {longest} chars'}"
                    f" but {target} is varchar({column_type.length})")
        return None
    span = _int_range(column_type)
    assert span is not None
    if values:
        lo, hi = min(values), max(values)
    else:
        assert isinstance(leaf, mi.IntType)
        lo = leaf.ge if leaf.ge is not None else (leaf.gt + 1 if leaf.gt is not None else None)
        hi = leaf.le if leaf.le is not None else (leaf.lt - 1 if leaf.lt is not None else None)
    if lo is None or hi is None or lo < span[0] or hi > span[1]:
        return f"{where}: accepts integers in [{lo}, {hi}] but {target} holds [{span[0]}, {span[1]}] ({column_type})"
    return None


def _check_leaf(where: str, leaf: mi.Type, columns: dict[str, Any]) -> list[str]:
    """A leaf goes to the declared columns of its kind (a dict of ints and strings may fill two columns)."""
    kind = "text" if _is_text(leaf) else "int"
    matching = {t: c for t, c in columns.items() if _column_kind(c) in (kind, "any")}
    if not matching:
        names = ", ".join(f"{t} ({c})" for t, c in columns.items())
        return [f"{where}: {'a string' if kind == 'text' else 'an integer'} is stored in {names}"]
    return [p for t, c in matching.items() if (p := _fits(where, leaf, t, c)) is not None]


def check_field_limits(app: Litestar, tables: Mapping[str, Table], *, stored: Mapping[str, tuple[str, ...]] = STORED,
                       not_stored: Mapping[str, str] = NOT_STORED) -> list[str]:
    """Every field whose accepted values do not fit its column, or that is not declared, as a message."""
    fields, clashes = struct_fields(list(body_types(app)))
    problems = [f"{name}: two request structs share this name; rename one" for name in clashes]
    for where, leaves in sorted(fields.items()):
        struct, name = where.split(".", 1)
        if not leaves or where in not_stored or f"*.{name}" in not_stored or struct in not_stored:
            continue
        targets = stored.get(where) or stored.get(where.removesuffix(".keys").removesuffix(".values")) or stored.get(
            struct)
        if targets is None:
            problems.append(f"{where}: not declared; add the table.column it is stored in to STORED, or the reason "
                            "it is never stored to NOT_STORED (tests/gates/field_limits.py)")
            continue
        columns: dict[str, Any] = {}
        for target in targets:
            table_name, _, column = target.partition(".")
            table = tables.get(table_name)
            if table is None or column not in table.c:
                problems.append(f"{where}: STORED names {target}, which does not exist")
            else:
                column_type = table.c[column].type
                # a typed column (app.types.StructJSONB) is judged by the type it stores
                columns[target] = column_type.impl_instance if isinstance(column_type, TypeDecorator) else column_type
        for leaf in leaves if columns else []:
            problems.extend(_check_leaf(where, leaf, columns))
    structs = {key.split(".", 1)[0] for key in fields}
    for key in [*stored, *not_stored]:
        if not key.startswith("*.") and key not in structs and not {key, key + ".keys"} & fields.keys():
            problems.append(f"{key}: declared in tests/gates/field_limits.py but no request body has it")
    return sorted(set(problems))
