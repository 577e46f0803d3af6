"""Bill-back statements: one line per order with budget spend in the period, and the statement's status."""

from __future__ import annotations

from typing import Literal

import msgspec

StatementStatus = Literal["closed", "invoiced", "payment_failed", "paid", "void"]
LineKind = Literal["order", "usage", "usage_adjustment"]


class StatementLine(msgspec.Struct, kw_only=True, frozen=True):
    """An order's budget captures less its refunds in one period, or a metered plan's usage charge (kind
    ``usage``, ``usage_adjustment`` for late usage of an earlier period; ``order_id`` and ``charge_id`` then
    hold the charge's id); stored in the statement's JSONB."""

    order_id: str
    currency: str
    captured_minor: int
    refunded_minor: int
    net_minor: int
    modules: tuple[str, ...] = ()
    user_id: str | None = None
    kind: LineKind = "order"
    charge_id: str | None = None
    description: str | None = None


def statement_line(*, order_id: str, currency: str, captured_minor: int, refunded_minor: int,
                   modules: tuple[str, ...], user_id: str | None, kind: LineKind = "order",
                   charge_id: str | None = None, description: str | None = None) -> StatementLine:
    """A statement line; its net is what the account is billed for it. Every line of every statement (order
    spend and usage charges) is made here, so what applies to all lines (tax) has one place to go."""
    return StatementLine(order_id=order_id, currency=currency, captured_minor=captured_minor,
                         refunded_minor=refunded_minor, net_minor=captured_minor - refunded_minor, modules=modules,
                         user_id=user_id, kind=kind, charge_id=charge_id, description=description)
