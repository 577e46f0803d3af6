"""Events about accounts and users that only in-process subscribers hear (no webhook)."""

from __future__ import annotations

from app.events import Event, internal_event


@internal_event
class UserRolesChanged(Event, frozen=True):
    """A user was created, or its roles changed (``roles`` as they are now)."""

    account_id: str
    user_id: str
    roles: list[str]
