"""Billing use cases (load, decide with billing.domain, persist, publish events) and read models.

They work in the caller's transaction (the request's, or a job's) and never commit it; the few that need
a transaction of their own take a sessionmaker instead of a session and say why (``decide`` expires a due
approval apart, the card and Stripe flows commit before calling Stripe).

The routes call these names; the modules behind them are ``_budgets`` (budgets and the two-phase ledger),
``_guardrails``, ``_quotes``, ``_orders`` (orders, approvals, fulfilment), ``_subscriptions``,
``_statements`` (bill-back), ``_simulate``, and the read models ``_order_reads`` and ``_account_reads``.
"""

import billing.events  # noqa: F401  (registers the payloads of billing's events in the webhook catalogue)
from billing.service._account_reads import (
    budget_list,
    close_read,
    credit_report,
    ledger_page,
    read_budget_state,
    read_subscription,
    statement_list,
    subscription_list,
)
from billing.service._budgets import (
    budget_and_state,
    budget_for,
    budget_state,
    capture,
    create_budget,
    get_budget,
    list_budget_states,
    list_budgets,
    list_ledger,
    refund,
    release,
    reserve,
    update_budget,
)
from billing.service._buyer import BuyerFacts, buyer_facts
from billing.service._fast_order import fast_order
from billing.service._fast_quote import fast_quote
from billing.service._guardrails import current_policy, export_toml, import_toml, save_policy
from billing.service._metering import running_charges
from billing.service._order_reads import (
    approval_read,
    order_page,
    order_read,
    order_view,
    quote_read,
    read_quote,
)
from billing.service._orders import (
    acknowledge_provisioning,
    approval_queue,
    approval_view,
    cancel_order,
    decide,
    order_quote,
    order_quote_read,
    read_order,
)
from billing.service._quotes import QuoteItem, auto_quote, create_quote
from billing.service._simulate import simulate
from billing.service._statements import close_period
from billing.service._subscriptions import update_subscription
from billing.service._summary import LineSummary, OrderSummary, order_summary

__all__ = [
    "BuyerFacts",
    "LineSummary",
    "OrderSummary",
    "QuoteItem",
    "acknowledge_provisioning",
    "approval_queue",
    "approval_read",
    "approval_view",
    "auto_quote",
    "budget_and_state",
    "budget_for",
    "budget_list",
    "budget_state",
    "buyer_facts",
    "cancel_order",
    "capture",
    "close_period",
    "close_read",
    "create_budget",
    "create_quote",
    "credit_report",
    "current_policy",
    "decide",
    "export_toml",
    "fast_order",
    "fast_quote",
    "get_budget",
    "import_toml",
    "ledger_page",
    "list_budget_states",
    "list_budgets",
    "list_ledger",
    "order_page",
    "order_quote",
    "order_quote_read",
    "order_read",
    "order_summary",
    "order_view",
    "quote_read",
    "read_budget_state",
    "read_order",
    "read_quote",
    "read_subscription",
    "refund",
    "release",
    "reserve",
    "running_charges",
    "save_policy",
    "simulate",
    "statement_list",
    "subscription_list",
    "update_budget",
    "update_subscription",
]
