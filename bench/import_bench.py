"""History import throughput: 100,000 NDJSON rows (60 accounts, 1,500 users, grants, purchases, usage and
attempt events over 90 days) through ``suggest.imports.import_history`` on an embedded PostgreSQL, against a
floor measured in the same run: the same number of rows inserted by batched ``unnest`` into one bare table in
one transaction. Then the same file again (a replay: everything is a duplicate). Each run also reports the CPU
seconds it took in this process and in its PostgreSQL backend (a loaded machine inflates wall time far more).

    python -m bench.import_bench [--rows 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
import warnings
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text

from app.clock import SystemClock
from app.db import create_engine, make_sessionmaker
from app.demo import demo_catalog_toml
from app.embedded import embedded_url, start_embedded
from app.migrate import upgrade
from bench.cpu import process_cpu
from catalog import service as catalog
from entitlements.service import catalog_view
from suggest import imports

ROLES = ("analyst", "manager", "engineer", "finance")


def make_rows(n: int, *, seed: int = 7) -> list[bytes]:
    """About ``n`` lines: accounts and users first, then grants, purchases, usage and attempts."""
    rng = random.Random(seed)
    now = SystemClock().now()
    booleans = ["pdf_export", "advanced_charts", "comments"]
    limits = ["reports"]
    modules = ["reports_basic", "advanced_charts", "comments"]
    lines: list[dict[str, Any]] = []
    users: list[str] = []
    for a in range(60):
        lines.append({"type": "account", "id": f"b-{a}", "name": f"Bench {a}", "segment": ("smb", "mid", "ent")[a % 3]})
        for i in range(25):
            uid = f"b-{a}-{i}"
            users.append(uid)
            lines.append({"type": "user", "id": uid, "account": f"b-{a}", "roles": [rng.choice(ROLES)]})
    for j, uid in enumerate(users):
        account = uid.rsplit("-", 1)[0]
        lines.append({"type": "grant", "id": f"g{j}", "account": account, "user": uid, "module": "reports_basic",
                      "starts_at": (now - timedelta(days=300)).isoformat()})
        if j % 3 == 0:
            lines.append({"type": "purchase", "id": f"p{j}", "account": account, "user": uid,
                          "module": rng.choice(modules[1:]), "amount_minor": 1500, "currency": "USD",
                          "at": (now - timedelta(days=rng.randint(1, 80))).isoformat()})
    k = 0
    while len(lines) < n:
        uid = rng.choice(users)
        at = (now - timedelta(days=rng.randint(1, 90), minutes=rng.randint(0, 1440))).isoformat()
        if rng.random() < 0.7:
            lines.append({"type": "usage", "id": f"u{k}", "user": uid, "feature": rng.choice(limits),
                          "occurred_at": at})
        else:
            lines.append({"type": "attempt", "id": f"a{k}", "user": uid, "feature": rng.choice(booleans),
                          "occurred_at": at, "denied": rng.random() < 0.5})
        k += 1
    return [json.dumps(x).encode() + b"\n" for x in lines]


async def chunked(lines: list[bytes], size: int = 1 << 20) -> AsyncIterator[bytes]:
    buf: list[bytes] = []
    n = 0
    for line in lines:
        buf.append(line)
        n += len(line)
        if n >= size:
            yield b"".join(buf)
            buf, n = [], 0
    if buf:
        yield b"".join(buf)


async def floor(dsn: str, lines: list[bytes]) -> float:
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE UNLOGGED TABLE IF NOT EXISTS floor_import (n bigint, body text)")
    start = time.perf_counter()
    async with conn.transaction():
        for i in range(0, len(lines), 5000):
            part = lines[i:i + 5000]
            await conn.execute("INSERT INTO floor_import SELECT * FROM unnest($1::bigint[], $2::text[])",
                               list(range(i, i + len(part))), [x.decode() for x in part])
    elapsed = time.perf_counter() - start
    await conn.close()
    return elapsed


async def main_async(rows: int) -> dict[str, Any]:
    warnings.simplefilter("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="import-bench-"))
    server = start_embedded(tmp)
    try:
        engine = create_engine(embedded_url(server), pool_size=2, max_overflow=2)
        await upgrade(engine)
        clock = SystemClock()
        sm = make_sessionmaker(engine)
        async with sm() as s, s.begin():
            await catalog.apply_document(s, catalog.parse_source(toml=demo_catalog_toml()), actor="bench", clock=clock)
        lines = make_rows(rows)
        runs = []
        for _ in range(2):  # the import, then the same file again (all duplicates)
            start = time.perf_counter()
            async with sm() as s, s.begin():
                backend = int(await s.scalar(text("SELECT pg_backend_pid()")) or 0)
                cpu = time.process_time(), process_cpu(backend)
                report = await imports.import_history(s, chunked(lines), clock=clock, view=await catalog_view(s),
                                                      actor="bench", unused_days=30)
                cpu = time.process_time() - cpu[0], process_cpu(backend) - cpu[1]
            elapsed = time.perf_counter() - start
            assert report.errors == 0, report.first_errors
            runs.append({"seconds": round(elapsed, 2), "rows_per_s": round(len(lines) / elapsed),
                         "cpu_python_s": round(cpu[0], 2), "cpu_postgres_s": round(cpu[1], 2),
                         "imported": report.imported})
        floor_s = await floor(server.get_uri("postgres"), lines)
        await engine.dispose()
        return {"rows": len(lines), "import": runs[0], "replay": runs[1],
                "floor_rows_per_s": round(len(lines) / floor_s),
                "ratio_to_floor": round(floor_s / runs[0]["seconds"], 3)}
    finally:
        server.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args.rows)), indent=2))


if __name__ == "__main__":
    main()
