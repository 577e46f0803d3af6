"""Entitlement use cases (never commit: the caller's transaction does)."""

import entitlements.events  # noqa: F401  (registers the payloads of entitlement events)
from entitlements.service._grants import (
    Source,
    assign_seat,
    carry_seats,
    find_by_source,
    get_grant,
    grant,
    grant_reads,
    invalidate,
    list_grants,
    owned_modules,
    owned_modules_both,
    record_admin,
    revoke,
    revoke_by_source,
    unassign_seat,
)
from entitlements.service._imports import PastEvent, PastGrant, import_events, import_grants
from entitlements.service._insights import (
    account_holdings,
    account_usage_series,
    active_features,
    demand_by_day,
    demand_history,
    demand_signals,
    grant_history,
    recent_grants,
    usage_history_rows,
    usage_series,
)
from entitlements.service._offers import user_offers
from entitlements.service._partitions import drop_expired, ensure_partitions, is_partition
from entitlements.service._snapshot import catalog_view, load_snapshot
from entitlements.service._trials import mark_trial_converted, start_trial, sweep
from entitlements.service._usage import add_signals, record_usage, usage_history, usage_totals

__all__ = [
    "PastEvent",
    "PastGrant",
    "Source",
    "account_holdings",
    "account_usage_series",
    "active_features",
    "add_signals",
    "assign_seat",
    "carry_seats",
    "catalog_view",
    "demand_by_day",
    "demand_history",
    "demand_signals",
    "drop_expired",
    "ensure_partitions",
    "find_by_source",
    "get_grant",
    "grant",
    "grant_history",
    "grant_reads",
    "import_events",
    "import_grants",
    "invalidate",
    "is_partition",
    "list_grants",
    "load_snapshot",
    "mark_trial_converted",
    "owned_modules",
    "owned_modules_both",
    "recent_grants",
    "record_admin",
    "record_usage",
    "revoke",
    "revoke_by_source",
    "start_trial",
    "sweep",
    "unassign_seat",
    "usage_history",
    "usage_history_rows",
    "usage_series",
    "usage_totals",
    "user_offers",
]
