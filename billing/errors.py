"""Billing's problem types."""

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
