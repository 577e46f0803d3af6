"""Distribution of the schema over Citus: tenant tables by ``account_id``, the catalog as reference tables.

``commerce citus-ddl`` reads the migrated database's own catalog and prints the statements to run on a Citus
coordinator after ``commerce migrate``. Tenant tables (``account_id`` first in their primary key) are
distributed and co-located, so every query and transaction of one account stays on one node; the catalog,
accounts and users are replicated to every node (reference tables); the deployment's own bookkeeping stays
on the coordinator (local tables). The schema gate keeps every table in one of these three kinds.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

REFERENCE_TABLES = frozenset({
    "catalog_revisions", "catalog_settings", "catalog_categories", "catalog_features", "catalog_modules",
    "catalog_module_features", "catalog_prices", "catalog_policies",
    # The vendor's ids of accounts and users are unique across the deployment (the API resolves `user=...`
    # without an account), which a distributed table cannot enforce; both are small and rarely written.
    "accounts", "users",
})
# Vendor-level or cross-account rows (nullable or no account_id): they stay on the coordinator.
LOCAL_TABLES = frozenset({
    "alembic_version", "api_keys", "audit_log", "outbox_events", "idempotency_keys", "webhook_endpoints",
    "webhook_deliveries", "webhook_attempts", "webhook_fanouts", "webhook_cursors", "sug_segment_stats",
    "sug_segment_roles", "sug_weights", "sug_segment_pairs", "stripe_events", "rate_limit_counters",
    "rate_limit_nodes", "job_runs",
    "console_links", "console_sessions",  # vendor staff have no account; a session is looked up by its id
})

_TABLES = text("""
    SELECT c.relname,
           (SELECT a.attname FROM pg_constraint con
              JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = con.conkey[1]
             WHERE con.conrelid = c.oid AND con.contype = 'p') AS first_key
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
     ORDER BY c.relname
""")
_REFERENCES = text("""
    SELECT src.relname, dst.relname FROM pg_constraint con
      JOIN pg_class src ON src.oid = con.conrelid JOIN pg_class dst ON dst.oid = con.confrelid
      JOIN pg_namespace n ON n.oid = src.relnamespace AND n.nspname = 'public'
     WHERE con.contype = 'f' AND src.oid <> dst.oid
""")


async def classify(conn: Any) -> dict[str, str]:
    """Every table of the schema -> ``distributed``, ``reference``, ``local`` or ``unknown``."""
    out = {}
    for name, first_key in (await conn.execute(_TABLES)).all():
        if name in REFERENCE_TABLES:
            out[name] = "reference"
        elif name in LOCAL_TABLES:
            out[name] = "local"
        elif first_key == "account_id":
            out[name] = "distributed"
        else:
            out[name] = "unknown"
    return out


def _referenced_first(tables: list[str], edges: list[tuple[str, str]]) -> list[str]:
    """Tables ordered so that a table comes after those its foreign keys point to (Citus needs that order)."""
    deps = {t: {dst for src, dst in edges if src == t and dst in tables} for t in tables}
    ordered: list[str] = []
    while deps:
        ready = sorted(t for t, d in deps.items() if not d - set(ordered))
        if not ready:  # a cycle: keep the remaining order stable; Citus reports it if it matters
            ready = sorted(deps)
        for t in ready:
            ordered.append(t)
            del deps[t]
    return ordered


async def distribution_ddl(conn: Any) -> str:
    """The statements that distribute this schema on a Citus coordinator (after ``commerce migrate``)."""
    kinds = await classify(conn)
    unknown = sorted(t for t, k in kinds.items() if k == "unknown")
    if unknown:
        raise ValueError(f"tables of no known kind (see app/citus.py): {', '.join(unknown)}")
    edges = [(src, dst) for src, dst in (await conn.execute(_REFERENCES)).all()]
    lines = ["-- Run on the Citus coordinator, in one transaction, after `commerce migrate`.",
             "BEGIN;", "CREATE EXTENSION IF NOT EXISTS citus;", "",
             "-- reference tables, copied to every node: the vendor's catalog, accounts and users"]
    reference = _referenced_first([t for t, k in kinds.items() if k == "reference"], edges)
    lines += [f"SELECT create_reference_table('{t}');" for t in reference]
    distributed = _referenced_first([t for t, k in kinds.items() if k == "distributed"], edges)
    root = distributed[0]  # every other tenant table joins its co-location group
    lines += ["", "-- every account's rows on one node: tenant tables distributed by account_id, co-located"]
    for t in distributed:
        colocate = "" if t == root else f", colocate_with => '{root}'"
        lines.append(f"SELECT create_distributed_table('{t}', 'account_id'{colocate});")
    local = sorted(t for t, k in kinds.items() if k == "local")
    lines += ["", "-- the deployment's bookkeeping stays on the coordinator (local tables):",
              *(f"--   {t}" for t in local), "COMMIT;"]
    return "\n".join(lines)
