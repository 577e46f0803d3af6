"""HTTP contract of entitlements: grants, seats, checks, snapshots, usage, trials."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from app.schemas import ExternalId, Input, Output
from entitlements.domain import OfferHint

ModuleKey = Annotated[str, Meta(min_length=1, max_length=60, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
FeatureKey = Annotated[str, Meta(min_length=1, max_length=60, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
SourceRef = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/+-]*$")]
Reason = Annotated[str, Meta(min_length=1, max_length=500, pattern=r"^[^\x00-\x1f]+$")]
UtcTime = Annotated[datetime, Meta(tz=True)]
Seats = Annotated[int, Meta(ge=1, le=100_000)]
Quantity = Annotated[int, Meta(ge=1, le=1_000_000_000)]
EventId = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]*$")]
AdminSource = Literal["admin", "plan"]
PropKey = Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[^\x00]*$")]
PropText = Annotated[str, Meta(max_length=500, pattern=r"^[^\x00]*$")]
PropValue = PropText | Annotated[int, Meta(ge=-(2**53), le=2**53)] | bool | None
MAX_EVENTS = 1000
MAX_BATCH_CHECKS = 100


class GrantCreate(Input):
    """Grant a module to a user, or to the whole account (no ``user``), optionally as a pool of ``seats``."""

    module: ModuleKey
    source_ref: SourceRef
    user: ExternalId | None = None
    source: AdminSource = "admin"
    starts_at: UtcTime | None = None
    ends_at: UtcTime | None = None
    seats: Seats | None = None


class GrantRevoke(Input):
    reason: Reason
    at: UtcTime | None = None


class SeatAssign(Input):
    user: ExternalId


class GrantRead(Output, frozen=True):
    id: str
    account: str
    user: str | None
    module: str
    source: str
    source_ref: str
    status: str
    starts_at: datetime
    ends_at: datetime | None
    seats: int | None
    seats_assigned: int
    assigned_users: list[str] | None
    revoked_at: datetime | None
    revoke_reason: str | None
    created_at: datetime


class GrantPage(Output, frozen=True):
    data: list[GrantRead]
    next_cursor: str | None


class CheckRead(Output, frozen=True):
    """May the user use the feature (for the quantity) now; when not, the offer that would unlock it."""

    user: str
    feature: str
    kind: str
    allowed: bool
    reason: str
    quantity: int
    limit: int | None
    used: int | None
    remaining: int | None
    period: str | None
    period_start: datetime | None
    period_end: datetime | None
    value: str | None
    modules: list[str]
    offer: OfferHint | None


class CheckItem(Input):
    feature: FeatureKey
    quantity: Quantity = 1


class BatchCheck(Input):
    user: ExternalId
    checks: Annotated[list[CheckItem], Meta(min_length=1, max_length=MAX_BATCH_CHECKS)]


class BatchCheckRead(Output, frozen=True):
    user: str
    version: str
    results: list[CheckRead]


class FeatureSnapshot(Output, frozen=True):
    kind: str
    granted: bool
    limit: int | None
    used: int | None
    remaining: int | None
    period: str | None
    period_end: datetime | None
    value: str | None
    modules: list[str]


class SnapshotRead(Output, frozen=True):
    """Everything granted to the user now; ``version`` (also the ETag) changes whenever any of it changes."""

    user: str
    account: str
    version: str
    computed_at: datetime
    valid_until: datetime | None
    catalog_revision: int
    modules: list[str]
    features: dict[str, FeatureSnapshot]


class ChangeItem(Output, frozen=True):
    """Answers changed for this user, or for every user of the account (``user`` null): reload their snapshots."""

    account: str
    user: str | None


class ChangeBatch(Output, frozen=True):
    """Changes since the cursor you sent; pass ``cursor`` back next time (or reconnect with it as Last-Event-ID).

    ``reset`` true: the cursor was too old (or unknown) or too much changed at once; drop every cached snapshot.
    A ``catalog_revision`` other than the one your snapshots were computed on also means: drop them all.
    """

    cursor: str
    catalog_revision: int
    reset: bool
    changes: list[ChangeItem]


class UsageEventIn(Input):
    event_id: EventId
    user: ExternalId
    feature: FeatureKey
    quantity: Quantity = 1
    occurred_at: UtcTime | None = None
    kind: Literal["usage", "attempt"] = "usage"
    properties: Annotated[dict[PropKey, PropValue], Meta(max_length=50)] | None = None


class UsageBatch(Input):
    """Up to 1,000 events; ``enforce`` rejects the whole batch if any usage would exceed its limit."""

    events: Annotated[list[UsageEventIn], Meta(min_length=1, max_length=MAX_EVENTS)]
    enforce: bool = False


class UsageResult(Output, frozen=True):
    """accepted + duplicates + conflicts is the number of events sent."""

    accepted: int
    duplicates: int
    duplicate_event_ids: list[str]
    conflicts: int = 0  # an event id already used (before, or earlier in this batch) for a different event
    conflict_event_ids: list[str] = []


class UsagePeriodRead(Output, frozen=True):
    period_start: datetime
    period_end: datetime
    used: int


class UsageHistory(Output, frozen=True):
    user: str
    feature: str
    period: str
    limit: int | None
    data: list[UsagePeriodRead]


class TrialStart(Input):
    user: ExternalId
    module: ModuleKey


class TrialRead(Output, frozen=True):
    id: str
    account: str
    user: str | None
    module: str
    grant_id: str
    started_at: datetime
    ends_at: datetime
    converted_at: datetime | None
