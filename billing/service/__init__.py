"""Billing use cases: load, decide (billing.domain), persist, publish events. Never commits."""

import billing.events  # noqa: F401  (registers the payloads of billing's events in the webhook catalogue)
from billing.service._budgets import (
    budget_for,
    budget_state,
    capture,
    create_budget,
    get_budget,
    list_budgets,
    list_ledger,
    refund,
    release,
    reserve,
    update_budget,
)
from billing.service._guardrails import current_policy, export_toml, import_toml, save_policy
from billing.service._summary import LineSummary, OrderSummary, order_summary

__all__ = [
    "LineSummary", "OrderSummary", "budget_for", "budget_state", "capture", "create_budget", "current_policy",
    "export_toml", "get_budget", "import_toml", "list_budgets", "list_ledger", "order_summary", "refund", "release",
    "reserve", "save_policy", "update_budget",
]
