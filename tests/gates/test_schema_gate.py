"""Every tenant table keys on account_id first; the gate is shown to fail on bad tables."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.gates.schema_shape import check_distribution, check_schema


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


async def test_migrated_schema_can_be_distributed_by_account(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        problems = await check_distribution(conn)
    assert problems == [], "\n".join(problems)


async def test_distribution_gate_catches_uniqueness_across_accounts_and_unknown_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(
            "CREATE TABLE coupons (account_id text, coupon_id text, code text, PRIMARY KEY (account_id, coupon_id))"))
        await conn.execute(text("CREATE UNIQUE INDEX uq_coupons_code ON coupons (code)"))
        await conn.execute(text("CREATE TABLE gizmos (gizmo_id text PRIMARY KEY)"))
        await conn.execute(text(
            "CREATE TABLE coupon_keys (account_id text, coupon_id text, key_id text REFERENCES api_keys (key_id),"
            " PRIMARY KEY (account_id, coupon_id))"))
        await conn.execute(text(  # the coordinator's bookkeeping pointing into one account's rows
            "ALTER TABLE job_runs ADD COLUMN account_id varchar(40), ADD COLUMN order_id varchar(40),"
            " ADD CONSTRAINT fk_job_order FOREIGN KEY (account_id, order_id) REFERENCES orders (account_id, order_id)"))
        problems = await check_distribution(conn)
    assert any(p.startswith("coupons: unique index uq_coupons_code on ['code'] spans accounts") for p in problems)
    assert "gizmos: neither a tenant table nor listed in app/citus.py (reference or local)" in problems
    assert any(p.startswith("coupon_keys: foreign key") and "api_keys" in p for p in problems)
    assert "job_runs: foreign key fk_job_order from a coordinator-local table to the distributed orders" in problems
    assert not any(p.startswith("coupons: primary") for p in problems)
