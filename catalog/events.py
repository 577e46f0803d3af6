"""The events the catalog publishes: their payload types are their entries in the event catalogue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.events import Event, event


class CatalogChange(Event, frozen=True):
    kind: str
    action: str
    key: str


@event("catalog.revision_applied", description="A new catalog revision was applied (catalog as code).")
class CatalogRevisionApplied(Event, frozen=True):
    revision: int
    summary: dict[str, Any]
    changes: list[CatalogChange]


@event("price.change_scheduled", description=(
    "A price an owner pays will change at migrate_existing_at (sent ahead of the date, per owner)."))
class PriceChangeScheduled(Event, frozen=True):
    revision: int
    module: str | None
    slot: str | None
    user_id: str | None
    from_price_id: str
    to_version: int | None
    currency: str | None
    amount_minor_before: int | None
    amount_minor_after: int | None
    migrate_existing_at: datetime | None
