"""Entitlements: grants, seats, the check path and its cache, usage events and counters, trials.

The public face for other packages (billing calls ``grant``/``revoke``/``mark_trial_converted`` and asks
``owned_modules`` for quotes; ``user_offers`` puts the catalog's offers over what a user holds; suggestions
read ``demand_signals``, ``usage_series``, ``account_holdings``, ``account_usage_series``,
``active_features``, ``holdings_by_role`` for recounts and, per request, ``user_activity``).
"""

from entitlements.models import Grant
from entitlements.service import (
    HoldingsByRole,
    PastEvent,
    PastGrant,
    UserActivity,
    account_holdings,
    account_usage_series,
    active_features,
    carry_seats,
    demand_by_day,
    demand_history,
    demand_signals,
    find_by_source,
    grant,
    grant_history,
    holdings_by_role,
    import_events,
    import_grants,
    mark_trial_converted,
    owned_modules,
    owned_modules_both,
    recent_grants,
    revoke,
    revoke_by_source,
    usage_history_rows,
    usage_series,
    usage_totals,
    user_activity,
)

__all__ = [
    "Grant",
    "HoldingsByRole",
    "PastEvent",
    "PastGrant",
    "UserActivity",
    "account_holdings",
    "account_usage_series",
    "active_features",
    "carry_seats",
    "demand_by_day",
    "demand_history",
    "demand_signals",
    "find_by_source",
    "grant",
    "grant_history",
    "holdings_by_role",
    "import_events",
    "import_grants",
    "mark_trial_converted",
    "owned_modules",
    "owned_modules_both",
    "recent_grants",
    "revoke",
    "revoke_by_source",
    "usage_history_rows",
    "usage_series",
    "usage_totals",
    "user_activity",
]
