"""Bill-back statements: one line per order with budget spend in the period, and the statement's status."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import msgspec

from billing.domain.tax import TaxBehavior

StatementStatus = Literal["closed", "invoiced", "payment_failed", "paid", "void"]


class StatementPart(msgspec.Struct, kw_only=True, frozen=True):
    """One taxable part of a statement line (a module of the order): its own invoice line and tax."""

    module: str
    amount_minor: int
    tax_code: str | None = None
    tax_behavior: TaxBehavior = "exclusive"
    tax_minor: int | None = None  # from the invoice's automatic tax (None: not invoiced with tax yet)
    taxability: str | None = None  # Stripe's taxability reason, e.g. reverse_charge


class StatementLine(msgspec.Struct, kw_only=True, frozen=True):
    """An order's budget captures less its refunds in one period (stored in the statement's JSONB)."""

    order_id: str
    currency: str
    captured_minor: int
    refunded_minor: int
    net_minor: int
    modules: tuple[str, ...] = ()
    user_id: str | None = None
    parts: tuple[StatementPart, ...] = ()  # per module, with tax terms; none: one part, the vendor's tax code
    tax_minor: int | None = None  # the tax of its parts once invoiced with automatic tax


def statement_parts(lines: Sequence[tuple[str, int, str | None, TaxBehavior]], *,
                    net_minor: int) -> tuple[StatementPart, ...]:
    """The order's lines (module, total, tax code, behaviour) as the taxable parts of its net. When the net is not
    the lines' sum (a refund), the net is split over the lines in proportion, the remainder on the last."""
    lines = [x for x in lines if x[1] > 0]
    total = sum(x[1] for x in lines)
    if net_minor <= 0 or total <= 0:
        return ()
    parts, given = [], 0
    for i, (module, amount, code, behavior) in enumerate(lines):
        share = net_minor - given if i == len(lines) - 1 else amount * net_minor // total
        given += share
        parts.append(StatementPart(module=module, amount_minor=share, tax_code=code, tax_behavior=behavior))
    return tuple(p for p in parts if p.amount_minor > 0)


def statement_line(*, order_id: str, currency: str, captured_minor: int, refunded_minor: int,
                   modules: tuple[str, ...], user_id: str | None,
                   taxed: Sequence[tuple[str, int, str | None, TaxBehavior]] = ()) -> StatementLine:
    """A statement line; its net is what the account is billed for the order (``taxed``: the order's lines)."""
    net = captured_minor - refunded_minor
    return StatementLine(order_id=order_id, currency=currency, captured_minor=captured_minor,
                         refunded_minor=refunded_minor, net_minor=net, modules=modules,
                         user_id=user_id, parts=statement_parts(taxed, net_minor=net))
