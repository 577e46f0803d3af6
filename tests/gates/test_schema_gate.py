"""Every tenant table keys on account_id first; the gate is shown to fail on bad tables."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.gates.schema_shape import check_schema


async def test_migrated_schema_has_the_tenancy_shape(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        problems = await check_schema(conn)
    assert problems == [], "\n".join(problems)


async def test_schema_gate_catches_tables_without_account_id_first(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE widgets (widget_id text PRIMARY KEY, account_id text NOT NULL)"))
        await conn.execute(text(
            "CREATE TABLE gadgets (account_id text, gadget_id text, user_id text,"
            " PRIMARY KEY (account_id, gadget_id))"))
        await conn.execute(text(
            "CREATE TABLE gadget_parts (account_id text, part_id text, gadget_account text, gadget_id text,"
            " PRIMARY KEY (account_id, part_id),"
            " CONSTRAINT fk_bad FOREIGN KEY (gadget_account, gadget_id) REFERENCES gadgets (account_id, gadget_id))"))
        await conn.execute(text("CREATE TABLE nokey (v int)"))
        problems = await check_schema(conn)
    assert any(p.startswith("widgets: primary key ['widget_id'] must start with account_id") for p in problems)
    assert any(p.startswith("gadget_parts: foreign key fk_bad") for p in problems)
    assert "nokey: has no primary key" in problems
    assert not any(p.startswith("gadgets:") for p in problems)
