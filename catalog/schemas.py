"""HTTP contract of the catalog: the plan/apply body, read models and offers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from msgspec import Meta

from app.schemas import Input, Output
from catalog.domain import Change, MatrixCell, Offer, PriceView, Unlock
from catalog.spec import CatalogDoc, Rule

TomlSource = Annotated[str, Meta(min_length=1, max_length=1_000_000, pattern=r"^[^\x00]*$",
                                 description="The whole catalog as TOML text")]
RevisionNumber = Annotated[int, Meta(ge=0, le=10**9)]

PriceRead = PriceView


class CatalogSource(Input):
    """A whole catalog, as TOML text (``toml``) or as the same structure in JSON (``document``)."""

    toml: TomlSource | None = None
    document: CatalogDoc | None = None
    expected_revision: RevisionNumber | None = None


class PlanRead(Output, frozen=True):
    base_revision: int
    empty: bool
    summary: dict[str, int]
    changes: list[Change]


class ApplyRead(Output, frozen=True):
    applied: bool
    revision: int
    base_revision: int
    summary: dict[str, int]
    changes: list[Change]


class CategoryRead(Output, frozen=True):
    key: str
    name: str
    description: str
    revision: int
    created_at: datetime
    updated_at: datetime


class FeatureRead(Output, frozen=True):
    key: str
    name: str
    kind: str
    description: str
    status: str
    unit: str | None
    period: str | None
    value: str | None
    revision: int
    created_at: datetime
    updated_at: datetime


class ModuleRead(Output, frozen=True):
    key: str
    name: str
    description: str
    category: str
    status: str
    trial_days: int | None
    requires: list[str]
    excludes: list[str]
    features: list[Unlock]
    current_prices: list[PriceView]
    revision: int
    created_at: datetime
    updated_at: datetime


class PolicyRead(Output, frozen=True):
    key: str
    module: str | None
    category: str | None
    description: str
    default: str | None
    rules: list[Rule]
    revision: int
    created_at: datetime
    updated_at: datetime


class RevisionRead(Output, frozen=True):
    revision: int
    applied_at: datetime
    actor: str
    source_sha256: str
    change_count: int
    summary: dict[str, Any]


class RevisionDetail(Output, frozen=True):
    revision: int
    applied_at: datetime
    actor: str
    source_sha256: str
    change_count: int
    summary: dict[str, Any]
    document: CatalogDoc


class CategoryList(Output, frozen=True):
    data: list[CategoryRead]


class FeatureList(Output, frozen=True):
    data: list[FeatureRead]


class ModuleList(Output, frozen=True):
    data: list[ModuleRead]


class PriceList(Output, frozen=True):
    data: list[PriceView]


class PolicyList(Output, frozen=True):
    data: list[PolicyRead]


class RevisionPage(Output, frozen=True):
    data: list[RevisionRead]
    next_cursor: str | None


class OfferList(Output, frozen=True):
    """What one user may see and buy, evaluated against the live catalog revision."""

    user: str
    account: str
    roles: list[str]
    segment: str
    region: str
    currency: str
    revision: int
    data: list[Offer]


class MatrixModule(Output, frozen=True):
    key: str
    name: str
    category: str
    status: str


class AvailabilityMatrix(Output, frozen=True):
    """Module x role: the effect and reason for a user with only that role (owning nothing) in an account of
    this segment and region; the same evaluation as GET /v1/offers."""

    revision: int
    segment: str
    region: str
    currency: str | None
    roles: list[str]
    modules: list[MatrixModule]
    cells: list[MatrixCell]
