"""The live catalog is read once per transaction: a revision applied in the same transaction is seen at once,
and one applied in a savepoint that rolls back is forgotten with it."""

from __future__ import annotations

from typing import Any

from app.clock import FrozenClock
from app.demo import demo_catalog_toml
from catalog import service

DEMO = demo_catalog_toml()
RENAMED = DEMO.replace('name = "Reports Basic"', 'name = "Reports Basic Plus"', 1)


async def test_a_revision_applied_in_the_transaction_is_read_by_its_next_load(
    sessionmaker: Any, clock: FrozenClock,
) -> None:
    assert RENAMED != DEMO
    async with sessionmaker() as session, session.begin():
        await service.apply_document(session, service.parse_source(toml=DEMO), actor="test", clock=clock)
        first = await service.load_live(session)
        assert await service.load_live(session) is first  # memo: no second read in the same transaction
        await service.apply_document(session, service.parse_source(toml=RENAMED), actor="test", clock=clock)
        after = await service.load_live(session)
        assert after.revision == first.revision + 1
        assert {m.key: m.name for m in after.doc.modules}["reports_basic"] == "Reports Basic Plus"


async def test_a_revision_applied_in_a_rolled_back_savepoint_is_forgotten(
    sessionmaker: Any, clock: FrozenClock,
) -> None:
    async with sessionmaker() as session, session.begin():
        await service.apply_document(session, service.parse_source(toml=DEMO), actor="test", clock=clock)
        before = await service.load_live(session)
        savepoint = await session.begin_nested()
        await service.apply_document(session, service.parse_source(toml=RENAMED), actor="test", clock=clock)
        assert (await service.load_live(session)).revision == before.revision + 1
        await savepoint.rollback()
        again = await service.load_live(session)
        assert again.revision == before.revision
        assert {m.key: m.name for m in again.doc.modules}["reports_basic"] == "Reports Basic"
