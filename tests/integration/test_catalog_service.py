"""Catalog services against PostgreSQL: apply is atomic and idempotent, price versions keep history,
and plan after apply of the same document is empty (also for random sequences of documents)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.clock import FrozenClock
from app.demo import demo_catalog_toml
from app.outbox import OutboxEvent
from catalog import service
from catalog.errors import CatalogInvalid, CatalogRevisionConflict
from catalog.models import CatalogModule, CatalogPrice, CatalogRevision

DEMO = demo_catalog_toml()


async def apply(sessionmaker: Any, clock: FrozenClock, toml: str, **kw: Any) -> service.ApplyResult:
    async with sessionmaker() as session, session.begin():
        return await service.apply_document(session, service.parse_source(toml=toml), actor="test", clock=clock,
                                            **kw)


async def plan(sessionmaker: Any, clock: FrozenClock, toml: str) -> service.PlanResult:
    async with sessionmaker() as session, session.begin():
        return await service.plan_document(session, service.parse_source(toml=toml), clock=clock)


async def count(sessionmaker: Any, model: Any) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_demo_applies_once_then_plan_is_empty_and_reapply_changes_nothing(
    sessionmaker: Any, clock: FrozenClock,
) -> None:
    first = await apply(sessionmaker, clock, DEMO)
    assert first.applied and first.revision == 1 and first.summary["module.added"] == 25
    assert (await plan(sessionmaker, clock, DEMO)).changes == []
    again = await apply(sessionmaker, clock, DEMO)
    assert not again.applied and again.revision == 1
    assert await count(sessionmaker, CatalogRevision) == 1
    async with sessionmaker() as session:
        events = list(await session.scalars(select(OutboxEvent.type)))
        exported = await service.export_document(session)
    assert events == ["catalog.revision_applied"]
    assert (await plan(sessionmaker, clock, DEMO)).changes == []
    assert len(exported.modules) == 25


async def test_price_change_makes_a_new_version_and_keeps_history(sessionmaker: Any, clock: FrozenClock) -> None:
    await apply(sessionmaker, clock, DEMO)
    clock.advance(timedelta(days=1))
    raised = DEMO.replace("amount_minor = 2400", "amount_minor = 2900")
    result = await apply(sessionmaker, clock, raised)
    assert result.revision == 2 and [c.action for c in result.changes] == ["new_version"]
    async with sessionmaker() as session:
        history = await service.list_prices(session, "reports_pro", currency="USD", history=True)
        current = await service.current_prices(session, "reports_pro", "USD")
    assert [(p.version, p.amount_minor, p.current) for p in history] == [(2, 2900, True), (1, 2400, False)]
    assert history[1].superseded_at == clock.now() and history[1].id != history[0].id
    assert [p.version for p in current] == [2]
    # the old version is still addressable by id (a purchase records it)
    async with sessionmaker() as session:
        assert (await service.get_price(session, history[1].id)).amount_minor == 2400
    # reverting the price is another new version, not a resurrection of v1
    reverted = await apply(sessionmaker, clock, DEMO)
    assert reverted.changes[0].to_version == 3


async def test_scheduled_price_change_is_stored_and_planned_with_its_owners(
    sessionmaker: Any, clock: FrozenClock,
) -> None:
    await apply(sessionmaker, clock, DEMO)
    at = "2027-03-01T00:00:00Z"
    scheduled = DEMO.replace(
        '{ model = "recurring", interval = "month", per_seat = true, currency = "USD", amount_minor = 2400 }',
        f'{{ model = "recurring", interval = "month", per_seat = true, currency = "USD", amount_minor = 2600, '
        f'migrate_existing_at = {at} }}')
    [change] = (await plan(sessionmaker, clock, scheduled)).changes
    assert change.migrate_existing_at is not None and change.migrate_existing_at.isoformat().startswith("2027-03-01")
    assert change.affected_owners == []  # owners come from grants (issue #4); none exist yet
    assert "existing owners move at 2027-03-01" in change.detail
    await apply(sessionmaker, clock, scheduled)
    async with sessionmaker() as session:
        [row] = await service.list_prices(session, "reports_pro", currency="USD")
    assert row.version == 2 and row.migrate_existing_at == change.migrate_existing_at
    # moving only the date is a schedule change on the same version
    moved = scheduled.replace(at, "2027-04-01T00:00:00Z")
    [change] = (await plan(sessionmaker, clock, moved)).changes
    assert (change.action, change.to_version) == ("schedule_changed", 2)
    # a date in the past is refused, naming the price
    clock.set(change.migrate_existing_at + timedelta(days=1))  # type: ignore[operator]
    with pytest.raises(CatalogInvalid) as exc:
        await plan(sessionmaker, clock, moved.replace("2027-04-01", "2027-03-15"))
    assert exc.value.errors and "reports_pro.prices.recurring:month:USD" in exc.value.errors[0].field


async def test_apply_is_all_or_nothing(sessionmaker: Any, clock: FrozenClock) -> None:
    await apply(sessionmaker, clock, DEMO)
    # a valid document whose last write fails inside the database: nothing of it may remain
    broken = DEMO.replace('key = "nl_query"\nname = "Ask Data"', 'key = "nl_query"\nname = "Ask Data v2"').replace(
        "amount_minor = 2400", "amount_minor = 2500")

    async def failing(self: Any, c: Any) -> None:
        raise RuntimeError("disk full")

    original = service._apply._Writer._policy  # type: ignore[attr-defined]
    service._apply._Writer._policy = failing  # type: ignore[attr-defined]
    try:
        with pytest.raises(RuntimeError):
            await apply(sessionmaker, clock, broken.replace('key = "ai-by-segment"', 'key = "ai-by-segment-v2"'))
    finally:
        service._apply._Writer._policy = original  # type: ignore[attr-defined]
    async with sessionmaker() as session:
        assert (await session.get(CatalogModule, "nl_query")).name == "Ask Data"  # type: ignore[union-attr]
        assert await session.scalar(select(func.count()).select_from(CatalogPrice).where(
            CatalogPrice.module_key == "reports_pro", CatalogPrice.currency == "USD")) == 1
    assert await count(sessionmaker, CatalogRevision) == 1
    assert (await plan(sessionmaker, clock, DEMO)).changes == []


async def test_expected_revision_guards_against_a_concurrent_apply(sessionmaker: Any, clock: FrozenClock) -> None:
    await apply(sessionmaker, clock, DEMO)
    with pytest.raises(CatalogRevisionConflict):
        await apply(sessionmaker, clock, DEMO.replace("Reports Pro", "Reports Professional"), expected_revision=0)
    assert (await apply(sessionmaker, clock, DEMO.replace("Reports Pro", "Reports Professional"),
                        expected_revision=1)).revision == 2


_BASE = """
[[categories]]
key = "c"
name = "C"
[[features]]
key = "f"
name = "F"
kind = "limit"
unit = "u"
"""


def _doc(modules: list[tuple[int, int, str]]) -> str:
    out = [_BASE]
    for key, amount, status in modules:
        out.append(f'[[modules]]\nkey = "m{key}"\nname = "M{key}"\ncategory = "c"\nstatus = "{status}"\n'
                   f'features = {{ f = {amount % 7} }}\n'
                   f'prices = [{{ model = "recurring", interval = "month", currency = "EUR", '
                   f'amount_minor = {amount} }}]\n')
    return "".join(out)


_docs = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3), st.sampled_from(["active", "draft", "retired"])),
                 max_size=4, unique_by=lambda t: t[0]).map(_doc)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(_docs, min_size=1, max_size=3))
async def test_plan_after_apply_is_empty_for_any_sequence_of_documents(
    sessionmaker: Any, clock: FrozenClock, sequence: list[str],
) -> None:
    for text in sequence:
        await apply(sessionmaker, clock, text)
        assert (await plan(sessionmaker, clock, text)).changes == []
        assert not (await apply(sessionmaker, clock, text)).applied


async def test_demo_seed_applies_the_example_catalog_idempotently(engine: Any, settings: Any) -> None:
    from app.demo import seed_demo

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await seed_demo(engine, settings)
    await seed_demo(engine, settings)
    async with engine.connect() as conn:
        revisions = await conn.scalar(select(func.count()).select_from(CatalogRevision))
    assert revisions == 1
