"""The ORM models and the Alembic migrations agree, and downgrade/upgrade round-trips."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.migrate import downgrade, head_revision, include_object, upgrade
from app.models import metadata


def _diff(sync_conn: Any) -> list[Any]:
    ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True, "compare_server_default": True,
                                                      "include_object": include_object})
    return list(compare_metadata(ctx, metadata))


async def test_models_and_migrations_agree(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == [], f"models and migrations differ; write a migration: {diff}"


async def test_downgrade_to_base_and_upgrade_again(engine: AsyncEngine) -> None:
    await downgrade(engine, "base")
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
    assert set(tables) <= {"alembic_version"}
    await upgrade(engine)
    async with engine.connect() as conn:
        version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
        diff = await conn.run_sync(_diff)
    assert version == head_revision() and diff == []


async def test_upgrade_is_a_no_op_at_head(engine: AsyncEngine) -> None:
    await upgrade(engine)
    await upgrade(engine)


async def test_table_storage_options_of_the_models_are_those_of_the_migrated_database(engine: AsyncEngine) -> None:
    """Alembic's comparison does not look at storage options (``postgresql_with``, such as the fillfactor that
    makes in-place updates HOT): the migrated tables carry exactly those of their models."""
    wanted = {t.name: sorted(f"{k}={v}" for k, v in (t.dialect_options["postgresql"]["with"] or {}).items())
              for t in metadata.tables.values()}
    async with engine.connect() as conn:
        rows = (await conn.execute(text(
            "SELECT relname, reloptions FROM pg_class WHERE relname = ANY(:names) AND relkind IN ('r', 'p')"),
            {"names": list(wanted)})).all()
    found = {name: sorted(options or []) for name, options in rows}
    assert {n: o for n, o in found.items() if o} == {n: o for n, o in wanted.items() if o}
    assert found["ent_usage_counters"] == ["fillfactor=70"]
