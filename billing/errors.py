"""Billing's problem types: every error a billing use case raises, with its stable code."""

from __future__ import annotations

from app.errors import Conflict, NotFound, Unprocessable


class BudgetNotFound(NotFound):
    code = "budget_not_found"


class BudgetExists(Conflict):
    code = "budget_exists"


class BudgetExhausted(Conflict):
    code, title = "budget_exhausted", "Budget exhausted"


class BudgetBelowSpend(Conflict):
    code, title = "budget_below_spend", "Budget lower than what is already spent"


class HoldStateConflict(Conflict):
    code = "hold_state_conflict"


class GuardrailInvalid(Unprocessable):
    code, title = "guardrail_invalid", "Invalid guardrail policy"


class ModuleNotAvailable(Unprocessable):
    code, title = "module_not_available", "Module not available"


class OrderNotFound(NotFound):
    code = "order_not_found"


class QuoteUnusable(Conflict):
    code, title = "quote_unusable", "Quote cannot be ordered"


class PurchaseBlocked(Unprocessable):
    code, title = "purchase_blocked", "Purchase blocked by your guardrails"


class IllegalOrderTransition(Conflict):
    code, title = "illegal_transition", "Not possible in the order's current state"


class ApprovalConflict(Conflict):
    code, title = "approval_conflict", "Approval already decided or expired"


class SubscriptionNotFound(NotFound):
    code = "subscription_not_found"


class CardSetupRequired(Unprocessable):
    code, title = "card_setup_required", "Save a card first"


class PaymentInProgress(Conflict):
    code, title = "payment_in_progress", "A payment of this order is in progress"
