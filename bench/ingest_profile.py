"""Usage batches one at a time, in process: where a batch of 500 spends its time (medians).

    python -m bench.ingest_profile [--batches 60] [--profile]

The app runs in this process, called through httpx's ASGI transport on this event loop (no HTTP server, no
concurrency), on an embedded PostgreSQL in a temporary folder seeded like ``bench.entitlements_bench``. Per
batch: wall and CPU time of the whole request and the wall time of every statement (SQLAlchemy events); then the
same rows by binary COPY into the events table, one transaction per batch (the floor of bench.ingest_bench).
``--profile`` adds the functions with the most time of their own (cProfile) and the merge's plan (EXPLAIN
ANALYZE of one more batch, rolled back).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import httpx

from app.embedded import embedded_url, start_embedded
from bench.entitlements_bench import seed
from bench.ingest_bench import bodies, copy


async def main_async(batches: int, profile: bool) -> dict[str, float]:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    tmp = Path(tempfile.mkdtemp(prefix="ingest-profile-"))
    server = start_embedded(tmp)
    url = embedded_url(server)
    try:
        key = await seed(url)
        os.environ.update({"DATABASE_URL": url, "COMMERCE_ENV": "test", "COMMERCE_DATA_DIR": str(tmp / "data"),
                           "COMMERCE_TOKEN_SECRET": "bench-secret-" + "b" * 40, "COMMERCE_DISPATCHER": "off",
                           "COMMERCE_SCHEDULER": "off", "COMMERCE_STRIPE": "fake",
                           "COMMERCE_RATE_LIMIT": "off"})
        from app.asgi import app_factory

        merge = [0.0]
        started: dict[int, float] = {}
        statements: dict[str, list[float]] = {}

        def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            started[id(cursor)] = time.perf_counter()

        def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            took = time.perf_counter() - started.pop(id(cursor), time.perf_counter())
            statements.setdefault(" ".join(statement.split())[:70], []).append(took * 1000)
            if "ent_usage_event_keys" in statement:
                merge[0] += took

        event.listen(Engine, "before_cursor_execute", before)
        event.listen(Engine, "after_cursor_execute", after)
        sent = [json.dumps({"events": b}).encode() for b in bodies("api", batches + 5)]
        headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
        wall, cpu, merged = [], [], []
        profiler = cProfile.Profile()
        app = app_factory()
        async with app.lifespan(), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                     base_url="http://bench") as client:
            for i, body in enumerate(sent):
                merge[0], c0, w0 = 0.0, time.process_time(), time.perf_counter()
                if profile and i >= 5:
                    profiler.enable()
                r = await client.post("/v1/usage", content=body, headers=headers)
                profiler.disable()
                assert r.status_code == 200 and r.json()["accepted"] == 500, r.text
                if i >= 5:  # warm-up batches left out
                    wall.append((time.perf_counter() - w0) * 1000)
                    cpu.append((time.process_time() - c0) * 1000)
                    merged.append(merge[0] * 1000)
        copy_eps = await copy(url.replace("postgresql+asyncpg://", "postgresql://"), bodies("copy", batches))
        for sql, took in sorted(statements.items(), key=lambda kv: -sum(kv[1])):
            print(f"{len(took):5d} x {statistics.median(took):7.2f} ms  {sql}")
        if profile:
            print(await explain(url, bodies("explain", 1)[0]))
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return {"batches": batches, "request_wall_ms": statistics.median(wall),
                "request_cpu_ms": statistics.median(cpu), "merge_statement_ms": statistics.median(merged),
                "copy_batch_ms": 500 / copy_eps * 1000}
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(json.dumps(asyncio.run(main_async(args.batches, args.profile)), indent=1))



async def explain(url: str, batch: list[dict[str, Any]]) -> str:
    """EXPLAIN ANALYZE of one merge of ``batch`` (rolled back)."""
    from sqlalchemy import text

    from app.clock import SystemClock
    from app.db import create_engine, make_sessionmaker
    from catalog.service import load_live
    from entitlements.domain import CatalogView
    from entitlements.service._staging import _ENCODE, _MERGE_JSON, Periods

    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with make_sessionmaker(engine)() as s:
            users = dict((await s.execute(text("SELECT external_id, user_id FROM users"))).all())
            account = await s.scalar(text("SELECT account_id FROM accounts WHERE external_id = 'bench'"))
            view = CatalogView.build(await load_live(s))
            now = SystemClock().now()
            periods = Periods(view)
            rows = _ENCODE([(i, account, e["event_id"], users[e["user"]], e["feature"], "usage", e["quantity"], now,
                             *periods.of(e["feature"], now), e["properties"], False)
                            for i, e in enumerate(batch)]).decode()
            plan = (await s.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + str(_MERGE_JSON.text)),
                                    {"rows": rows, "now": now})).scalars().all()
            await s.rollback()
            return "\n".join(plan)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    main()
