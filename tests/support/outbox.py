"""Raw outbox rows for tests of the outbox and the dispatcher themselves (the product only publishes typed
events through app.events.publish)."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import Clock
from app.ids import new_id
from app.outbox import write


async def emit(session: AsyncSession, *, clock: Clock, type: str, payload: Any, account_id: str | None = None,
               version: int = 1) -> str:
    """Write one event of a raw type and payload in the caller's transaction; returns its id."""
    event_id = new_id("evt")
    write(session, event_id=event_id, type=type, version=version, account_id=account_id, occurred_at=clock.now(),
          payload=msgspec.to_builtins(payload))
    return event_id
