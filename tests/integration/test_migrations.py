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
