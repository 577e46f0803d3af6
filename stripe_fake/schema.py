"""The SDK as the schema: the fake's inputs are checked against the SDK's ``*Params`` TypedDicts and its
outputs against the SDK's resource classes (stripe-python is generated from Stripe's OpenAPI spec)."""

from __future__ import annotations

import functools
import sys
import types
import typing
from typing import Any

import stripe
from stripe import params as sdk_params
from stripe.params import tax as _tax_params  # noqa: F401  (loads params.tax for the dotted names)

# Request options live in the same TypedDicts but never travel as form fields.
_REQUEST_OPTIONS = frozenset({"api_key", "idempotency_key", "stripe_account", "stripe_context", "stripe_version",
                              "max_network_retries", "headers", "content_type"})

RESOURCES: dict[str, type[stripe.StripeObject]] = {
    "customer": stripe.Customer, "payment_method": stripe.PaymentMethod, "setup_intent": stripe.SetupIntent,
    "payment_intent": stripe.PaymentIntent, "charge": stripe.Charge, "refund": stripe.Refund,
    "invoiceitem": stripe.InvoiceItem, "invoice": stripe.Invoice, "line_item": stripe.InvoiceLineItem,
    "dispute": stripe.Dispute, "event": stripe.Event, "tax_id": stripe.TaxId,
    "tax.calculation": stripe.tax.Calculation, "tax.calculation_line_item": stripe.tax.CalculationLineItem,
    "tax.transaction": stripe.tax.Transaction, "tax.transaction_line_item": stripe.tax.TransactionLineItem,
}


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """Annotations of a class and its bases, evaluated one by one (some name TYPE_CHECKING-only types)."""
    out: dict[str, Any] = {}
    for base in reversed(cls.__mro__):
        module = sys.modules.get(base.__module__)
        scope = {**vars(module), **vars(stripe)} if module else dict(vars(stripe))
        local = {base.__name__: base, **{k: v for k, v in vars(base).items() if isinstance(v, type)}}
        for key, ann in getattr(base, "__annotations__", {}).items():
            out[key] = _evaluate(ann, scope, local)
    return out


def _evaluate(ann: Any, scope: dict[str, Any], local: dict[str, Any]) -> Any:
    if isinstance(ann, typing.ForwardRef):
        ann = ann.__forward_arg__
    if isinstance(ann, str):
        try:
            ann = eval(ann, scope, local)  # noqa: S307 - the SDK's own annotation strings
        except Exception:
            return Any
    origin = typing.get_origin(ann)
    if origin is None or origin is typing.Literal:
        return ann
    args = tuple(_evaluate(a, scope, local) for a in typing.get_args(ann))
    return _Resolved(origin, args)


class _Resolved:
    """A generic annotation with evaluated arguments (keeps forward references that did not resolve as Any)."""

    def __init__(self, origin: Any, args: tuple[Any, ...]) -> None:
        self.origin, self.args = origin, args


def _inner(annotation: Any) -> list[Any]:
    """Unwrap NotRequired/Optional/Union/List/Dict/Literal down to the classes inside."""
    if not isinstance(annotation, _Resolved):
        return [] if typing.get_origin(annotation) is typing.Literal else [annotation]
    if annotation.origin in (dict, typing.Dict) and len(annotation.args) == 2:  # free keys: check values only  # noqa: UP006
        return _inner(annotation.args[1])
    out: list[Any] = []
    for arg in annotation.args:
        out.extend(_inner(arg))
    return out


def _is_typeddict(obj: Any) -> bool:
    return isinstance(obj, type) and hasattr(obj, "__total__") and hasattr(obj, "__annotations__")


def unknown_params(params_class: str, params: dict[str, Any]) -> list[str]:
    """Dotted names of parameters the SDK's TypedDict (and its nested TypedDicts) does not declare."""
    cls: Any = sdk_params
    for part in params_class.split("."):  # "tax.CalculationCreateParams": the SDK's params.tax module
        cls = getattr(cls, part)
    return _unknown_in(cls, params, "", top=True)


def _unknown_in(cls: type, value: Any, prefix: str, *, top: bool = False) -> list[str]:
    if isinstance(value, list):
        return [u for i, v in enumerate(value) for u in _unknown_in(cls, v, f"{prefix}[{i}]")]
    if not isinstance(value, dict):
        return []
    hints = _hints(cls)
    problems = []
    for key, sub in value.items():
        name = f"{prefix}[{key}]" if prefix else key
        if key not in hints or (top and key in _REQUEST_OPTIONS):
            problems.append(name)
            continue
        for inner in _inner(hints[key]):
            if _is_typeddict(inner):
                problems.extend(_unknown_in(inner, sub, name))
    return problems


def undeclared_fields(obj: dict[str, Any]) -> list[str]:
    """Dotted names of response fields the SDK's resource classes do not declare (recursively)."""
    kind = obj.get("object")
    if kind == "list":
        return [u for item in obj.get("data", []) for u in undeclared_fields(item)]
    cls = RESOURCES.get(str(kind))
    if cls is None:
        return [f"<object {kind!r} has no SDK resource mapping>"]
    return _undeclared_in(cls, obj, str(kind))


def _undeclared_in(cls: type, value: dict[str, Any], prefix: str) -> list[str]:
    hints = _hints(cls)
    problems = []
    for key, sub in value.items():
        name = f"{prefix}.{key}"
        if key not in hints:
            problems.append(name)
            continue
        nested = [c for c in _inner(hints[key]) if isinstance(c, type) and issubclass(c, stripe.StripeObject)
                  and not isinstance(c, types.GenericAlias)]
        items = sub if isinstance(sub, list) else [sub]
        for item in items:
            if not isinstance(item, dict):
                continue
            if isinstance(item.get("object"), str) and item["object"] in RESOURCES:
                problems.extend(undeclared_fields(item))  # an expanded or embedded resource
            elif nested and item.get("object") != "list":
                problems.extend(_undeclared_in(nested[0], item, name))
            elif item.get("object") == "list":
                problems.extend(undeclared_fields(item))
    return problems
