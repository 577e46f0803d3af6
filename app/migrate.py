"""Running Alembic migrations from code (the CLI, the demo, the tests)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations

MIGRATION_LOCK = 72_616_001  # pg advisory lock id: one migrator at a time across processes


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return cfg


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Autogenerate compares the models with the parents only: monthly partitions are made by a job."""
    from app.partitions import is_partition

    return not (type_ == "table" and reflected and name is not None and is_partition(name))


@cache
def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _run(sync_conn: Any, action: str, target: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = sync_conn
    sync_conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK})
    if action == "upgrade":
        command.upgrade(cfg, target)
    else:
        command.downgrade(cfg, target)


async def upgrade(engine: AsyncEngine, target: str = "head") -> None:
    """Migrate the database to ``target`` (head by default), under an advisory lock."""
    async with engine.begin() as conn:
        await conn.run_sync(_run, "upgrade", target)


async def downgrade(engine: AsyncEngine, target: str) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_run, "downgrade", target)
