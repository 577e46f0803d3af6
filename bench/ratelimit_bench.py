"""Rate limiting and CORS on the entitlement check path: the same app with the limiter on and off.

    python -m bench.ratelimit_bench [--block 500] [--blocks 40] [--rounds 5] [--seconds 4] [--connections 16]

Bounded: loopback only, an embedded PostgreSQL in a temporary folder, each phase stops by itself.
(a) In process: the real ASGI app (every middleware, guard and hook) called directly, no network, limiter
    on vs off, interleaved rounds; plus the user-token check with an Origin header (the CORS answer).
(b) Over HTTP: two granian servers (1 worker each, limiter on / off) on the same database, loaded at the same
    time by one closed-loop Python client (half the connections each), several rounds.
(c) The limiter's own cost per admitted request (warm lease) and how many database asks the runs caused.

In process, costs are medians of single requests (a neighbour that takes the CPU stretches a few requests,
not the median); over HTTP, the server processes' CPU time per request (psutil), because throughput on a
shared machine mostly measures the neighbours. Throughput is printed too, for what it is worth.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import shutil
import statistics
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psutil
from sqlalchemy import text

from app.asgi import create_app
from app.auth import VendorPrincipal
from app.clock import SystemClock
from app.db import create_engine, make_sessionmaker
from app.embedded import embedded_url, start_embedded
from app.ratelimit.limiter import RateLimiter
from app.settings import Settings, load_settings
from bench.entitlements_bench import _closed_loop, seed
from tests.support.live_server import live_server

CHECK = "/v1/entitlements/check"
QUERY = b"user=u1&feature=reports&quantity=1"
ORIGIN = "https://app.vendor.example"


def _scope(token: str, origin: str | None = None) -> dict[str, Any]:
    headers = [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())]
    if origin:
        headers.append((b"origin", origin.encode()))
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": CHECK, "raw_path": CHECK.encode(), "root_path": "",
            "query_string": QUERY, "headers": headers, "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80), "extensions": {}}


async def _drive(app: Any, scope: dict[str, Any], n: int) -> float:
    """The median wall time of one request (µs) through the whole ASGI app.

    A median of single requests, not a mean: a neighbour that takes the CPU away stretches a few requests
    by milliseconds and would dominate a mean.
    """
    statuses: set[int] = set()
    latencies: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        await app({**scope, "state": {}}, receive, send)
        latencies.append(clock() - t0)
    assert statuses == {200}, statuses
    latencies.sort()
    return latencies[n // 2] / 1000


async def user_token(base_settings: Settings, url: str) -> str:
    from app import tokens
    from app.accounts import service as accounts

    engine = create_engine(url, pool_size=1, max_overflow=0)
    async with make_sessionmaker(engine)() as s:
        acc = await accounts.get_account(s, "bench")
        user = await accounts.get_user(s, "u1")
        assert acc is not None and user is not None
        token, _ = tokens.mint(secret=base_settings.token_secret, audience=base_settings.token_audience,
                               account_id=acc.account_id, user_id=user.user_id, roles=("analyst",),
                               now=SystemClock().now(), ttl=timedelta(hours=1), generation=user.token_generation)
    await engine.dispose()
    return token


async def in_process_phase(settings: Settings, key: str, user: str, block: int, blocks: int) -> dict[str, Any]:
    """Blocks of each variant, in a new order every round; ``key_off_again`` is a second, identical app
    without the limiter: its difference to ``key_off`` is the noise floor of this measurement."""
    on = create_app(settings)
    off = create_app(msgspec.structs.replace(settings, rate_limit="off"))
    control = create_app(msgspec.structs.replace(settings, rate_limit="off"))
    full = create_app(settings)  # the same app without the check's fast path (D92): routing, middleware, guard
    full.fast_check = None
    variants = {"key_off": (off, _scope(key)), "key_off_again": (control, _scope(key)), "key_on": (on, _scope(key)),
                "key_on_full_stack": (full, _scope(key)),
                "user_origin_off": (off, _scope(user, ORIGIN)), "user_origin_on": (on, _scope(user, ORIGIN)),
                "user_no_origin_on": (on, _scope(user))}
    out: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants)
    shuffle = random.Random(7).shuffle
    async with on.lifespan(), off.lifespan(), control.lifespan(), full.lifespan():
        for app, scope in variants.values():  # warm: key cache, snapshot, catalog, first lease
            await _drive(app, scope, 500)
        for _ in range(blocks):
            shuffle(order)
            for name in order:
                app, scope = variants[name]
                out[name].append(await _drive(app, scope, block))
        async with on.state.sessionmaker() as session:
            handed = await session.scalar(text("SELECT coalesce(sum(hits), 0) FROM rate_limit_counters"))
    med = {k: statistics.median(v) for k, v in out.items()}

    def diff(a: str, b: str) -> float:
        return round(statistics.median(x - y for x, y in zip(out[a], out[b], strict=True)), 1)

    def ratio(a: str, b: str) -> float:
        return round(statistics.median(x / y for x, y in zip(out[a], out[b], strict=True)), 3)

    return {"us_per_request_median": {k: round(v, 1) for k, v in med.items()},
            "ratio_key_on_vs_off": ratio("key_off", "key_on"),
            "ratio_control": ratio("key_off", "key_off_again"),
            "ratio_time_fast_path_vs_full_stack": ratio("key_on", "key_on_full_stack"),
            "limiter_cost_key_us": diff("key_on", "key_off"),
            "noise_floor_us": diff("key_off_again", "key_off"),
            "ratio_user_origin_on_vs_off": ratio("user_origin_off", "user_origin_on"),
            "limiter_cost_user_us": diff("user_origin_on", "user_origin_off"),
            "cors_cost_us": diff("user_origin_on", "user_no_origin_on"),
            "requests_per_variant": block * blocks, "hits_in_shared_counters": int(handed or 0)}


class CountingLimiter(RateLimiter):
    """The limiter, counting how often it asks the database for a lease."""

    asks = 0

    async def _grant(self, *args: Any) -> None:
        self.asks += 1
        await super()._grant(*args)


async def limiter_phase(settings: Settings, url: str, n: int) -> dict[str, Any]:
    engine = create_engine(url, pool_size=2, max_overflow=0)
    limiter = CountingLimiter(settings, SystemClock())
    await limiter.start(make_sessionmaker(engine))
    principal = VendorPrincipal(key_id="key_bench", scopes=frozenset())
    for _ in range(1000):
        await limiter.admit(principal, "check")
    clock, latencies = time.perf_counter_ns, []
    for _ in range(n):
        t0 = clock()
        await limiter.admit(principal, "check")
        latencies.append(clock() - t0)
    per = sorted(latencies)[n // 2] / 1000
    await limiter.stop()
    await engine.dispose()
    return {"admit_us": round(per, 2), "requests": n + 1000, "database_asks": limiter.asks}


def _server_processes(base: str) -> list[psutil.Process]:
    port = int(base.rsplit(":", 1)[1])
    pid = next(c.pid for c in psutil.net_connections(kind="tcp")
               if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid)
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _cpu_s(processes: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in processes)


async def _served(base: str, path: str, key: str, seconds: int, connections: int) -> dict[str, float]:
    procs = _server_processes(base)
    cpu0 = _cpu_s(procs)
    load = await _closed_loop(base, path, key, seconds, connections)
    requests = load["rps"] * seconds
    return {**load, "cpu_us_per_request": (_cpu_s(procs) - cpu0) / requests * 1e6}


async def http_phase(on: str, off: str, key: str, seconds: int, connections: int, rounds: int) -> dict[str, Any]:
    path = f"{CHECK}?{QUERY.decode()}"
    for base in (on, off):
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}) as c:
            for _ in range(100):
                assert (await c.get(path)).status_code == 200
    runs: list[dict[str, Any]] = []
    for _ in range(rounds):  # both servers loaded at the same time: whatever else runs hits both alike
        both = await asyncio.gather(_served(off, path, key, seconds, connections // 2),
                                    _served(on, path, key, seconds, connections // 2))
        one: dict[str, Any] = {"off": both[0], "on": both[1]}
        one["cpu_ratio_off_vs_on"] = one["off"]["cpu_us_per_request"] / one["on"]["cpu_us_per_request"]
        one["rps_ratio_on_vs_off"] = one["on"]["rps"] / one["off"]["rps"]
        runs.append(one)
        print(json.dumps(one), flush=True)
    cpu = sorted(r["cpu_ratio_off_vs_on"] for r in runs)
    rps = sorted(r["rps_ratio_on_vs_off"] for r in runs)
    return {"rounds": runs, "median_cpu_ratio_off_vs_on": round(cpu[len(cpu) // 2], 3),
            "median_rps_ratio_on_vs_off": round(rps[len(rps) // 2], 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000, help="limiter micro-benchmark calls")
    parser.add_argument("--block", type=int, default=500)
    parser.add_argument("--blocks", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5, help="HTTP rounds")
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="rl-bench-"))
    server = start_embedded(tmp / "pg")
    try:
        url = embedded_url(server)
        key = asyncio.run(seed(url))
        settings = load_settings({}, env="test", database_url=url, data_dir=tmp / "data",
                                 token_secret="bench-" + "x" * 40, dispatcher="off", scheduler="off", sweep_seconds=0,
                                 cors_origins=(ORIGIN,), rate_limit_check_user="100000000/minute", stripe_backend="off")
        user = asyncio.run(user_token(settings, url))
        result: dict[str, Any] = {"machine": f"{platform.machine()}, Python {platform.python_version()}"}
        result["limiter"] = asyncio.run(limiter_phase(settings, url, args.requests))
        print(json.dumps(result["limiter"]), flush=True)
        result["in_process"] = asyncio.run(in_process_phase(settings, key, user, args.block, args.blocks))
        print(json.dumps(result["in_process"], indent=1), flush=True)
        env = {"COMMERCE_SWEEP_SECONDS": "0", "COMMERCE_DB_POOL_SIZE": "4"}  # the vendor key: default limits
        with live_server(url, tmp / "on", "bench-" + "x" * 40, workers=1, extra_env=env) as on, \
                live_server(url, tmp / "off", "bench-" + "x" * 40, workers=1,
                            extra_env={**env, "COMMERCE_RATE_LIMIT": "off"}) as off:
            result["http"] = asyncio.run(http_phase(on, off, key, args.seconds, args.connections, args.rounds))
        print("summary:", json.dumps({"limiter": result["limiter"],
                                      "in_process": result["in_process"],
                                      "http": {k: v for k, v in result["http"].items() if k != "rounds"}}))
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
