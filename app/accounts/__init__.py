"""Customer accounts and their users (the tenancy of the service)."""

from app.accounts.service import get_account, get_user, resolve_account, resolve_user

__all__ = ["get_account", "get_user", "resolve_account", "resolve_user"]
