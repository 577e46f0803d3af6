"""Running Alembic migrations from code (the CLI, the demo, the tests)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

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


class SchemaNotAtHead(Exception):
    """The database's schema is not the one this version of the code was written for."""

    def __init__(self, current: str | None, expected: str | None) -> None:
        self.current, self.expected = current, expected
        found = "has no schema yet" if current is None else f"is at revision {current}"
        super().__init__(f"the database {found}, this version expects {expected}: run `commerce migrate` first")


async def revision_of(conn: AsyncConnection) -> str | None:
    """The revision Alembic recorded in the connected database (None before the first migration).

    Read directly rather than through Alembic's MigrationContext, which logs two lines per call (readiness
    probes ask every few seconds)."""
    if await conn.scalar(text("SELECT to_regclass('alembic_version')")) is None:
        return None
    revision = await conn.scalar(text("SELECT version_num FROM alembic_version"))
    return None if revision is None else str(revision)


async def require_head(engine: AsyncEngine) -> None:
    """Refuse work on a database whose schema is not at the migrations' head (a clear error, not a SQL one)."""
    async with engine.connect() as conn:
        current = await revision_of(conn)
    if current != head_revision():
        raise SchemaNotAtHead(current, head_revision())


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
