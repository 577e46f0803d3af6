"""Usage at scale: ingestion rate and check latency with an empty usage table vs 10 million stored events.

    python -m bench.usage_scale_bench [--events 10000000] [--seconds 5] [--rounds 3] [--batches 40]

Bounded and loopback only: one embedded PostgreSQL in a temporary folder with two databases seeded alike,
one of which also stores the events (written by SQL into the monthly partitions of the last eleven months,
spread over 1,000 other accounts, with their keys; then VACUUM ANALYZE and a checkpoint, as a table that has
settled). Each database is served by its own app (granian, 2 workers); rounds alternate between them, so a
busy neighbour on the shared cores hits both alike. The claim checked is "within 10 %" of the empty one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from app.embedded import embedded_url, start_embedded
from bench.entitlements_bench import USERS, _closed_loop, seed
from tests.support.live_server import live_server

CHUNK = 1_000_000
CHECK = "/v1/entitlements/check?user=u1&feature=reports&quantity=1"


async def ingest(base: str, token: str, *, batches: int, tag: str) -> float:
    """Events per second through POST /v1/usage (500 per batch, 4 concurrent senders)."""
    size = 500
    bodies = [json.dumps({"events": [{"event_id": f"{tag}-b{b}-e{i}", "user": f"u{(b * size + i) % USERS}",
                                      "feature": "reports", "quantity": 1} for i in range(size)]}).encode()
              for b in range(batches)]
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120) as c:
        t0 = time.perf_counter()

        async def sender() -> None:
            while bodies:
                r = await c.post("/v1/usage", content=bodies.pop(), headers=headers)
                if r.status_code != 200 or r.json()["accepted"] != size:
                    raise RuntimeError(f"usage batch failed: {r.status_code} {r.text[:300]}")

        await asyncio.gather(*(sender() for _ in range(4)))
        return batches * size / (time.perf_counter() - t0)


async def measure(base: str, token: str, *, seconds: int, rounds: int, batches: int, tag: str) -> dict[str, float]:
    """Median of ``rounds`` interleaved rounds of ingestion and checks."""
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}) as c:
        for _ in range(50):
            assert (await c.get(CHECK)).status_code == 200
    ingestion, rps, p50, p99 = [], [], [], []
    for r in range(rounds):
        ingestion.append(await ingest(base, token, batches=batches, tag=f"{tag}{r}"))
        check = await _closed_loop(base, CHECK, token, seconds, 16)
        rps.append(check["rps"])
        p50.append(check["p50_ms"])
        p99.append(check["p99_ms"])
        print(json.dumps({"phase": tag, "round": r, "ingest_events_per_s": ingestion[-1], **check}), flush=True)
    return {"ingest_events_per_s": statistics.median(ingestion), "check_rps": statistics.median(rps),
            "check_p50_ms": statistics.median(p50), "check_p99_ms": statistics.median(p99)}


async def store(url: str, events: int) -> dict[str, Any]:
    """Write ``events`` usage events (and their keys) by SQL into the last eleven months' partitions."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        from app.db import create_engine, make_sessionmaker
        from entitlements.service import ensure_partitions

        engine = create_engine(url, pool_size=1, max_overflow=0)
        async with make_sessionmaker(engine)() as s, s.begin():
            await ensure_partitions(s, now=datetime.now(UTC), months_back=11)
        await engine.dispose()
        t0 = time.perf_counter()
        for lo in range(0, events, CHUNK):
            hi = min(events, lo + CHUNK) - 1
            async with conn.transaction():
                await conn.execute("""
                    INSERT INTO ent_usage_event_keys (account_id, event_id, recorded_at)
                    SELECT 'acc_bulk' || (g % 1000), 'bulk-' || g, now() FROM generate_series($1::bigint, $2) g""",
                                   lo, hi)
                await conn.execute("""
                    INSERT INTO ent_usage_events (account_id, event_id, user_id, feature, kind, quantity, occurred_at,
                                                  period_start, properties, recorded_at)
                    SELECT 'acc_bulk' || (g % 1000), 'bulk-' || g, 'usr_bulk' || (g % 50000), 'reports', 'usage', 1,
                           now() - (g % 320) * interval '1 day',
                           date_trunc('month', now() - (g % 320) * interval '1 day'), NULL, now()
                      FROM generate_series($1::bigint, $2) g""", lo, hi)
            print(json.dumps({"stored": hi + 1, "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
        await conn.execute("ANALYZE ent_usage_events")
        await conn.execute("ANALYZE ent_usage_event_keys")
        size = await conn.fetchval("SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_class c "
                                   "WHERE c.relname LIKE 'ent_usage_event%' AND c.relkind IN ('r', 'i')")
        count = await conn.fetchval("SELECT count(*) FROM ent_usage_events")
        parts = await conn.fetchval("SELECT count(*) FROM pg_inherits WHERE inhparent = 'ent_usage_events'::regclass")
        return {"events": count, "partitions": parts, "on_disk": size, "load_s": round(time.perf_counter() - t0, 1)}
    finally:
        await conn.close()


async def settle(url: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute("VACUUM (ANALYZE) ent_usage_events")
        await conn.execute("VACUUM (ANALYZE) ent_usage_event_keys")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def create_database(url: str, name: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="usage-bench-"))
    server = start_embedded(tmp / "pg")
    try:
        urls = {}
        for name in ("empty", "full"):
            asyncio.run(create_database(embedded_url(server), f"usage_{name}"))
            urls[name] = embedded_url(server, f"usage_{name}")
        tokens = {name: asyncio.run(seed(url)) for name, url in urls.items()}
        result: dict[str, Any] = {"stored": asyncio.run(store(urls["full"], args.events))}
        asyncio.run(settle(urls["full"]))
        env = {"COMMERCE_DB_POOL_SIZE": "4", "COMMERCE_RATE_LIMIT": "off", "COMMERCE_METRICS": "off"}
        rounds: dict[str, list[dict[str, float]]] = {"empty": [], "full": []}
        with live_server(urls["empty"], tmp / "empty", "bench-" + "x" * 40, workers=2, extra_env=env) as empty, \
                live_server(urls["full"], tmp / "full", "bench-" + "x" * 40, workers=2, extra_env=env) as full:
            bases = {"empty": empty, "full": full}
            for r in range(args.rounds):
                for name in ("empty", "full"):
                    rounds[name].append(asyncio.run(measure(bases[name], tokens[name], seconds=args.seconds,
                                                            rounds=1, batches=args.batches, tag=f"{name}{r}-")))
        for name, rs in rounds.items():
            result[name] = {k: statistics.median(x[k] for x in rs) for k in rs[0]}
        e, f = result["empty"], result["full"]
        result["ratios"] = {"ingest_full_vs_empty": f["ingest_events_per_s"] / e["ingest_events_per_s"],
                            "check_rps_full_vs_empty": f["check_rps"] / e["check_rps"],
                            "check_p50_full_vs_empty": f["check_p50_ms"] / e["check_p50_ms"]}
        print("summary:", json.dumps(result))
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
