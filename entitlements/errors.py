"""Entitlement errors with stable codes; each names its culprit."""

from __future__ import annotations

from app.errors import Conflict, NotFound, Unprocessable


class GrantNotFound(NotFound):
    status, code, title = 404, "grant_not_found", "Grant not found"


class FeatureNotFound(NotFound):
    status, code, title = 404, "feature_not_found", "Feature not found"


class ModuleNotFound(NotFound):
    status, code, title = 404, "module_not_found", "Module not found"


class InvalidGrant(Unprocessable):
    status, code, title = 422, "invalid_grant", "The grant is not valid"


class GrantSourceConflict(Conflict):
    """A grant's source reference is already used by a grant for another holder (or another seat count)."""

    status, code, title = 409, "grant_source_conflict", "The source reference belongs to another grant"


class NotASeatPool(Conflict):
    status, code, title = 409, "not_a_seat_pool", "The grant has no seats to assign"


class SeatsExhausted(Conflict):
    status, code, title = 409, "seats_exhausted", "Every seat is assigned"


class GrantInactive(Conflict):
    status, code, title = 409, "grant_inactive", "The grant is not active"


class LimitExceeded(Conflict):
    """In ``enforce`` mode, usage that would exceed the user's limit; nothing of the batch was recorded."""

    status, code, title = 409, "limit_exceeded", "Usage would exceed the limit"


class OutsideBackfillWindow(Unprocessable):
    status, code, title = 422, "occurred_at_out_of_range", "occurred_at is outside the accepted window"


class TrialNotAvailable(Unprocessable):
    status, code, title = 422, "trial_not_available", "No trial is available"


class TrialAlreadyUsed(Conflict):
    status, code, title = 409, "trial_already_used", "The trial was already used"
