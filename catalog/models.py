"""Catalog tables. All global (vendor-level, no account_id): a Citus deployment makes them reference tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from catalog.spec import ModuleStatus


class CatalogRevision(Base):
    """One applied catalog document; numbers grow by one per apply that changed something."""

    __tablename__ = "catalog_revisions"

    revision: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    applied_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(120))
    source_sha256: Mapped[str] = mapped_column(String(64))
    change_count: Mapped[int]
    summary: Mapped[dict[str, Any]] = mapped_column(JSONB)
    document: Mapped[dict[str, Any]] = mapped_column(JSONB)


class CatalogSetting(Base):
    """Catalog-wide settings as key/value (``default_effect``)."""

    __tablename__ = "catalog_settings"

    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    revision: Mapped[int]


class CatalogCategory(Base):
    __tablename__ = "catalog_categories"

    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    revision: Mapped[int]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CatalogFeature(Base):
    """A capability the vendor's code checks; ``spec`` is the validated document entry."""

    __tablename__ = "catalog_features"

    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB)
    revision: Mapped[int]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CatalogModule(Base):
    """The purchasable unit; never deleted (owners keep retired modules)."""

    __tablename__ = "catalog_modules"

    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(60), index=True)
    status: Mapped[ModuleStatus] = mapped_column(String(16))
    trial_days: Mapped[int | None]
    tax_code: Mapped[str | None] = mapped_column(String(40), default=None)
    requires: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    excludes: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    revision: Mapped[int]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CatalogModuleFeature(Base):
    """What a module grants: a feature, with its limit (limit features) or value (config features)."""

    __tablename__ = "catalog_module_features"
    __table_args__ = (Index("ix_catalog_module_features_feature_key", "feature_key"),)

    module_key: Mapped[str] = mapped_column(ForeignKey("catalog_modules.key"), primary_key=True)
    feature_key: Mapped[str] = mapped_column(ForeignKey("catalog_features.key"), primary_key=True)
    limit_value: Mapped[int | None]
    config_value: Mapped[str | None] = mapped_column(String(500))


class CatalogPrice(Base):
    """An immutable price version; only ``is_current``, ``superseded_*`` and the migration date move."""

    __tablename__ = "catalog_prices"
    __table_args__ = (
        UniqueConstraint("module_key", "slot", "version"),
        Index("ix_catalog_prices_current_slot", "module_key", "slot", unique=True,
              postgresql_where=text("is_current")),
        CheckConstraint("amount_minor IS NULL OR amount_minor >= 0", name="amount_non_negative"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    price_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    module_key: Mapped[str] = mapped_column(ForeignKey("catalog_modules.key"))
    slot: Mapped[str] = mapped_column(String(40))
    version: Mapped[int]
    is_current: Mapped[bool]
    model: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int | None]
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB)
    migrate_existing_at: Mapped[datetime | None]
    revision: Mapped[int]
    created_at: Mapped[datetime]
    superseded_at: Mapped[datetime | None]
    superseded_revision: Mapped[int | None]


class CatalogPolicy(Base):
    """Ordered availability rules for one module or one category."""

    __tablename__ = "catalog_policies"

    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    module_key: Mapped[str | None] = mapped_column(String(60))
    category: Mapped[str | None] = mapped_column(String(60))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB)
    revision: Mapped[int]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
