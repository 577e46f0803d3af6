"""Canceling a scheduled price migration: the live catalog without that date, applied as a new revision."""

from __future__ import annotations

import msgspec
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.clock import Clock
from app.events import publish
from catalog.errors import CatalogObjectNotFound, MigrationNotCancelable
from catalog.events import PriceMigrationCanceled
from catalog.models import CatalogPrice
from catalog.service._apply import apply_document
from catalog.service._live import current_revision, load_live
from catalog.spec import price_slot


async def cancel_migration(session: AsyncSession, price_id: str, *, actor: str, clock: Clock) -> CatalogPrice:
    """Remove the migration scheduled on ``price_id`` before its date; owners keep the version they pay.

    A current version is changed through ``apply_document`` (a new revision, so the catalog file exported
    afterwards has no date either); a superseded one, which the document cannot name, is changed in place.
    Both are audited and publish ``price.migration_canceled``.
    """
    row = await session.get(CatalogPrice, price_id, with_for_update=True)
    if row is None:
        raise CatalogObjectNotFound(f"Price {price_id!r} does not exist.", price=price_id)
    at = row.migrate_existing_at
    if at is None:
        raise MigrationNotCancelable(f"Price {price_id!r} has no scheduled migration.", price=price_id)
    if at <= clock.now():
        raise MigrationNotCancelable(f"The migration to {price_id!r} took effect at {at.isoformat()}; schedule a "
                                     "new price version to move owners again.", price=price_id)
    if row.is_current:
        live = await load_live(session)
        modules = [msgspec.structs.replace(m, prices=[
            msgspec.structs.replace(p, migrate_existing_at=None)
            if m.key == row.module_key and price_slot(p) == row.slot else p for p in m.prices])
            for m in live.doc.modules]
        await apply_document(session, msgspec.structs.replace(live.doc, modules=modules), actor=actor, clock=clock)
    else:
        await session.execute(update(CatalogPrice).where(CatalogPrice.price_id == price_id)
                              .values(migrate_existing_at=None))
        await publish(session, PriceMigrationCanceled(
            revision=await current_revision(session), module=row.module_key, slot=row.slot, version=row.version,
            actor=actor), clock=clock)
    await audit.record(session, clock=clock, actor=actor, action="price.migration_canceled", target_type="price",
                       target_id=price_id, before={"migrate_existing_at": at.isoformat()},
                       after={"migrate_existing_at": None})
    await session.refresh(row)
    return row
