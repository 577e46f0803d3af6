"""Answers of the API as msgspec structs. Unknown fields are ignored, so newer servers never break older SDKs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec

T = TypeVar("T")


class Model(msgspec.Struct, kw_only=True, frozen=True):
    """Base of every answer."""


class Page(Model, Generic[T], frozen=True, kw_only=True):
    data: list[T]
    next_cursor: str | None = None


class Account(Model, frozen=True, kw_only=True):
    id: str
    external_id: str
    name: str
    segment: str
    region: str
    currency: str
    discount_bps: int = 0
    payment_terms_days: int = 0
    sales_team: str | None = None
    sales_rep: str | None = None
    created_at: datetime
    updated_at: datetime


class User(Model, frozen=True, kw_only=True):
    id: str
    account: str
    external_id: str
    email: str | None = None
    name: str | None = None
    roles: list[str] = []
    cost_center: str | None = None
    created_at: datetime
    updated_at: datetime


class SessionToken(Model, frozen=True, kw_only=True):
    token: str
    token_type: str
    expires_at: datetime
    account: str
    user: str
    roles: list[str]
    is_admin: bool


class Offer(Model, frozen=True, kw_only=True):
    """The module that would unlock a denied feature."""

    module: str
    name: str
    effect: str
    reason: str
    price_id: str | None = None
    amount_minor: int | None = None
    currency: str | None = None
    interval: str | None = None
    per_seat: bool = False
    trial_days: int | None = None
    trial_available: bool = False
    requires_unmet: list[str] = []


class CheckResult(Model, frozen=True, kw_only=True):
    """The service's answer to one check (``entitlements.check_remote``)."""

    user: str
    feature: str
    kind: str
    allowed: bool
    reason: str
    quantity: int
    limit: int | None = None
    used: int | None = None
    remaining: int | None = None
    period: str | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    value: str | None = None
    modules: list[str] = []
    offer: Offer | None = None


class FeatureState(Model, frozen=True, kw_only=True):
    kind: str
    granted: bool
    limit: int | None = None
    used: int | None = None
    remaining: int | None = None
    period: str | None = None
    period_end: datetime | None = None
    value: str | None = None
    modules: list[str] = []


class Snapshot(Model, frozen=True, kw_only=True):
    """Everything a user holds now (what the local cache keeps, compacted)."""

    user: str
    account: str
    version: str
    computed_at: datetime
    valid_until: datetime | None = None
    catalog_revision: int
    modules: list[str] = []
    features: dict[str, FeatureState] = {}


class Grant(Model, frozen=True, kw_only=True):
    id: str
    account: str
    user: str | None = None
    module: str
    source: str
    source_ref: str
    status: str
    starts_at: datetime
    ends_at: datetime | None = None
    seats: int | None = None
    seats_assigned: int = 0
    assigned_users: list[str] | None = None
    revoked_at: datetime | None = None
    revoke_reason: str | None = None
    created_at: datetime


class UsageResult(Model, frozen=True, kw_only=True):
    accepted: int
    duplicates: int
    duplicate_event_ids: list[str] = []


class QuoteLine(Model, frozen=True, kw_only=True):
    module: str
    name: str
    price_id: str
    quantity: int
    total_minor: int
    interval: str | None = None


class Decision(Model, frozen=True, kw_only=True):
    route: str | None = None
    outcome: str
    reasons: list[str] = []


class Quote(Model, frozen=True, kw_only=True):
    id: str
    account: str
    user: str
    currency: str
    lines: list[QuoteLine]
    subtotal_minor: int
    discount_minor: int
    total_minor: int
    decision: Decision
    status: str
    created_at: datetime
    expires_at: datetime
    net_minor: int | None = None  # None: tax was not computed (quote.tax says why)
    tax_minor: int | None = None
    gross_minor: int | None = None
    tax: dict[str, Any] | None = None  # status, reason, breakdown by jurisdiction and rate, reverse_charge, exempt


class Payment(Model, frozen=True, kw_only=True):
    attempt: int
    status: str
    payment_intent: str | None = None
    client_secret: str | None = None
    failure_reason: str | None = None


class Order(Model, frozen=True, kw_only=True):
    id: str
    account: str
    user: str
    quote_id: str
    route: str
    state: str
    currency: str
    total_minor: int
    refunded_minor: int = 0
    lines: list[QuoteLine] = []
    failure_reason: str | None = None
    approval_id: str | None = None
    created_at: datetime
    updated_at: datetime
    paid_at: datetime | None = None
    fulfilled_at: datetime | None = None
    payment: Payment | None = None
    tax_minor: int | None = None  # card route: the tax in total_minor (the gross charged)


class WebhookEndpoint(Model, frozen=True, kw_only=True):
    id: str
    url: str
    event_types: list[str]
    status: str
    description: str | None = None
    secret: str | None = None  # only in the answer that created or rotated it


class ChangeItem(Model, frozen=True, kw_only=True):
    account: str
    user: str | None = None


class ChangeBatch(Model, frozen=True, kw_only=True):
    cursor: str
    catalog_revision: int
    reset: bool
    changes: list[ChangeItem] = []


def decode(data: bytes, into: type[T]) -> T:
    """Decode a JSON answer into a model."""
    return msgspec.json.decode(data, type=into)


def to_builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)
