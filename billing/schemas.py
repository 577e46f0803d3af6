"""HTTP contract of budgets, the ledger and guardrails."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import Meta

from app.schemas import Currency, Input, Name, Output, Slug
from billing.domain.guardrails import GuardrailPolicy

AmountMinor = Annotated[int, Meta(ge=0, le=10**12, description="Integer minor units (cents for USD)")]
AnchorDay = Annotated[int, Meta(ge=1, le=28)]


class BudgetCreate(Input):
    name: Name
    currency: Currency
    amount_minor: AmountMinor
    cost_center: Slug | None = None
    anchor_day: AnchorDay = 1


class BudgetUpdate(Input):
    name: Name | None = None
    amount_minor: AmountMinor | None = None


class BudgetRead(Output, frozen=True):
    id: str
    name: str
    cost_center: str | None
    currency: str
    amount_minor: int
    anchor_day: int
    period: str
    period_starts_at: datetime
    period_ends_at: datetime
    period_amount_minor: int
    reserved_minor: int
    captured_minor: int
    remaining_minor: int
    used_pct: int


class BudgetList(Output, frozen=True):
    data: list[BudgetRead]


class LedgerEntryRead(Output, frozen=True):
    id: int
    period: str
    kind: str
    amount_minor: int
    currency: str
    order_id: str
    hold_id: str
    occurred_at: datetime


class LedgerPage(Output, frozen=True):
    data: list[LedgerEntryRead]
    next_cursor: str | None


class GuardrailsRead(Output, frozen=True):
    version: int
    policy: GuardrailPolicy


class GuardrailsImport(Input):
    toml: Annotated[str, Meta(max_length=100_000, pattern=r"^[^\x00]*$")]
