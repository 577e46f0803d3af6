"""Imports every package's tables so the metadata (and Alembic's autogenerate) sees all of them."""

from app.accounts.models import Account, User
from app.audit import AuditEntry
from app.db import Base
from app.idempotency import IdempotencyRecord
from app.keys import ApiKey
from app.outbox import OutboxEvent
from catalog.models import (
    CatalogCategory,
    CatalogFeature,
    CatalogModule,
    CatalogModuleFeature,
    CatalogPolicy,
    CatalogPrice,
    CatalogRevision,
    CatalogSetting,
)
from entitlements.models import DemandSignal, Grant, SeatAssignment, Trial, UsageCounter, UsageEvent

metadata = Base.metadata

__all__ = [
    "Account", "ApiKey", "AuditEntry", "CatalogCategory", "CatalogFeature", "CatalogModule", "CatalogModuleFeature",
    "CatalogPolicy", "CatalogPrice", "CatalogRevision", "CatalogSetting", "DemandSignal", "Grant", "IdempotencyRecord",
    "OutboxEvent", "SeatAssignment", "Trial", "UsageCounter", "UsageEvent", "User", "metadata",
]
