"""Bill-back statements: one line per order with budget spend in the period, and the statement's status."""

from __future__ import annotations

from typing import Literal

import msgspec

StatementStatus = Literal["closed", "invoiced", "payment_failed", "paid", "void"]


class StatementLine(msgspec.Struct, kw_only=True, frozen=True):
    """An order's budget captures less its refunds in one period (stored in the statement's JSONB)."""

    order_id: str
    currency: str
    captured_minor: int
    refunded_minor: int
    net_minor: int
    modules: tuple[str, ...] = ()
    user_id: str | None = None


def statement_line(*, order_id: str, currency: str, captured_minor: int, refunded_minor: int,
                   modules: tuple[str, ...], user_id: str | None) -> StatementLine:
    """A statement line; its net is what the account is billed for the order."""
    return StatementLine(order_id=order_id, currency=currency, captured_minor=captured_minor,
                         refunded_minor=refunded_minor, net_minor=captured_minor - refunded_minor, modules=modules,
                         user_id=user_id)
