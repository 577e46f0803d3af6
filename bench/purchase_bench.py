"""End-to-end budget purchase (quote -> order -> fulfilled) over HTTP vs a bare SQL transaction floor.

    python -m bench.purchase_bench [--purchases 300] [--concurrency 16] [--workers 2]

Two scenarios: every buyer on ONE shared budget (one hot row), and every buyer in its own account with
its own budget (MANY budgets). The floor is the same number of purchases done as bare asyncpg
transactions writing the same rows a purchase writes (one guarded UPDATE of the budget period plus the
quote, order, hold, two ledger entries, grant, sales credit and five outbox rows), with the same
concurrency, into unconstrained scratch tables. Bounded: loopback only, an embedded PostgreSQL in a
temporary folder, a fixed number of purchases per phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import warnings
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
from app.migrate import upgrade
from app.scopes import SCOPES
from billing import service as billing
from billing.domain.guardrails import GuardrailPolicy
from catalog import service as catalog
from tests.support.live_server import live_server

FLOOR_DDL = """
CREATE SCHEMA IF NOT EXISTS floor;
CREATE UNLOGGED TABLE IF NOT EXISTS floor.period (id int PRIMARY KEY, amount bigint, reserved bigint, captured bigint);
CREATE UNLOGGED TABLE IF NOT EXISTS floor.rows (id bigserial PRIMARY KEY, kind text, a text, b text, n bigint,
                                                body jsonb);
"""


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
        for i in range(buyers):
            await accounts.upsert_user(s, shared, UserUpsert(external_id=f"s-{i}", roles=["analyst"]), actor="b",
                                       clock=clock)
            solo, _ = await accounts.upsert_account(s, AccountUpsert(external_id=f"solo-{i}", name=f"Solo {i}"),
                                                    actor="b", clock=clock)
            await accounts.upsert_user(s, solo, UserUpsert(external_id=f"m-{i}", roles=["analyst"]), actor="b",
                                       clock=clock)
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


async def floor_phase(dsn: str, n: int, concurrency: int, *, shared: bool) -> tuple[float, list[float]]:
    conn = await asyncpg.connect(dsn)
    await conn.execute(FLOOR_DDL)
    await conn.execute("TRUNCATE floor.period, floor.rows")
    await conn.execute("INSERT INTO floor.period SELECT g, 10000000000, 0, 0 FROM generate_series(0, $1) g", n)
    await conn.close()
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    body = json.dumps({"module": "reports_basic", "amount_minor": 225, "currency": "USD", "reasons": ["bench"]})
    latencies: list[float] = []

    async def one(i: int) -> None:
        t0 = time.perf_counter()
        async with pool.acquire() as c, c.transaction():
            row = await c.fetchval("UPDATE floor.period SET captured = captured + 225 WHERE id = $1 "
                                   "AND amount - reserved - captured >= 225 RETURNING captured", 0 if shared else i)
            assert row is not None
            await c.executemany("INSERT INTO floor.rows (kind, a, b, n, body) VALUES ($1, $2, $3, $4, $5)",
                                [(k, f"acct-{i}", f"ord-{i}", 225, body) for k in
                                 ("quote", "order", "hold", "ledger", "ledger", "grant", "credit", "evt", "evt",
                                  "evt", "evt", "evt")])
        latencies.append(time.perf_counter() - t0)

    sem = asyncio.Semaphore(concurrency)

    async def bounded(i: int) -> None:
        async with sem:
            await one(i)

    start = time.perf_counter()
    await asyncio.gather(*(bounded(i) for i in range(n)))
    elapsed = time.perf_counter() - start
    await pool.close()
    return elapsed, latencies


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
            for name, prefix in (("one shared budget", "s"), ("many budgets", "m")):
                users = [f"{prefix}-{i}" for i in range(args.purchases)]
                elapsed, lat = await http_phase(base, key, users, args.concurrency)
                f_elapsed, f_lat = await floor_phase(dsn, args.purchases, args.concurrency, shared=prefix == "s")
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
