"""Vendor API key scopes: each route names the one it needs."""

from __future__ import annotations

SCOPES: dict[str, str] = {
    "accounts:read": "Read accounts and users",
    "accounts:write": "Create and update accounts and users",
    "sessions:write": "Mint user session tokens for the widget and admin console",
    "keys:read": "List API keys",
    "keys:write": "Create and revoke API keys",
    "audit:read": "Read the audit log",
    "catalog:read": "Read the module catalog",
    "catalog:write": "Change the module catalog",
    "entitlements:read": "Check entitlements",
    "entitlements:write": "Grant and revoke entitlements, assign seats",
    "usage:write": "Record usage events",
    "commerce:read": "Read quotes, orders, budgets, guardrails",
    "commerce:write": "Create quotes and orders, manage budgets and guardrails",
    "suggestions:read": "Read suggestion statistics and the cheapest-plan advisor",
    "suggestions:write": "Ask for suggestions and record feedback on them",
    "webhooks:read": "Read webhook endpoints and deliveries",
    "webhooks:write": "Manage webhook endpoints",
    "ops:read": "Read the state of scheduled jobs and other operations data",
}


def parse_scopes(text: str) -> frozenset[str]:
    """Parse ``a,b`` or ``all``/``*``; unknown scopes raise ValueError naming them."""
    items = {s.strip() for s in text.split(",") if s.strip()}
    if items & {"all", "*"}:
        return frozenset(SCOPES)
    unknown = sorted(items - SCOPES.keys())
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(unknown)}; known: {', '.join(sorted(SCOPES))}")
    if not items:
        raise ValueError("at least one scope is required")
    return frozenset(items)
