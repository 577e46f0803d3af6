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
    "A price an owner pays will change at migrate_existing_at: the per-owner notice, sent once by the "
    "price_migrations job when the date is COMMERCE_PRICE_NOTICE_DAYS away (or nearer)."))
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
    holding: str | None = None  # the subscription (sub_...) or metered plan (mtr_...) that moves


@event("price.migration_scheduled", description=(
    "A catalog revision scheduled existing owners of older versions of a price line to move to a new version "
    "at migrate_existing_at (each owner moves at its first renewal from then on)."))
class PriceMigrationScheduled(Event, frozen=True):
    revision: int
    module: str
    slot: str
    to_version: int | None
    currency: str | None
    amount_minor_after: int | None
    migrate_existing_at: datetime
    affected_owners: int


@event("price.migration_canceled", description=(
    "A scheduled price migration was removed before its date (by the vendor's cancel or a catalog revision "
    "without the date): owners keep the version they pay."))
class PriceMigrationCanceled(Event, frozen=True):
    revision: int
    module: str
    slot: str
    version: int | None
    actor: str
