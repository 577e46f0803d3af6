"""Loading the live catalog from its tables into plain domain values, and the price-owner seam."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.domain import Live, LivePrice, PriceOwner
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
from catalog.spec import EFFECTS, CatalogDoc, Category, Effect, Feature, GrantValue, Module, Policy, Price, normalise

# The price-owner source: who holds which price version is billing's knowledge (subscriptions, metered
# plans), and billing sits above the catalog; the app's wiring puts billing's query on every session it opens
# (``owner_source_info``), as it puts the event bus there. A session opened elsewhere knows no owners.
OwnerSource = Callable[[AsyncSession, str, str, int], Awaitable[list[PriceOwner]]]
_OWNERS_KEY = "catalog.price_owners"


def owner_source_info(source: OwnerSource) -> dict[str, object]:
    """The ``info`` a sessionmaker passes to its sessions so that ``price_owners`` asks ``source``."""
    return {_OWNERS_KEY: source}


async def price_owners(session: AsyncSession, module: str, slot: str, *, before_version: int) -> list[PriceOwner]:
    """Holders of a version of this price line older than ``before_version`` (for migration plans and notices),
    with what each pays now; empty on a session that carries no owner source."""
    source = session.info.get(_OWNERS_KEY)
    if source is None:
        return []
    owners: list[PriceOwner] = await source(session, module, slot, before_version)
    return owners


async def price_in_force(session: AsyncSession, price_id: str, *, at: datetime) -> LivePrice:
    """The version an owner of ``price_id`` pays for a period starting ``at``: the newest later version of
    the same line whose ``migrate_existing_at`` has come by then, else ``price_id`` itself (grandfathered)."""
    bought = await session.get(CatalogPrice, price_id)
    assert bought is not None, f"price {price_id} is recorded by a purchase, so it exists"
    rows = (await session.scalars(select(CatalogPrice).where(
        CatalogPrice.module_key == bought.module_key, CatalogPrice.slot == bought.slot,
        CatalogPrice.version > bought.version, CatalogPrice.migrate_existing_at.is_not(None),
        CatalogPrice.migrate_existing_at <= at).order_by(CatalogPrice.version.desc()).limit(1))).all()
    return price_from_row(rows[0] if rows else bought)


async def price_version(session: AsyncSession, price_id: str) -> LivePrice:
    """One exact price version with its terms (what a purchase recorded)."""
    return price_from_row(await session.get_one(CatalogPrice, price_id))


async def scheduled_migrations(session: AsyncSession, *, due_after: datetime, due_before: datetime
                               ) -> list[LivePrice]:
    """Price versions whose migration of existing owners is scheduled in (``due_after``, ``due_before``],
    soonest first."""
    rows = await session.scalars(select(CatalogPrice).where(
        CatalogPrice.migrate_existing_at > due_after, CatalogPrice.migrate_existing_at <= due_before)
        .order_by(CatalogPrice.migrate_existing_at, CatalogPrice.price_id))
    return [price_from_row(r) for r in rows]


def price_from_row(row: CatalogPrice) -> LivePrice:
    price: Price = msgspec.convert(row.spec, Price)
    price = msgspec.structs.replace(price, migrate_existing_at=row.migrate_existing_at)
    return LivePrice(price_id=row.price_id, module=row.module_key, version=row.version, price=price,
                     is_current=row.is_current, revision=row.revision, created_at=row.created_at,
                     superseded_at=row.superseded_at)


def feature_from_row(row: CatalogFeature) -> Feature:
    feature: Feature = msgspec.convert(row.spec, Feature)
    return feature


def policy_from_row(row: CatalogPolicy) -> Policy:
    return msgspec.convert(row.spec, Policy)


def grant_value(row: CatalogModuleFeature) -> GrantValue:
    if row.limit_value is not None:
        return row.limit_value
    return row.config_value if row.config_value is not None else True


def module_from_row(row: CatalogModule, grants: list[CatalogModuleFeature], prices: list[Price]) -> Module:
    return Module(
        key=row.key, name=row.name, description=row.description, category=row.category,
        status=row.status,
        trial_days=row.trial_days, tax_code=row.tax_code, requires=list(row.requires), excludes=list(row.excludes),
        features={g.feature_key: grant_value(g) for g in sorted(grants, key=lambda g: g.feature_key)},
        prices=prices,
    )


async def current_revision(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.coalesce(func.max(CatalogRevision.revision), 0))) or 0)


# Loaded catalogs by (database, revision, document hash, applied at): a revision never changes once
# applied, so an entry can only go stale by being unused; the key also tells apart a revision number
# reused after a rolled-back apply. A handful of entries bounds the memory.
_LIVE_CACHE: dict[tuple[str, int, str, str], Live] = {}
_LIVE_CACHE_MAX = 8


_MEMO = "catalog.live"  # session.info: (the transaction it was read in, the catalog)


def forget_live(session: AsyncSession) -> None:
    """Drop this transaction's memo of the live catalog (a new revision was just written in it)."""
    session.info.pop(_MEMO, None)


async def load_live(session: AsyncSession) -> Live:
    """The whole live catalog: one small query when this process has already loaded its revision, none when
    this transaction (the innermost one: a rolled-back savepoint takes its memo along) already asked."""
    transaction = session.get_nested_transaction() or session.get_transaction()
    memo = session.info.get(_MEMO)
    if memo is not None and transaction is not None and memo[0] is transaction:
        live: Live = memo[1]
        return live
    live = await _load_live_head(session)
    if transaction is not None:
        session.info[_MEMO] = (transaction, live)
    return live


def head_sql() -> str:
    """SQL of the live catalog's head (revision, source_sha256, applied_at), for another package's one-statement
    read; with ``cached_live`` it answers ``load_live`` without a round trip of its own."""
    return ("SELECT r.revision, r.source_sha256, r.applied_at FROM catalog_revisions r "
            "ORDER BY r.revision DESC LIMIT 1")


def cached_live(url: str, revision: int, source_sha256: str, applied_at: str) -> Live | None:
    """The live catalog of this head revision if this process has loaded it (``url``: the engine's, rendered
    without its password; ``applied_at`` in ISO 8601), else None."""
    return _LIVE_CACHE.get((url, revision, source_sha256, applied_at))


async def _load_live_head(session: AsyncSession) -> Live:
    head = (await session.execute(
        select(CatalogRevision.revision, CatalogRevision.source_sha256, CatalogRevision.applied_at)
        .order_by(CatalogRevision.revision.desc()).limit(1))).first()
    if head is None:
        return await _load_live(session, 0)
    key = (session.get_bind().engine.url.render_as_string(hide_password=True), int(head[0]), str(head[1]),
           head[2].isoformat())
    cached = _LIVE_CACHE.get(key)
    if cached is not None:
        return cached
    live = await _load_live(session, int(head[0]))
    if len(_LIVE_CACHE) >= _LIVE_CACHE_MAX:
        _LIVE_CACHE.pop(next(iter(_LIVE_CACHE)))
    _LIVE_CACHE[key] = live
    return live


def _effect(value: str) -> Effect:
    """The stored default effect, checked against the known effects (settings are plain text)."""
    for effect in EFFECTS:
        if effect == value:
            return effect
    raise ValueError(f"unknown default effect {value!r} in catalog_settings")


async def _load_live(session: AsyncSession, revision: int) -> Live:
    setting = await session.get(CatalogSetting, "default_effect")
    default_effect = _effect(setting.value) if setting is not None else "purchasable"
    categories = [Category(key=c.key, name=c.name, description=c.description)
                  for c in await session.scalars(select(CatalogCategory))]
    features = [feature_from_row(f) for f in await session.scalars(select(CatalogFeature))]
    grants: dict[str, list[CatalogModuleFeature]] = {}
    for g in await session.scalars(select(CatalogModuleFeature)):
        grants.setdefault(g.module_key, []).append(g)
    current: dict[tuple[str, str], LivePrice] = {}
    last_version: dict[tuple[str, str], int] = {}
    for row in await session.scalars(select(CatalogPrice)):
        slot_key = (row.module_key, row.slot)
        last_version[slot_key] = max(last_version.get(slot_key, 0), row.version)
        if row.is_current:
            current[slot_key] = price_from_row(row)
    modules = [
        module_from_row(m, grants.get(m.key, []),
                        [lp.price for (mk, _), lp in sorted(current.items()) if mk == m.key])
        for m in await session.scalars(select(CatalogModule))
    ]
    policies = [policy_from_row(p) for p in await session.scalars(select(CatalogPolicy))]
    doc = normalise(CatalogDoc(default_effect=default_effect, categories=categories, features=features,
                               modules=modules, policies=policies))
    return Live(revision=revision, doc=doc, prices=current, last_version=last_version)
