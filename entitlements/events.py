"""The events entitlements publish: their payload types are their entries in the event catalogue."""

from __future__ import annotations

from datetime import datetime

from app.events import WithVendorIds, event


# omit_defaults: ``reason`` and ``effective_at`` appear in revocations only
class GrantEvent(WithVendorIds, frozen=True, omit_defaults=True):
    """A grant after the change; ``user_id`` is null for an account-wide grant (``seats`` for a seat pool)."""

    grant_id: str
    account_id: str
    user_id: str | None
    module: str
    source: str
    source_ref: str
    starts_at: datetime
    ends_at: datetime | None
    seats: int | None
    status: str
    reason: str | None = None
    effective_at: datetime | None = None


@event("entitlement.granted", description="A module was granted (purchase, trial, admin or plan).")
class EntitlementGranted(GrantEvent, frozen=True):
    pass


@event("entitlement.revoked", description="A grant was revoked (now, or at effective_at).")
class EntitlementRevoked(GrantEvent, frozen=True):
    pass


@event("entitlement.expired", description="A grant reached its end (sent once by the sweep).")
class EntitlementExpired(WithVendorIds, frozen=True):
    grant_id: str
    user_id: str | None
    module: str
    source: str
    source_ref: str
    ended_at: datetime


class SeatEvent(WithVendorIds, frozen=True):
    grant_id: str
    module: str
    user_id: str


@event("entitlement.seat_assigned", description="A seat of an account's seat pool was assigned to a user.")
class SeatAssigned(SeatEvent, frozen=True):
    pass


@event("entitlement.seat_unassigned", description="A seat was freed.")
class SeatUnassigned(SeatEvent, frozen=True):
    pass


@event("trial.started", description="A trial began.")
class TrialStarted(WithVendorIds, frozen=True):
    trial_id: str
    user_id: str | None
    module: str
    scope: str
    grant_id: str
    started_at: datetime
    ends_at: datetime


@event("trial.ending", description="A trial ends in a few days (sent once, COMMERCE_TRIAL_ENDING_DAYS before).")
class TrialEnding(WithVendorIds, frozen=True):
    trial_id: str
    user_id: str | None
    module: str
    ends_at: datetime
    days_left: int


@event("trial.ended", description="A trial ended (converted or not).")
class TrialEnded(WithVendorIds, frozen=True):
    trial_id: str
    user_id: str | None
    module: str
    ended_at: datetime
    converted: bool


@event("trial.converted", description="A trialed module was bought.")
class TrialConverted(WithVendorIds, frozen=True):
    trial_id: str
    user_id: str | None
    module: str
    converted_at: datetime
    days_to_convert: int


@event("entitlement.unused", description="A paid module (bought by order or import) has not been used by its holder "
                                         "for COMMERCE_UNUSED_ALERT_DAYS days (sent once per idle spell).")
class EntitlementUnused(WithVendorIds, frozen=True):
    grant_id: str
    user_id: str | None
    module: str
    source: str
    starts_at: datetime
    unused_days: int
    detected_at: datetime


@event("usage.limit_near", description="A user has used 80 % or more of a limit in the current period (sent once "
                                       "per user, feature and period).")
class UsageLimitNear(WithVendorIds, frozen=True):
    user_id: str
    feature: str
    used: int
    limit: int
    threshold_pct: int
    period_start: datetime
    period_end: datetime
