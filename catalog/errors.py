"""Catalog errors with stable codes; each names its culprit."""

from __future__ import annotations

from app.errors import Conflict, NotFound, Unprocessable


class CatalogInvalid(Unprocessable):
    """The catalog document is malformed or inconsistent; ``errors`` lists each bad field by path."""

    status, code, title = 422, "catalog_invalid", "Invalid catalog"


class CatalogRevisionConflict(Conflict):
    """``expected_revision`` no longer matches the live catalog (someone applied in between)."""

    status, code, title = 409, "catalog_revision_conflict", "The live catalog has moved on"


class CatalogObjectNotFound(NotFound):
    status, code, title = 404, "not_found", "Not found"


class MigrationNotCancelable(Conflict):
    """The price has no scheduled migration, or its date has come (owners may already have moved)."""

    status, code, title = 409, "migration_not_cancelable", "The price migration cannot be canceled"
