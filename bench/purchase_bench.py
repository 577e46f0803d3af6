"""End-to-end budget purchase (quote -> order -> fulfilled) over HTTP vs a bare SQL transaction floor.

    python -m bench.purchase_bench [--purchases 300] [--concurrency 16] [--workers 2]

Two scenarios: every buyer on ONE shared budget (one hot row), and every buyer in its own account with
its own budget (MANY budgets). The floor is like for like: one real purchase is made first and every row it
left new or changed is captured (quote, idempotency key, order, hold, ledger entries, grant, change-feed row,
subscription, sales credit, suggestion outcome and peer statistics, audit entry, outbox events); the floor then
writes those rows again for twin buyers with fresh ids, into the same real tables (logged, with their
constraints, indexes and foreign keys), as ONE statement per purchase (the guarded budget UPDATE and an upsert
per table in data-modifying CTEs, its own implicit transaction), bare asyncpg, the same concurrency. Bounded:
loopback only, an embedded PostgreSQL in a temporary folder, a fixed number of purchases per phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from app import keys
from app.accounts import service as accounts
from app.accounts.schemas import AccountUpsert, UserUpsert
from app.clock import SystemClock
from app.db import create_engine, make_sessionmaker
from app.demo import demo_catalog_toml
from app.embedded import embedded_url, start_embedded
from app.ids import new_id
from app.migrate import upgrade
from app.scopes import SCOPES
from billing import service as billing
from billing.domain.guardrails import GuardrailPolicy
from catalog import service as catalog
from tests.support.live_server import live_server


async def seed(url: str, buyers: int) -> str:
    """Catalog, a vendor key, one shared account+budget with ``buyers`` users, and ``buyers`` solo accounts."""
    engine = create_engine(url, pool_size=2, max_overflow=2)
    await upgrade(engine)
    clock = SystemClock()
    big = GuardrailPolicy(routes=["budget"], auto_approve_limit_minor=10**9, per_user_cap_minor=None)
    async with make_sessionmaker(engine)() as s, s.begin():
        await catalog.apply_document(s, catalog.parse_source(toml=demo_catalog_toml()), actor="bench", clock=clock)
        key = await keys.create_key(s, name="bench", scopes=frozenset(SCOPES), clock=clock)
        shared, _ = await accounts.upsert_account(s, AccountUpsert(external_id="shared", name="Shared"), actor="b",
                                                  clock=clock)
        await billing.create_budget(s, shared, name="Shared", currency="USD", amount_minor=10**10, cost_center=None,
                                    anchor_day=1, actor="b", clock=clock)
        await billing.save_policy(s, shared, big, actor="b", clock=clock)
        tpl, _ = await accounts.upsert_account(s, AccountUpsert(external_id="template", name="Template"), actor="b",
                                               clock=clock)
        await accounts.upsert_user(s, tpl, UserUpsert(external_id="t-0", roles=["analyst"]), actor="b", clock=clock)
        await billing.create_budget(s, tpl, name="Template", currency="USD", amount_minor=10**8, cost_center=None,
                                    anchor_day=1, actor="b", clock=clock)
        await billing.save_policy(s, tpl, big, actor="b", clock=clock)
        for i in range(buyers):
            for prefix in ("s", "fs"):  # a buyer over HTTP and its twin for the floor, in the shared account
                await accounts.upsert_user(s, shared, UserUpsert(external_id=f"{prefix}-{i}", roles=["analyst"]),
                                           actor="b", clock=clock)
            solo, _ = await accounts.upsert_account(s, AccountUpsert(external_id=f"solo-{i}", name=f"Solo {i}"),
                                                    actor="b", clock=clock)
            for prefix in ("m", "fm"):
                await accounts.upsert_user(s, solo, UserUpsert(external_id=f"{prefix}-{i}", roles=["analyst"]),
                                           actor="b", clock=clock)
            await billing.create_budget(s, solo, name="Solo", currency="USD", amount_minor=10**8, cost_center=None,
                                        anchor_day=1, actor="b", clock=clock)
            await billing.save_policy(s, solo, big, actor="b", clock=clock)
    await engine.dispose()
    return key.secret


async def http_phase(base: str, key: str, users: list[str], concurrency: int) -> tuple[float, list[float]]:
    """Each user buys one module: POST /v1/quotes then POST /v1/orders; latency of the pair."""
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        async def buy(user: str) -> None:
            async with sem:
                t0 = time.perf_counter()
                q = await client.post("/v1/quotes", json={"user": user, "items": [{"module": "reports_basic"}]})
                q.raise_for_status()
                o = await client.post("/v1/orders", json={"quote_id": q.json()["id"]},
                                      headers={"Idempotency-Key": f"bench-{user}"})
                o.raise_for_status()
                assert o.json()["state"] == "fulfilled", o.text
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(buy(u) for u in users))
        return time.perf_counter() - start, latencies


# --- the floor: the rows one real purchase wrote, into the real tables, in one statement ----------------------

_ID = re.compile(r"\b[a-z]{2,6}_[0-9a-z]{26}\b")
# request bookkeeping (key last-used, rate-limit leases), not the purchase
_SKIP = {"alembic_version", "api_keys", "rate_limit_counters", "rate_limit_nodes"}


async def _rows(conn: asyncpg.Connection) -> dict[str, set[str]]:
    tables = [r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    return {t: {r[0] for r in await conn.fetch(f'SELECT to_jsonb(t)::text FROM "{t}" t')}
            for t in tables if t not in _SKIP}


@dataclass
class FloorTemplate:
    """What one real purchase wrote (rows new or changed by it), and the ids the floor swaps per purchase."""

    tables: dict[str, str]  # table -> a JSON array of the rows the purchase left new or changed
    account_id: str
    user_id: str
    budget_id: str
    period: str
    amount_minor: int


async def capture_template(dsn: str, base: str, key: str) -> FloorTemplate:
    """Make one real purchase (user t-0 in an account of its own) over HTTP and diff every table around it."""
    conn = await asyncpg.connect(dsn)
    try:
        before = await _rows(conn)
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
            q = await client.post("/v1/quotes", json={"user": "t-0", "items": [{"module": "reports_basic"}]})
            q.raise_for_status()
            o = await client.post("/v1/orders", json={"quote_id": q.json()["id"]},
                                  headers={"Idempotency-Key": "bench-template"})
            o.raise_for_status()
        after = await _rows(conn)
    finally:
        await conn.close()
    changed = {t: sorted(after[t] - before.get(t, set())) for t in after}
    order = json.loads(changed["orders"][0])
    period = json.loads(changed.pop("budget_periods")[0])  # the floor moves it by the guarded UPDATE
    return FloorTemplate(tables={t: "[" + ",".join(rows) + "]" for t, rows in changed.items() if rows},
                         account_id=order["account_id"], user_id=order["user_id"], budget_id=order["budget_id"],
                         period=period["period"], amount_minor=order["total_minor"])


async def floor_statement(conn: asyncpg.Connection, template: FloorTemplate) -> tuple[str, list[str]]:
    """The guarded budget UPDATE and every template row as an upsert on its primary key, as one statement."""
    parts = ["b AS (UPDATE budget_periods SET captured_minor = captured_minor + $1 WHERE account_id = $2 "
             "AND budget_id = $3 AND period = $4 AND amount_minor - reserved_minor - captured_minor >= $1 "
             "RETURNING 1)"]
    tables = sorted(template.tables)
    for n, table in enumerate(tables, start=5):
        cols = [r[0] for r in await conn.fetch(
            "SELECT a.attname FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid "
            "AND d.adnum = a.attnum WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped "
            "AND a.attidentity = '' AND coalesce(pg_get_expr(d.adbin, d.adrelid), '') NOT LIKE 'nextval%' "
            "ORDER BY a.attnum", table)]
        pk = [r[0] for r in await conn.fetch(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = $1::regclass AND i.indisprimary", table)]
        quoted = ", ".join(f'"{c}"' for c in cols)
        rest = [c for c in cols if c not in pk]
        upsert = (f"ON CONFLICT ({', '.join(pk)}) DO UPDATE SET " + ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in rest)
                  if pk and rest else "")
        parts.append(f't{n} AS (INSERT INTO "{table}" ({quoted}) SELECT {quoted} FROM jsonb_populate_recordset('
                     f'NULL::"{table}", ${n}::jsonb) WHERE EXISTS (SELECT 1 FROM b) {upsert} RETURNING 1)')
    return "WITH " + ",\n".join(parts) + "\nSELECT count(*) FROM b", tables


async def floor_phase(dsn: str, template: FloorTemplate, targets: list[tuple[str, str, str]], concurrency: int,
                      ) -> tuple[float, list[float]]:
    """Each purchase: the template's rows for another buyer (fresh ids), one statement, its own transaction."""
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    async with pool.acquire() as c:
        sql, tables = await floor_statement(c, template)
    latencies: list[float] = []

    def rows_for(i: int, account_id: str, user_id: str, budget_id: str) -> list[str]:
        swap = {template.account_id: account_id, template.user_id: user_id, template.budget_id: budget_id}

        def fresh(m: re.Match[str]) -> str:
            old = m.group(0)
            if old not in swap:
                swap[old] = new_id(old.split("_", 1)[0])
            return swap[old]
        return [_ID.sub(fresh, template.tables[t]).replace("bench-template", f"floor-{i}") for t in tables]

    prepared = [rows_for(i, *t) for i, t in enumerate(targets)]  # built before the clock starts
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem, pool.acquire() as c:
            t0 = time.perf_counter()
            account_id, _, budget_id = targets[i]
            done = await c.fetchval(sql, template.amount_minor, account_id, budget_id, template.period, *prepared[i])
            assert done == 1, "the floor's budget update found no room"
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(len(targets))))
    elapsed = time.perf_counter() - start
    await pool.close()
    return elapsed, latencies


async def floor_targets(dsn: str, prefix: str, n: int) -> list[tuple[str, str, str]]:
    """(account, user, budget) of the floor's twin buyers ``{prefix}-{i}``."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT u.external_id, u.account_id, u.user_id, b.budget_id FROM users u JOIN budgets b "
            "ON b.account_id = u.account_id WHERE u.external_id = ANY($1::text[])", [f"{prefix}-{i}" for i in range(n)])
    finally:
        await conn.close()
    by_ref = {r[0]: (r[1], r[2], r[3]) for r in rows}
    return [by_ref[f"{prefix}-{i}"] for i in range(n)]


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] * 1000 if len(values) >= 20 else max(values) * 1000


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    warnings.simplefilter("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="purchase-bench-"))
    server = start_embedded(tmp)
    url = embedded_url(server)
    dsn = server.get_uri("postgres")
    try:
        key = await seed(url, args.purchases)
        results: dict[str, Any] = {}
        with live_server(url, tmp / "data", "bench-secret-" + "b" * 40, workers=args.workers) as base:
            template = await capture_template(dsn, base, key)
            results["rows per purchase"] = {t: rows.count("},{") + 1 for t, rows in sorted(template.tables.items())}
            for name, prefix in (("one shared budget", "s"), ("many budgets", "m")):
                users = [f"{prefix}-{i}" for i in range(args.purchases)]
                targets = await floor_targets(dsn, "f" + prefix, args.purchases)
                elapsed, lat = await http_phase(base, key, users, args.concurrency)
                f_elapsed, f_lat = await floor_phase(dsn, template, targets, args.concurrency)
                results[name] = {
                    "purchases_per_s": round(args.purchases / elapsed, 1), "p95_ms": round(p95(lat), 1),
                    "floor_per_s": round(args.purchases / f_elapsed, 1), "floor_p95_ms": round(p95(f_lat), 1),
                    "ratio": round((args.purchases / elapsed) / (args.purchases / f_elapsed), 3),
                }
        return results
    finally:
        server.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--purchases", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    print(json.dumps({"purchases": args.purchases, "concurrency": args.concurrency, "workers": args.workers,
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()
