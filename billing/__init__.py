"""Quotes, guardrails, budgets and ledger, approvals, orders, payments, renewals, statements."""
