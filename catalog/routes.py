"""HTTP routes of the catalog: decode, call one use case, encode (offers: entitlements/routes.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody, Parameter

from app.deps import ClockDep, CurrentPrincipal, DbSession
from app.errors import FieldError, ValidationFailed
from app.idempotency import run_idempotent
from app.params import CursorParam, Limit
from app.schemas import decode_int_cursor, encode_cursor
from catalog import service
from catalog.schemas import (
    ApplyRead,
    AvailabilityMatrix,
    CatalogSource,
    CategoryList,
    FeatureList,
    FeatureRead,
    ModuleList,
    ModuleRead,
    PlanRead,
    PolicyList,
    PolicyRead,
    PriceList,
    PriceRead,
    RevisionDetail,
    RevisionPage,
)
from catalog.spec import CatalogDoc

_KEY = r"^[a-z0-9][a-z0-9_.-]*$"
ModuleKey = Annotated[str, Parameter(description="Module key", pattern=_KEY, max_length=60)]
FeatureKey = Annotated[str, Parameter(description="Feature key", pattern=_KEY, max_length=60)]
PolicyKey = Annotated[str, Parameter(description="Policy key", pattern=_KEY, max_length=60)]
CategoryFilter = Annotated[str | None, Parameter(description="Only this category", pattern=_KEY, max_length=60)]
ModuleStatusFilter = Annotated[Literal["draft", "active", "retired"] | None, Parameter(description="Only this status")]
FeatureStatusFilter = Annotated[Literal["active", "retired"] | None, Parameter(description="Only this status")]
CurrencyFilter = Annotated[str | None, Parameter(description="ISO 4217 currency", pattern=r"^[A-Z]{3}$",
                                                 max_length=3)]
HistoryFlag = Annotated[bool, Parameter(description="Include superseded versions")]
PriceId = Annotated[str, Parameter(description="Price version id (price_...)", pattern=r"^price_[0-9a-z]{26}$",
                                   max_length=40)]
RolesParam = Annotated[str | None, Parameter(description="Comma-separated roles (default: the roles the rules name)",
                                             pattern=r"^[a-z0-9_.,-]*$", max_length=1000)]
SegmentParam = Annotated[str, Parameter(description="The account segment to evaluate for", pattern=r"^[a-z0-9_.-]*$",
                                        max_length=60)]
RegionParam = Annotated[str, Parameter(description="The account region to evaluate for", pattern=r"^[a-z0-9_.-]*$",
                                       max_length=60)]
RevisionNo = Annotated[int, Parameter(description="Catalog revision number", ge=1, le=1_000_000_000)]


def _source(data: CatalogSource) -> CatalogDoc:
    return service.parse_source(toml=data.toml, document=data.document)


class CatalogController(Controller):
    path = "/v1/catalog"
    tags = ["Catalog"]

    @post("/plan", opt={"scope": "catalog:write", "owner": "vendor"},
          status_code=200, summary="Diff a catalog document against the live catalog",
          description="Validates the document (TOML text or JSON) and lists what apply would change; writes nothing.")
    async def plan(self, db_session: DbSession, clock: ClockDep, data: JSONBody[CatalogSource]) -> PlanRead:
        result = await service.plan_document(db_session, _source(data), clock=clock)
        return PlanRead(base_revision=result.base_revision, empty=not result.changes, summary=result.summary,
                        changes=result.changes)

    @post("/apply", opt={"scope": "catalog:write", "owner": "vendor", "idempotency": "optional"},
          status_code=200, summary="Apply a catalog document as a new revision",
          description="All or nothing; applying the same document again changes nothing (applied=false). "
                      "Send expected_revision (the plan's base_revision) to refuse if the catalog moved on.")
    async def apply(
        self, request: Request[Any, Any, Any], db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
        data: JSONBody[CatalogSource],
    ) -> Response[ApplyRead]:
        async def produce() -> tuple[int, ApplyRead]:
            r = await service.apply_document(db_session, _source(data), actor=principal.actor, clock=clock,
                                             expected_revision=data.expected_revision)
            return 200, ApplyRead(applied=r.applied, revision=r.revision, base_revision=r.base_revision,
          summary=r.summary, changes=r.changes)

        return await run_idempotent(request, db_session, produce)

    @get("/document", opt={"scope": "catalog:read", "owner": "catalog"},
          summary="The live catalog as a document (what plan/apply accept)")
    async def export(self, db_session: DbSession) -> CatalogDoc:
        return await service.export_document(db_session)

    @get("/availability", opt={"scope": "catalog:read", "owner": "catalog"},
         summary="The availability matrix: every module for each role, with the effect and its reason",
         description="A user holding only that role and owning nothing, in an account of this segment and region "
                     "(and currency: a module without a price in it is visible, not buyable), decided as "
                     "GET /v1/offers decides. Roles default to those the policies' rules name.")
    async def availability(self, request: Request[Any, Any, Any], db_session: DbSession, roles: RolesParam = None,
                           segment: SegmentParam = "", region: RegionParam = "",
                           currency: CurrencyFilter = None) -> AvailabilityMatrix:
        repeated = sorted(k for k in set(request.query_params.keys()) if len(request.query_params.getall(k)) > 1)
        if repeated:
            raise ValidationFailed("Give each query parameter once; roles are comma-separated in one parameter.",
                                   errors=[FieldError(field=f"query.{k}"[:60], message="repeated") for k in repeated])
        wanted = sorted({r for r in roles.split(",") if r}) if roles else None  # a role no rule names: defaults
        return await service.availability_matrix(db_session, roles=wanted, segment=segment, region=region,
                                                 currency=currency)

    @get("/categories", opt={"scope": "catalog:read", "owner": "catalog"},
          summary="List categories")
    async def list_categories(self, db_session: DbSession) -> CategoryList:
        return CategoryList(data=await service.list_categories(db_session))

    @get("/features", opt={"scope": "catalog:read", "owner": "catalog"},
          summary="List features")
    async def list_features(self, db_session: DbSession, status: FeatureStatusFilter = None) -> FeatureList:
        return FeatureList(data=await service.list_features(db_session, status=status))

    @get("/features/{feature:str}", opt={"scope": "catalog:read", "owner": "catalog"},
          summary="Get a feature")
    async def get_feature(self, db_session: DbSession, feature: FeatureKey) -> FeatureRead:
        return await service.get_feature(db_session, feature)

    @get("/modules", opt={"scope": "catalog:read", "owner": "catalog"},
          summary="List modules with their features and current prices")
    async def list_modules(
        self, db_session: DbSession, category: CategoryFilter = None, status: ModuleStatusFilter = None,
    ) -> ModuleList:
        return ModuleList(data=await service.list_modules(db_session, category=category, status=status))

    @get("/modules/{module:str}", opt={"scope": "catalog:read", "owner": "catalog"},
          summary="Get a module")
    async def get_module(self, db_session: DbSession, module: ModuleKey) -> ModuleRead:
        return await service.get_module(db_session, module)

    @get("/modules/{module:str}/prices", opt={"scope": "catalog:read", "owner": "catalog"},
          summary="A module's prices, current or with history")
    async def list_prices(
        self, db_session: DbSession, module: ModuleKey, currency: CurrencyFilter = None, history: HistoryFlag = False,
    ) -> PriceList:
        return PriceList(data=await service.list_prices(db_session, module, currency=currency, history=history))

    @get("/prices/{price_id:str}", opt={"scope": "catalog:read", "owner": "catalog"},
          summary="Get one price version")
    async def get_price(self, db_session: DbSession, price_id: PriceId) -> PriceRead:
        return await service.get_price(db_session, price_id)

    @post("/prices/{price_id:str}/migration/cancel", opt={"scope": "catalog:write", "owner": "vendor"},
          status_code=200, summary="Cancel the migration of existing owners scheduled on a price version",
          description="Only before its date (409 after, or when none is scheduled); owners keep the version they "
                      "pay. Audited; publishes price.migration_canceled.")
    async def cancel_migration(self, db_session: DbSession, principal: CurrentPrincipal, clock: ClockDep,
                               price_id: PriceId) -> PriceRead:
        await service.cancel_migration(db_session, price_id, actor=principal.actor, clock=clock)
        return await service.get_price(db_session, price_id)

    @get("/policies", opt={"scope": "catalog:read", "owner": "catalog"},
          summary="List availability policies")
    async def list_policies(self, db_session: DbSession) -> PolicyList:
        return PolicyList(data=await service.list_policies(db_session))

    @get("/policies/{policy:str}", opt={"scope": "catalog:read", "owner": "catalog"},
          summary="Get an availability policy")
    async def get_policy(self, db_session: DbSession, policy: PolicyKey) -> PolicyRead:
        return await service.get_policy(db_session, policy)

    @get("/revisions", opt={"scope": "catalog:read", "owner": "catalog"},
          summary="List catalog revisions, newest first")
    async def list_revisions(
        self, db_session: DbSession, limit: Limit = 50, cursor: CursorParam = None,
    ) -> RevisionPage:
        rows = await service.list_revisions(db_session, before=decode_int_cursor(cursor), limit=limit)
        next_cursor = encode_cursor(str(rows[-1].revision)) if len(rows) == limit else None
        return RevisionPage(data=rows, next_cursor=next_cursor)

    @get("/revisions/{revision:str}", opt={"scope": "catalog:read", "owner": "catalog"},
          summary="Get a catalog revision with its document")
    async def get_revision(self, db_session: DbSession, revision: RevisionNo) -> RevisionDetail:
        return await service.get_revision(db_session, revision)
