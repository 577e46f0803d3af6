"""Billing's HTTP controllers: parse, call one service function, shape the answer (no queries, no try)."""

from billing.routes.budgets import BudgetController, GuardrailController
from billing.routes.orders import AccountOrderController, ApprovalController, OrderController, QuoteController
from billing.routes.reports import AccountBillingController, BillingController
from billing.routes.subscriptions import SubscriptionController

__all__ = [
    "AccountBillingController", "AccountOrderController", "ApprovalController", "BillingController",
    "BudgetController", "GuardrailController", "OrderController", "QuoteController", "SubscriptionController",
]
