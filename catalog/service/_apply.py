"""Plan and apply a catalog document: one advisory-locked transaction, all or nothing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import delete, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.clock import Clock
from app.errors import FieldError
from app.events import publish
from app.ids import new_id
from app.money import is_currency
from app.notify import notify
from catalog import domain
from catalog.domain import Change, Live
from catalog.errors import CatalogInvalid, CatalogRevisionConflict
from catalog.events import CatalogChange, CatalogRevisionApplied, PriceMigrationCanceled, PriceMigrationScheduled
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
from catalog.service._live import forget_live, load_live, price_owners
from catalog.spec import (
    CatalogDoc,
    CatalogInvalidError,
    ConfigFeature,
    LimitFeature,
    Module,
    Price,
    load,
    price_model,
    price_slot,
    price_terms,
)

# Serialises plans-for-apply and applies deployment-wide (pg_advisory_xact_lock key, "catalog").
_APPLY_LOCK = 0x63617461


@dataclass(frozen=True)
class PlanResult:
    base_revision: int
    changes: list[Change]
    summary: dict[str, int]


@dataclass(frozen=True)
class ApplyResult:
    applied: bool
    revision: int
    base_revision: int
    changes: list[Change]
    summary: dict[str, int]


def _invalid(errors: list[FieldError]) -> CatalogInvalid:
    head = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return CatalogInvalid(f"The catalog is not valid: {head}{more}", errors=errors)


def parse_source(*, toml: str | None = None, document: CatalogDoc | dict[str, Any] | None = None) -> CatalogDoc:
    """Exactly one of TOML text or a document -> a validated, normalised document (or CatalogInvalid)."""
    if (toml is None) == (document is None):
        raise CatalogInvalid("Send the catalog as exactly one of 'toml' or 'document'.",
                             errors=[FieldError(field="toml", message="exactly one of toml, document")])
    source: str | dict[str, Any]
    if toml is not None:
        source = toml
    elif isinstance(document, CatalogDoc):
        source = msgspec.to_builtins(document)
    else:
        assert document is not None, "exactly one of toml and document is set (checked above)"
        source = document
    try:
        return load(source, is_currency=is_currency)
    except CatalogInvalidError as exc:
        raise _invalid(exc.errors) from exc


def document_sha256(doc: CatalogDoc) -> str:
    return hashlib.sha256(msgspec.json.encode(doc)).hexdigest()


def _desired_price(doc: CatalogDoc, c: Change) -> Price | None:
    module = next((m for m in doc.modules if m.key == c.module), None)
    return next((p for p in module.prices if price_slot(p) == c.slot), None) if module else None


async def _with_owners(session: AsyncSession, doc: CatalogDoc, changes: list[Change]) -> list[Change]:
    out = []
    for c in changes:
        if c.action in ("new_version", "schedule_changed") and c.migrate_existing_at is not None:
            assert c.module is not None and c.slot is not None and c.to_version is not None
            owners = await price_owners(session, c.module, c.slot, before_version=c.to_version)
            after = domain.headline_amount(_desired_price(doc, c))
            c = msgspec.structs.replace(c, affected_owners=[
                msgspec.structs.replace(o, amount_minor_after=None if after is None else after * o.quantity)
                for o in owners])
        out.append(c)
    return out


async def _plan(session: AsyncSession, doc: CatalogDoc, *, clock: Clock) -> tuple[Live, list[Change]]:
    live = await load_live(session)
    changes = domain.plan(live, doc)
    errors = domain.check_schedules(changes, clock.now())
    if errors:
        raise _invalid(errors)
    return live, await _with_owners(session, doc, changes)


async def plan_document(session: AsyncSession, doc: CatalogDoc, *, clock: Clock) -> PlanResult:
    """What ``apply`` would change (including who a scheduled price change affects); writes nothing."""
    live, changes = await _plan(session, doc, clock=clock)
    return PlanResult(base_revision=live.revision, changes=changes, summary=domain.summarise(changes))


async def apply_document(
    session: AsyncSession, doc: CatalogDoc, *, actor: str, clock: Clock, expected_revision: int | None = None,
) -> ApplyResult:
    """Write the document as a new revision in the caller's transaction; a no-op when nothing changed."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _APPLY_LOCK})
    live, changes = await _plan(session, doc, clock=clock)
    if expected_revision is not None and expected_revision != live.revision:
        raise CatalogRevisionConflict(
            f"The plan was made against revision {expected_revision}, the live catalog is at {live.revision}; "
            "plan again.", live_revision=live.revision)
    summary = domain.summarise(changes)
    if not changes:
        return ApplyResult(applied=False, revision=live.revision, base_revision=live.revision, changes=[],
                           summary=summary)
    revision, now = live.revision + 1, clock.now()
    session.add(CatalogRevision(revision=revision, applied_at=now, actor=actor, source_sha256=document_sha256(doc),
                                change_count=len(changes), summary=summary, document=msgspec.to_builtins(doc)))
    writer = _Writer(session, doc, revision=revision, now=now)
    for kind in ("setting", "category", "feature", "module", "price", "policy"):
        for change in (c for c in changes if c.kind == kind):
            await writer.write(change)
        await writer.finish(kind)
    forget_live(session)  # this transaction reads the new revision from here on
    await _announce(session, changes, revision=revision, summary=summary, actor=actor, clock=clock)
    await notify(session, "catalog", str(revision))  # processes holding the catalog in memory reload it
    return ApplyResult(applied=True, revision=revision, base_revision=live.revision, changes=changes,
                       summary=summary)


async def _announce(session: AsyncSession, changes: list[Change], *, revision: int, summary: dict[str, int],
                    actor: str, clock: Clock) -> None:
    await audit.record(session, clock=clock, actor=actor, action="catalog.revision_applied",
                       target_type="catalog_revision", target_id=str(revision),
                       after={"summary": summary, "changes": [c.detail for c in changes[:200]]})
    await publish(session, CatalogRevisionApplied(
        revision=revision, summary=dict(summary),
        changes=[CatalogChange(kind=c.kind, action=c.action, key=c.key) for c in changes]), clock=clock)
    for c in changes:
        if c.action not in ("new_version", "schedule_changed") or c.module is None or c.slot is None:
            continue
        if c.migrate_existing_at is not None:
            await publish(session, PriceMigrationScheduled(
                revision=revision, module=c.module, slot=c.slot, to_version=c.to_version, currency=c.currency,
                amount_minor_after=c.amount_minor_after, migrate_existing_at=c.migrate_existing_at,
                affected_owners=len(c.affected_owners)), clock=clock)
        elif c.action == "schedule_changed":
            await publish(session, PriceMigrationCanceled(
                revision=revision, module=c.module, slot=c.slot, version=c.to_version, actor=actor), clock=clock)


class _Writer:
    """Persists the plan's lines from the desired document, kind by kind (``finish`` after each kind writes its
    rows, so the next kind's rows can refer to them). Rows of added objects are inserted together at the end of
    their kind: an apply of a whole catalog is a handful of statements, not one or more per object (25 modules
    with their prices and features were 285 statements)."""

    def __init__(self, session: AsyncSession, doc: CatalogDoc, *, revision: int, now: datetime) -> None:
        self.session, self.revision, self.now = session, revision, now
        self.categories = {c.key: c for c in doc.categories}
        self.features = {f.key: f for f in doc.features}
        self.modules = {m.key: m for m in doc.modules}
        self.policies = {p.key: p for p in doc.policies}
        self.default_effect = doc.default_effect
        self.new_grants: list[CatalogModuleFeature] = []  # of added modules: written once the modules are

    async def write(self, c: Change) -> None:
        handler = getattr(self, f"_{c.kind}")
        await handler(c)

    async def finish(self, kind: str) -> None:
        """Write what this kind's lines left pending (inserted together, one statement per table)."""
        await self.session.flush()
        if kind == "module" and self.new_grants:
            self.session.add_all(self.new_grants)
            self.new_grants = []
            await self.session.flush()

    async def _row(self, model: Any, c: Change) -> Any:
        """The stored row a line changes; an added object has none (the plan compared against every row)."""
        return None if c.action == "added" else await self.session.get(model, c.key)

    async def _setting(self, c: Change) -> None:
        row = await self._row(CatalogSetting, c)
        if row is None:
            self.session.add(CatalogSetting(key=c.key, value=self.default_effect, revision=self.revision))
        else:
            row.value, row.revision = self.default_effect, self.revision

    async def _category(self, c: Change) -> None:
        row = await self._row(CatalogCategory, c)
        if c.action == "removed":
            await self.session.delete(row)
            return
        cat = self.categories[c.key]
        if row is None:
            self.session.add(CatalogCategory(key=cat.key, name=cat.name, description=cat.description,
                                             revision=self.revision, created_at=self.now, updated_at=self.now))
        else:
            row.name, row.description, row.revision, row.updated_at = (cat.name, cat.description, self.revision,
                                                                       self.now)

    async def _feature(self, c: Change) -> None:
        row = await self._row(CatalogFeature, c)
        if c.action == "retired":
            assert row is not None
            row.status, row.spec = "retired", {**row.spec, "status": "retired"}
            row.revision, row.updated_at = self.revision, self.now
            return
        f = self.features[c.key]
        values = {"kind": str(type(f).__struct_config__.tag), "name": f.name, "status": f.status,
                  "spec": msgspec.to_builtins(f), "revision": self.revision, "updated_at": self.now}
        if row is None:
            self.session.add(CatalogFeature(key=f.key, created_at=self.now, **values))
        else:
            for name, value in values.items():
                setattr(row, name, value)

    async def _module(self, c: Change) -> None:
        row = await self._row(CatalogModule, c)
        if c.action == "retired":
            assert row is not None
            row.status, row.revision, row.updated_at = "retired", self.revision, self.now
            return
        m = self.modules[c.key]
        values = {"name": m.name, "description": m.description, "category": m.category, "status": m.status,
                  "trial_days": m.trial_days, "tax_code": m.tax_code, "requires": list(m.requires),
                  "excludes": list(m.excludes), "revision": self.revision, "updated_at": self.now}
        if row is None:
            self.session.add(CatalogModule(key=m.key, created_at=self.now, **values))
            self.new_grants += self._grants(m)
            return
        for name, value in values.items():
            setattr(row, name, value)
        await self.session.flush()
        await self.session.execute(delete(CatalogModuleFeature).where(CatalogModuleFeature.module_key == m.key))
        self.session.add_all(self._grants(m))
        await self.session.flush()

    def _grants(self, m: Module) -> list[CatalogModuleFeature]:
        rows = []
        for key, value in m.features.items():
            feature = self.features[key]
            limit = value if isinstance(feature, LimitFeature) and not isinstance(value, bool) else None
            config = value if isinstance(feature, ConfigFeature) and isinstance(value, str) else None
            rows.append(CatalogModuleFeature(module_key=m.key, feature_key=key, limit_value=limit,
                                             config_value=config))
        return rows

    async def _price(self, c: Change) -> None:
        assert c.module is not None and c.slot is not None
        current = (CatalogPrice.module_key == c.module, CatalogPrice.slot == c.slot, CatalogPrice.is_current)
        if c.action == "schedule_changed":
            await self.session.execute(update(CatalogPrice).where(*current).values(
                migrate_existing_at=self._desired_price(c).migrate_existing_at))
            return
        # The old version stops being current before the new one is written (one current per slot); an added
        # price line has no old version. The new row is inserted at the end of the kind, after this statement.
        if c.action != "added":
            await self.session.execute(update(CatalogPrice).where(*current).values(
                is_current=False, superseded_at=self.now, superseded_revision=self.revision))
        if c.action == "ended":
            return
        assert c.to_version is not None
        p = self._desired_price(c)
        self.session.add(CatalogPrice(
            price_id=new_id("price"), module_key=c.module, slot=c.slot, version=c.to_version, is_current=True,
            model=price_model(p), currency=p.currency, amount_minor=domain.headline_amount(p),
            spec=msgspec.to_builtins(price_terms(p)), migrate_existing_at=p.migrate_existing_at,
            revision=self.revision, created_at=self.now, superseded_at=None, superseded_revision=None,
        ))

    def _desired_price(self, c: Change) -> Any:
        return next(p for p in self.modules[c.module or ""].prices if price_slot(p) == c.slot)

    async def _policy(self, c: Change) -> None:
        row = await self._row(CatalogPolicy, c)
        if c.action == "removed":
            await self.session.delete(row)
            return
        p = self.policies[c.key]
        values = {"module_key": p.module, "category": p.category, "spec": msgspec.to_builtins(p),
                  "revision": self.revision, "updated_at": self.now}
        if row is None:
            self.session.add(CatalogPolicy(key=p.key, created_at=self.now, **values))
        else:
            for name, value in values.items():
                setattr(row, name, value)
