"""Read use cases: features, categories, modules, prices (current and historical), policies,
revisions, and the offers a user sees."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Account, User
from catalog import domain
from catalog.domain import Audience, Decision, Live, PriceView, price_view
from catalog.errors import CatalogObjectNotFound
from catalog.models import (
    CatalogCategory,
    CatalogFeature,
    CatalogModule,
    CatalogModuleFeature,
    CatalogPolicy,
    CatalogPrice,
    CatalogRevision,
)
from catalog.schemas import (
    AvailabilityMatrix,
    CategoryRead,
    FeatureRead,
    MatrixModule,
    ModuleRead,
    OfferList,
    PolicyRead,
    RevisionDetail,
    RevisionRead,
)
from catalog.service._live import (
    feature_from_row,
    grant_value,
    load_live,
    module_from_row,
    policy_from_row,
    price_from_row,
)
from catalog.spec import CatalogDoc, ConfigFeature, LimitFeature


def _category_read(row: CatalogCategory) -> CategoryRead:
    return CategoryRead(key=row.key, name=row.name, description=row.description, revision=row.revision,
                        created_at=row.created_at, updated_at=row.updated_at)


def _feature_read(row: CatalogFeature) -> FeatureRead:
    f = feature_from_row(row)
    return FeatureRead(
        key=row.key, name=f.name, kind=row.kind, description=f.description, status=f.status,
        unit=f.unit if isinstance(f, LimitFeature) else None, period=f.period if isinstance(f, LimitFeature) else None,
        value=f.value if isinstance(f, ConfigFeature) else None, revision=row.revision, created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def list_categories(session: AsyncSession) -> list[CategoryRead]:
    return [_category_read(r) for r in await session.scalars(select(CatalogCategory).order_by(CatalogCategory.key))]


async def list_features(session: AsyncSession, *, status: str | None = None) -> list[FeatureRead]:
    query = select(CatalogFeature).order_by(CatalogFeature.key)
    if status is not None:
        query = query.where(CatalogFeature.status == status)
    return [_feature_read(r) for r in await session.scalars(query)]


async def get_feature(session: AsyncSession, key: str) -> FeatureRead:
    row = await session.get(CatalogFeature, key)
    if row is None:
        raise CatalogObjectNotFound(f"Feature {key!r} does not exist.", feature=key)
    return _feature_read(row)


async def _module_reads(session: AsyncSession, rows: list[CatalogModule]) -> list[ModuleRead]:
    keys = [r.key for r in rows]
    grants: dict[str, list[CatalogModuleFeature]] = {}
    for g in await session.scalars(select(CatalogModuleFeature).where(CatalogModuleFeature.module_key.in_(keys))):
        grants.setdefault(g.module_key, []).append(g)
    prices: dict[str, list[PriceView]] = {}
    for p in await session.scalars(select(CatalogPrice).where(CatalogPrice.module_key.in_(keys),
                                                              CatalogPrice.is_current).order_by(CatalogPrice.slot)):
        prices.setdefault(p.module_key, []).append(price_view(price_from_row(p)))
    features = {f.key: feature_from_row(f) for f in await session.scalars(select(CatalogFeature))}
    out = []
    for r in rows:
        module = module_from_row(r, grants.get(r.key, []), [])
        out.append(ModuleRead(
            key=r.key, name=r.name, description=r.description, category=r.category, status=r.status,
            trial_days=r.trial_days, requires=list(r.requires), excludes=list(r.excludes),
            features=domain.unlocks(module, features), current_prices=prices.get(r.key, []), revision=r.revision,
            created_at=r.created_at, updated_at=r.updated_at,
        ))
    return out


async def list_modules(
    session: AsyncSession, *, category: str | None = None, status: str | None = None,
) -> list[ModuleRead]:
    query = select(CatalogModule).order_by(CatalogModule.key)
    if category is not None:
        query = query.where(CatalogModule.category == category)
    if status is not None:
        query = query.where(CatalogModule.status == status)
    return await _module_reads(session, list(await session.scalars(query)))


async def get_module(session: AsyncSession, key: str) -> ModuleRead:
    row = await session.get(CatalogModule, key)
    if row is None:
        raise CatalogObjectNotFound(f"Module {key!r} does not exist.", module=key)
    return (await _module_reads(session, [row]))[0]


async def list_prices(
    session: AsyncSession, module: str, *, currency: str | None = None, history: bool = False,
) -> list[PriceView]:
    """Current versions of the module's price lines; with ``history``, every version, newest first per slot."""
    if await session.get(CatalogModule, module) is None:
        raise CatalogObjectNotFound(f"Module {module!r} does not exist.", module=module)
    query = select(CatalogPrice).where(CatalogPrice.module_key == module).order_by(
        CatalogPrice.slot, CatalogPrice.version.desc())
    if not history:
        query = query.where(CatalogPrice.is_current)
    if currency is not None:
        query = query.where(CatalogPrice.currency == currency)
    return [price_view(price_from_row(r)) for r in await session.scalars(query)]


async def get_price(session: AsyncSession, price_id: str) -> PriceView:
    """One price version by id (what a purchase records)."""
    row = await session.get(CatalogPrice, price_id)
    if row is None:
        raise CatalogObjectNotFound(f"Price {price_id!r} does not exist.", price=price_id)
    return price_view(price_from_row(row))


async def current_prices(session: AsyncSession, module: str, currency: str) -> list[PriceView]:
    """The module's current price versions in ``currency`` (one per model and interval)."""
    return await list_prices(session, module, currency=currency)


def _policy_read(row: CatalogPolicy) -> PolicyRead:
    p = policy_from_row(row)
    return PolicyRead(key=p.key, module=p.module, category=p.category, description=p.description, default=p.default,
                      rules=list(p.rules), revision=row.revision, created_at=row.created_at, updated_at=row.updated_at)


async def list_policies(session: AsyncSession) -> list[PolicyRead]:
    return [_policy_read(r) for r in await session.scalars(select(CatalogPolicy).order_by(CatalogPolicy.key))]


async def get_policy(session: AsyncSession, key: str) -> PolicyRead:
    row = await session.get(CatalogPolicy, key)
    if row is None:
        raise CatalogObjectNotFound(f"Policy {key!r} does not exist.", policy=key)
    return _policy_read(row)


def _revision_read(r: CatalogRevision) -> RevisionRead:
    return RevisionRead(revision=r.revision, applied_at=r.applied_at, actor=r.actor, source_sha256=r.source_sha256,
                        change_count=r.change_count, summary=r.summary)


async def list_revisions(session: AsyncSession, *, before: int | None, limit: int) -> list[RevisionRead]:
    """Newest first."""
    query = select(CatalogRevision).order_by(CatalogRevision.revision.desc()).limit(limit)
    if before is not None:
        query = query.where(CatalogRevision.revision < before)
    return [_revision_read(r) for r in await session.scalars(query)]


async def get_revision(session: AsyncSession, revision: int) -> RevisionDetail:
    import msgspec

    r = await session.get(CatalogRevision, revision)
    if r is None:
        raise CatalogObjectNotFound(f"Catalog revision {revision} does not exist.", revision=revision)
    return RevisionDetail(revision=r.revision, applied_at=r.applied_at, actor=r.actor, source_sha256=r.source_sha256,
                          change_count=r.change_count, summary=r.summary,
                          document=msgspec.convert(r.document, CatalogDoc))


async def export_document(session: AsyncSession) -> CatalogDoc:
    """The live catalog as a document (retired modules and features included, with their status)."""
    return (await load_live(session)).doc


async def modules_granting(session: AsyncSession, feature: str) -> dict[str, int | str | bool]:
    """Module keys that grant ``feature``, with the limit or value each grants (denial -> offer)."""
    rows = await session.scalars(select(CatalogModuleFeature).where(CatalogModuleFeature.feature_key == feature))
    return {r.module_key: grant_value(r) for r in rows}


def evaluate_availability(live: Live, module: str, who: Audience) -> Decision:
    """Availability of one module for an audience against a loaded live catalog (pure)."""
    found = next((m for m in live.doc.modules if m.key == module), None)
    if found is None:
        raise CatalogObjectNotFound(f"Module {module!r} does not exist.", module=module)
    return domain.availability(live.doc, found, who)


async def offers_for(session: AsyncSession, user: User, *, owned: frozenset[str],
                     trials_used: frozenset[str] = frozenset()) -> OfferList:
    """Every module the user may see, with effect and reason, price in the account's currency, what it
    unlocks, trial availability and unmet requirements. ``owned``: the modules the user holds now (the
    caller asks entitlements; the catalog never does)."""
    account = await session.get_one(Account, user.account_id)
    who = Audience(roles=frozenset(user.roles), segment=account.segment, region=account.region, owned=owned)
    live = await load_live(session)
    return OfferList(user=user.external_id, account=account.external_id, roles=sorted(user.roles),
                     segment=account.segment, region=account.region, currency=account.currency,
                     revision=live.revision, data=domain.offers(live, who, currency=account.currency,
                                                       trials_used=trials_used))


async def availability_matrix(session: AsyncSession, *, roles: list[str] | None, segment: str, region: str,
                              currency: str | None) -> AvailabilityMatrix:
    """GET /v1/catalog/availability: every module for each role (default: the roles the rules name)."""
    live = await load_live(session)
    wanted = roles if roles else domain.roles_named(live.doc)
    modules = [MatrixModule(key=m.key, name=m.name, category=m.category, status=m.status)
               for m in sorted(live.doc.modules, key=lambda m: (m.category, m.key))]
    return AvailabilityMatrix(revision=live.revision, segment=segment, region=region, currency=currency,
                              roles=wanted, modules=modules,
                              cells=domain.matrix(live, roles=wanted, segment=segment, region=region,
                                                  currency=currency))
