"""Entitlements: grants, seats, the check path and its cache, usage events and counters, trials.

The public face for other packages (billing calls ``grant``/``revoke``/``mark_trial_converted``; the catalog's
offers ask ``owned_modules``).
"""

from entitlements.models import Grant
from entitlements.service import (
    carry_seats,
    find_by_source,
    grant,
    mark_trial_converted,
    owned_modules,
    revoke,
    revoke_by_source,
)

__all__ = ["Grant", "carry_seats", "find_by_source", "grant", "mark_trial_converted", "owned_modules", "revoke",
           "revoke_by_source"]
