"""SDK benchmarks: the warm local entitlement check, and how long a grant or a revocation takes to reach it.

    python -m bench.sdk_bench [--checks 200000] [--rounds 20] [--workers 2]

Bounded: loopback only, an embedded PostgreSQL in a temporary folder, granian with ``--workers`` processes.
The warm check is timed in batches of 1,000 calls (median of the batches, per call) against a floor of the
same loop calling a bare function that does one dict lookup. Propagation is timed from the moment the
service answered the grant (or revoke) request, made on another connection, until the SDK's local check
changes its answer; the SDK learns of it only through the change stream.
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

import httpx
from commerce_sdk import CachePolicy, Commerce
from commerce_sdk.entitlements import entry_size

from app.embedded import embedded_url, start_embedded
from bench.entitlements_bench import USERS, seed
from tests.support.live_server import live_server

BATCH = 1000


def time_warm_checks(client: Commerce, checks: int) -> dict[str, float]:
    check = client.entitlements.check
    users = [f"u{i}" for i in range(USERS)]
    table = {u: True for u in users}

    def floor(user: str, _feature: str, _quantity: int = 1) -> bool | None:
        return table.get(user)

    def per_call(fn: object) -> list[float]:
        samples = []
        for b in range(checks // BATCH):
            user = users[b % USERS]
            began = time.perf_counter_ns()
            for _ in range(BATCH):
                fn(user, "pdf_export")  # type: ignore[operator]
            samples.append((time.perf_counter_ns() - began) / BATCH)
        return samples

    assert check("u0", "pdf_export").allowed
    sdk, bare = per_call(check), per_call(floor)
    return {"check_median_ns": statistics.median(sdk), "check_p99_ns": statistics.quantiles(sdk, n=100)[98],
            "floor_median_ns": statistics.median(bare)}


def time_propagation(client: Commerce, http: httpx.Client, rounds: int) -> dict[str, float]:
    def until(predicate: object) -> float:
        began = time.perf_counter()
        while not predicate():  # type: ignore[operator]
            if time.perf_counter() - began > 10:
                raise RuntimeError("no propagation within 10 s")
            time.sleep(0.0005)
        return time.perf_counter() - began

    grants, revokes = [], []
    for i in range(rounds):
        user = f"u{i % USERS}"
        assert not client.entitlements.check(user, "forecasting").allowed
        r = http.post("/v1/accounts/bench/grants", json={"module": "forecasting", "user": user,
                                                         "source_ref": f"bench-{i}"})
        r.raise_for_status()
        grants.append(until(lambda user=user: client.entitlements.check(user, "forecasting").allowed))
        http.post(f"/v1/accounts/bench/grants/{r.json()['id']}/revoke", json={"reason": "bench"}).raise_for_status()
        revokes.append(until(lambda user=user: not client.entitlements.check(user, "forecasting").allowed))
    both = grants + revokes
    return {"grant_median_ms": statistics.median(grants) * 1000, "revoke_median_ms": statistics.median(revokes) * 1000,
            "p95_ms": statistics.quantiles(both, n=20)[18] * 1000, "max_ms": max(both) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sdk-bench-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = start_embedded(tmp / "pg")
    try:
        url = embedded_url(server)
        token = asyncio.run(seed(url))
        with live_server(url, tmp / "data", "bench-" + "b" * 40, workers=args.workers) as base, \
                httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http, \
                Commerce(api_key=token, base_url=base, cache=CachePolicy(max_users=USERS * 2)) as client:
            client.entitlements.warm_up(users=[f"u{i}" for i in range(USERS)])
            sizes = [entry_size(e) for e in list(client.entitlements.cache._entries.values())]
            out = {**time_warm_checks(client, args.checks), **time_propagation(client, http, args.rounds),
                   "bytes_per_cached_user_mean": statistics.mean(sizes), "bytes_per_cached_user_max": max(sizes),
                   "stream_reconnects": client.follower.reconnects, "workers": args.workers}
        print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in out.items()}, indent=1))
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
