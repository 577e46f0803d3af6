"""Usage ingestion against COPY: batches of 500 events through ``POST /v1/usage`` (granian, 2 workers, 4
concurrent senders) against asyncpg's binary COPY of the same rows into the same table (``ent_usage_events``,
with its partitions, keys and indexes), one transaction per 500 rows, in the same run, both warmed first with half
as many batches (at least eight) that are not timed. Rounds alternate between
the two, so a neighbour on the shared cores hits both alike; the median round's ratio is the figure. Each API phase
also reports where its CPU went per batch: the server's processes (granian and its workers), PostgreSQL's (the
postmaster and every backend, read from /proc before and after) and this client's.

    python -m bench.ingest_bench [--rounds 5] [--batches 40]

Bounded and loopback only: one embedded PostgreSQL in a temporary folder, every phase stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from app.clock import SystemClock
from app.embedded import embedded_url, start_embedded
from bench.cpu import tree_cpu
from bench.entitlements_bench import USERS, seed
from tests.support.live_server import live_process

SIZE = 500


class Cpu:
    """CPU per batch of the server, PostgreSQL and this client over one phase."""

    def __init__(self, server: int, postgres: int) -> None:
        self.server, self.postgres = server, postgres

    def sample(self) -> tuple[float, float, float]:
        return tree_cpu(self.server), tree_cpu(self.postgres), time.process_time()

    def per_batch(self, before: tuple[float, float, float], batches: int) -> dict[str, float]:
        after = self.sample()
        return {f"{k}_cpu_ms": (a - b) * 1000 / batches for k, a, b in zip(("server", "pg", "client"), after, before,
                                                                              strict=True)}


def bodies(tag: str, batches: int) -> list[list[dict[str, Any]]]:
    return [[{"event_id": f"{tag}-b{b}-e{i}", "user": f"u{(b * SIZE + i) % USERS}", "feature": "reports",
              "quantity": 1, "properties": {"source": "bench"}} for i in range(SIZE)] for b in range(batches)]


async def api(base: str, token: str, batches: list[list[dict[str, Any]]], cpu: Cpu | None = None,
              ) -> tuple[float, dict[str, float]]:
    """Events per second through the API (and the CPU split per batch); bodies are encoded before the clock
    starts."""
    queue = [json.dumps({"events": b}).encode() for b in batches]
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120) as c:
        before = cpu.sample() if cpu else (0.0, 0.0, 0.0)
        t0 = time.perf_counter()

        async def sender() -> None:
            while queue:
                r = await c.post("/v1/usage", content=queue.pop(), headers=headers)
                if r.status_code != 200 or r.json()["accepted"] != SIZE:
                    raise RuntimeError(f"usage batch failed: {r.status_code} {r.text[:300]}")

        await asyncio.gather(*(sender() for _ in range(4)))
        eps = len(batches) * SIZE / (time.perf_counter() - t0)
        return eps, cpu.per_batch(before, len(batches)) if cpu else {}


async def copy(dsn: str, batches: list[list[dict[str, Any]]]) -> float:
    """Events per second by COPY of the same rows (other event ids) into the events table itself."""
    conn = await asyncpg.connect(dsn)
    try:
        users = dict(await conn.fetch("SELECT external_id, user_id FROM users"))
        account = await conn.fetchval("SELECT account_id FROM accounts WHERE external_id = 'bench'")
        now = SystemClock().now()
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        columns = ("account_id", "event_id", "user_id", "feature", "kind", "quantity", "occurred_at", "period_start",
                   "properties", "recorded_at")
        rows = [[(account, e["event_id"], users[e["user"]], e["feature"], "usage", e["quantity"], now, start,
                  json.dumps(e["properties"]), now) for e in b] for b in batches]
        t0 = time.perf_counter()
        for batch in rows:
            async with conn.transaction():
                await conn.copy_records_to_table("ent_usage_events", records=batch, columns=columns)
        return len(batches) * SIZE / (time.perf_counter() - t0)
    finally:
        await conn.close()


async def rounds(base: str, dsn: str, token: str, *, n: int, batches: int, cpu: Cpu | None = None,
                 ) -> list[dict[str, float]]:
    # Both sides warm before the clock (as the purchase bench, D103): the server's fast-pool connections prepare
    # the merge on their first batch, and a first round that paid for it read low (0.39-0.52 against 0.5-0.8).
    warm = max(8, batches // 2)
    await api(base, token, bodies("warm-api", warm))
    await copy(dsn, bodies("warm-copy", warm))
    out = []
    for i in range(n):
        first, second = ("api", "copy") if i % 2 == 0 else ("copy", "api")
        got: dict[str, float] = {}
        for phase in (first, second):
            rows = bodies(f"{phase}{i}", batches)
            if phase == "api":
                got["api"], split = await api(base, token, rows, cpu)
                got.update(split)
            else:
                before = cpu.sample() if cpu else (0.0, 0.0, 0.0)
                got["copy"] = await copy(dsn, rows)
                await asyncio.sleep(0.5)  # the COPY backend has exited and been counted (by the postmaster)
                if cpu:
                    got["copy_pg_cpu_ms"] = cpu.per_batch(before, len(rows))["pg_cpu_ms"]
        got["ratio"] = got["api"] / got["copy"]
        print(json.dumps({k: round(v, 3) for k, v in got.items()}), flush=True)
        out.append(got)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    server = start_embedded(tmp / "pg")
    try:
        url = embedded_url(server)
        token = asyncio.run(seed(url))
        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        env = {"COMMERCE_SWEEP_SECONDS": "0", "COMMERCE_DB_POOL_SIZE": "4"}
        postmaster = int((tmp / "pg" / "pg" / "postmaster.pid").read_text().split()[0])
        with live_process(url, tmp / "data", "bench-" + "x" * 40, workers=2, extra_env=env) as (base, proc):
            got = asyncio.run(rounds(base, dsn, token, n=args.rounds, batches=args.batches,
                                     cpu=Cpu(proc.pid, postmaster)))
        median = sorted(got, key=lambda g: g["ratio"])[len(got) // 2]
        print("summary:", json.dumps({
            "machine": f"{platform.machine()}, Python {platform.python_version()}", "rounds": len(got),
            "ratios": [round(g["ratio"], 3) for g in got], "median_ratio": round(median["ratio"], 3),
            "api_events_per_s": round(median["api"]), "copy_events_per_s": round(median["copy"]),
            "api_median_events_per_s": round(statistics.median(g["api"] for g in got)),
            **{f"median_{k}": round(statistics.median(g[k] for g in got), 2)
               for k in ("server_cpu_ms", "pg_cpu_ms", "client_cpu_ms", "copy_pg_cpu_ms") if k in got[0]}}))
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
