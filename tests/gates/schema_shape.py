"""Schema gate: read the migrated database's own catalog and check the tenancy shape of every table.

A tenant table has ``account_id`` as the first column of its primary key, and every foreign key between
tenant tables includes ``account_id``. Global tables (the vendor's catalog, API keys, delivery plumbing)
are declared in GLOBAL_TABLES with the reason they are global.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

GLOBAL_TABLES: dict[str, str] = {
    "alembic_version": "Alembic's bookkeeping",
    "api_keys": "vendor API keys belong to the vendor, not to an account",
    "audit_log": "also records vendor-level changes (catalog, keys); rows carry account_id when they have one",
    "outbox_events": "one global delivery order; rows carry account_id when they have one",
    "idempotency_keys": "keyed by the caller (API key or user), not by account",
    "webhook_endpoints": "the vendor's webhook endpoints",
    "webhook_deliveries": "deliveries of outbox events to vendor endpoints",
    "webhook_attempts": "the delivery log",
    "webhook_fanouts": "which outbox events were fanned out",
    "webhook_cursors": "the dispatcher's outbox high-water marks",
    "sug_segment_stats": "suggestion peer counts summed over a segment's accounts (no account data)",
    "sug_segment_pairs": "module co-ownership counts summed over a segment's accounts (no account data)",
    "sug_segment_roles": "users per role summed over a segment's accounts (no account data)",
    "sug_weights": "the engine's weights fitted on the vendor's whole history: one model per deployment",
    "catalog_revisions": "the vendor's catalog (reference table when sharded)",
    "catalog_settings": "the vendor's catalog (reference table when sharded)",
    "catalog_categories": "the vendor's catalog (reference table when sharded)",
    "catalog_features": "the vendor's catalog (reference table when sharded)",
    "catalog_modules": "the vendor's catalog (reference table when sharded)",
    "catalog_module_features": "the vendor's catalog (reference table when sharded)",
    "catalog_prices": "the vendor's catalog (reference table when sharded)",
    "catalog_policies": "the vendor's catalog (reference table when sharded)",
    "stripe_events": "Stripe's event ids are global; an event is matched to accounts by its handlers",
    "rate_limit_counters": "keyed by the caller (API key or user), like idempotency keys; ephemeral (UNLOGGED)",
    "console_links": "sign-in links of vendor staff (no account) and customer admins; carry account_id if any",
    "console_sessions": "console sessions of vendor staff (no account) and customer admins; carry account_id if any",
    "rate_limit_nodes": "the app processes writing rate-limit counters; no account data",
    "job_runs": "the deployment's scheduled jobs (operations, no account data)",
}

_PRIMARY_KEYS = text("""
    SELECT c.relname AS table_name,
           (SELECT array_agg(a.attname ORDER BY k.ord)
              FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
              JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum) AS columns
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
      LEFT JOIN pg_constraint con ON con.conrelid = c.oid AND con.contype = 'p'
     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
""")

_FOREIGN_KEYS = text("""
    SELECT con.conname, src.relname AS table_name, dst.relname AS referred_table,
           (SELECT array_agg(a.attname) FROM unnest(con.conkey) AS k(attnum)
              JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum) AS columns
      FROM pg_constraint con
      JOIN pg_class src ON src.oid = con.conrelid
      JOIN pg_class dst ON dst.oid = con.confrelid
      JOIN pg_namespace n ON n.oid = src.relnamespace AND n.nspname = 'public'
     WHERE con.contype = 'f'
""")


_UNIQUES = text("""
    SELECT c.relname AS table_name, i.relname AS index_name,
           (SELECT array_agg(a.attname) FROM unnest(x.indkey) AS k(attnum)
              JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum) AS columns
      FROM pg_index x
      JOIN pg_class c ON c.oid = x.indrelid
      JOIN pg_class i ON i.oid = x.indexrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
     WHERE x.indisunique AND c.relkind IN ('r', 'p') AND NOT c.relispartition
""")


async def check_distribution(conn: Any, global_tables: dict[str, str] = GLOBAL_TABLES) -> list[str]:
    """What would stop Citus from distributing by account_id: uniqueness across accounts in a distributed table,
    foreign keys between a distributed table and a coordinator-local one (either way) or from a reference table
    to a distributed one, tables of no kind.
    """
    from app.citus import LOCAL_TABLES, REFERENCE_TABLES, classify

    problems = []
    for table, index, columns in (await conn.execute(_UNIQUES)).all():
        if table not in global_tables.keys() | REFERENCE_TABLES and "account_id" not in (columns or []):
            problems.append(f"{table}: unique index {index} on {list(columns or [])} spans accounts; "
                            "include account_id")
    kinds = await classify(conn)
    for name, _table, referred, _columns in (await conn.execute(_FOREIGN_KEYS)).all():
        if kinds.get(_table) == "distributed" and kinds.get(referred) == "local":
            problems.append(f"{_table}: foreign key {name} points at the coordinator-local table {referred}")
    problems += [f"{t}: neither a tenant table nor listed in app/citus.py (reference or local)"
                 for t, kind in sorted(kinds.items()) if kind == "unknown"]
    problems += [f"{t}: global in the schema gate but missing from app/citus.py"
                 for t in sorted(set(global_tables) - REFERENCE_TABLES - LOCAL_TABLES)]
    for name, _table, referred, _columns in (await conn.execute(_FOREIGN_KEYS)).all():
        if kinds.get(_table) == "reference" and kinds.get(referred) == "distributed":
            problems.append(f"{_table}: foreign key {name} from a reference table to the distributed {referred}")
        if kinds.get(_table) == "local" and kinds.get(referred) == "distributed":  # Citus cannot keep it either
            problems.append(f"{_table}: foreign key {name} from a coordinator-local table to the distributed "
                            f"{referred}")
    return problems


async def check_schema(conn: Any, global_tables: dict[str, str] = GLOBAL_TABLES) -> list[str]:
    """Every violation of the tenancy shape, as a message naming the table and what to change."""
    problems = []
    for table, columns in (await conn.execute(_PRIMARY_KEYS)).all():
        if table in global_tables:
            continue
        if not columns:
            problems.append(f"{table}: has no primary key")
        elif columns[0] != "account_id":
            problems.append(f"{table}: primary key {list(columns)} must start with account_id "
                            "(or declare the table in GLOBAL_TABLES with the reason it is global)")
    for name, table, referred, columns in (await conn.execute(_FOREIGN_KEYS)).all():
        if table in global_tables or referred in global_tables:
            continue
        if "account_id" not in columns:
            problems.append(f"{table}: foreign key {name} to {referred} on {list(columns)} must include account_id")
    return problems
