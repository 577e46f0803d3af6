"""Suggestion request latency for a user in an account of 5,000 users with 30 active modules in the catalog.

    python -m bench.suggest_speed [--users 5000] [--requests 300]

Phases: seed (the demo catalog plus generated modules up to 30 active; one account of ``--users`` users with
grants, three months of usage counters and demand signals, written in bulk, then its peer statistics counted once
as after an import: from then on every change keeps them up to date),
then ``--requests`` requests for random users (a) over HTTP on loopback (granian, one worker; authentication,
JSON and the database included), the very first request of the fresh server process included, and (b)
in-process through the service (session, transaction and commit included; statements per request counted),
each against a bare authenticated floor (GET /v1/accounts/{account}, a one-query transaction) measured the same
way; then the time one recount of the account takes.
Bounded: loopback only, an embedded PostgreSQL in a temporary folder, every phase stops by itself.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, text

from app import keys
from app.accounts import service as accounts
from app.accounts.schemas import AccountUpsert
from app.auth import VendorPrincipal
from app.clock import SystemClock
from app.db import create_engine, make_sessionmaker
from app.demo import demo_catalog_toml
from app.embedded import embedded_url, start_embedded
from app.migrate import upgrade
from app.scopes import SCOPES
from app.settings import load_settings
from catalog import service as catalog
from catalog.spec import BooleanFeature, Module, RecurringPrice
from entitlements.runtime import Runtime
from suggest import peers, service
from suggest.schemas import SuggestionRequest, TriggerIn
from tests.support.live_server import live_server

ROLES = ["analyst", "analyst", "analyst", "manager", "engineer", "viewer"]


def catalog_doc() -> Any:
    """The demo catalog with generated modules added until 30 are active."""
    import msgspec

    doc = catalog.parse_source(toml=demo_catalog_toml())
    active = [m for m in doc.modules if m.status == "active"]
    extra_features = [BooleanFeature(key=f"bench_f{i}", name=f"Bench feature {i}") for i in range(30 - len(active))]
    extra = [Module(key=f"bench_m{i}", name=f"Bench Module {i}", category="collaboration",
                    features={f.key: True}, prices=[RecurringPrice(currency="USD", interval="month",
                                                                   amount_minor=500 + 100 * i)])
             for i, f in enumerate(extra_features)]
    return catalog.parse_source(document=msgspec.to_builtins(msgspec.structs.replace(
        doc, features=[*doc.features, *extra_features], modules=[*doc.modules, *extra])))


async def seed(url: str, users: int) -> tuple[str, list[str], int]:
    engine = create_engine(url, pool_size=2, max_overflow=2)
    await upgrade(engine)
    clock = SystemClock()
    now = clock.now()
    rng = random.Random(5)
    async with make_sessionmaker(engine)() as s, s.begin():
        doc = catalog_doc()
        await catalog.apply_document(s, doc, actor="bench", clock=clock)
        active = sorted(m.key for m in doc.modules if m.status == "active" and not m.requires)
        acc, _ = await accounts.upsert_account(s, AccountUpsert(external_id="big", name="Big", segment="enterprise"),
                                               actor="bench", clock=clock)
        ids = [f"usr_bench{i:021d}" for i in range(users)]
        await s.execute(text("""
            INSERT INTO users (account_id, user_id, external_id, roles, created_at, updated_at)
            SELECT :a, u, 'big-' || n, ARRAY[r], :now, :now
              FROM unnest(CAST(:ids AS text[]), CAST(:ns AS text[]), CAST(:rs AS text[])) AS t(u, n, r)"""),
            {"a": acc.account_id, "ids": ids, "ns": [str(i) for i in range(users)],
             "rs": [rng.choice(ROLES) for _ in ids], "now": now})
        g_user, g_mod, g_id = [], [], []
        for u in ids:
            for m in rng.sample(active, rng.randint(1, 4)):
                g_user.append(u)
                g_mod.append(m)
                g_id.append(f"grt_bench{len(g_id):021d}")
        await s.execute(text("""
            INSERT INTO ent_grants (account_id, grant_id, user_id, module, source, source_ref, starts_at,
                                    seats_assigned, created_at, updated_at)
            SELECT :a, g, u, m, 'admin', g, :start, 0, :now, :now
              FROM unnest(CAST(:g AS text[]), CAST(:u AS text[]), CAST(:m AS text[])) AS t(g, u, m)"""),
            {"a": acc.account_id, "g": g_id, "u": g_user, "m": g_mod, "start": now - timedelta(days=120),
             "now": now})
        feats = [f.key for f in doc.features][:20]
        c_user, c_feat, c_start, c_end, c_used = [], [], [], [], []
        month = datetime(now.year, now.month, 1, tzinfo=UTC)
        for u in ids:
            for f in rng.sample(feats, 3):
                for back in range(3):
                    start = (month - timedelta(days=31 * back)).replace(day=1)
                    end = (start + timedelta(days=32)).replace(day=1)
                    c_user.append(u)
                    c_feat.append(f)
                    c_start.append(start)
                    c_end.append(end)
                    c_used.append(rng.randint(0, 60))
        await s.execute(text("""
            INSERT INTO ent_usage_counters (account_id, user_id, feature, period_start, period_end, used, updated_at)
            SELECT :a, u, f, s, e, n, :now FROM unnest(CAST(:u AS text[]), CAST(:f AS text[]),
                   CAST(:s AS timestamptz[]), CAST(:e AS timestamptz[]), CAST(:n AS bigint[])) AS t(u, f, s, e, n)
            ON CONFLICT DO NOTHING"""),
            {"a": acc.account_id, "u": c_user, "f": c_feat, "s": c_start, "e": c_end, "n": c_used, "now": now})
        await s.execute(text("""
            INSERT INTO ent_demand_signals (account_id, user_id, feature, day, denied_checks, attempts, last_at)
            SELECT :a, u, f, CAST(:day AS date), 2, 1, :now
              FROM unnest(CAST(:u AS text[]), CAST(:f AS text[])) AS t(u, f)
            ON CONFLICT DO NOTHING"""),
            {"a": acc.account_id, "u": ids[::3], "f": [rng.choice(feats) for _ in ids[::3]], "day": now.date(),
             "now": now})
        new = await keys.create_key(s, name="bench", scopes=frozenset(SCOPES), clock=clock)
    async with make_sessionmaker(engine)() as s, s.begin():  # bulk rows publish no events: count once, as an
        await peers.refresh_account(s, acc.account_id, now=now, unused_days=30)  # import does at its end
    await engine.dispose()
    return new.secret, [f"big-{i}" for i in range(users)]


async def recount_ms(url: str) -> float:
    """One recount of the account's peer statistics (what the background refresher does)."""
    engine = create_engine(url, pool_size=1, max_overflow=0)
    async with make_sessionmaker(engine)() as s, s.begin():
        acc = await accounts.get_account(s, "big")
        assert acc is not None
        started = time.perf_counter()
        await peers.refresh_account(s, acc.account_id, now=SystemClock().now(), unused_days=30)
        took = (time.perf_counter() - started) * 1000
    await engine.dispose()
    return round(took)


def summary(samples: list[float]) -> dict[str, float]:
    q = statistics.quantiles(samples, n=100)
    return {"n": len(samples), "p50_ms": round(q[49], 2), "p95_ms": round(q[94], 2), "p99_ms": round(q[98], 2),
            "max_ms": round(max(samples), 2)}


def body(rng: random.Random, user: str) -> dict[str, Any]:
    trigger = rng.choice([None, {"kind": "feature_denied", "feature": "pdf_export"},
                          {"kind": "limit_near", "feature": "reports"}, {"kind": "browse"}])
    return {"user": user, "surface": f"s{rng.randint(0, 9)}", "limit": 3, **({"trigger": trigger} if trigger else {})}


async def in_process(url: str, users: list[str], requests: int, data_dir: Path) -> dict[str, Any]:
    settings = load_settings({}, env="test", database_url=url, data_dir=data_dir, token_secret="b" * 48,
                             dispatcher="off", suggest_holdout_pct=0, suggest_cap_per_surface=0)
    engine = create_engine(url, pool_size=2, max_overflow=2)
    maker = make_sessionmaker(engine)
    clock = SystemClock()
    runtime = Runtime(settings, clock)
    runtime.sessionmaker = maker
    ctx = service.Context(settings=settings, clock=clock, runtime=runtime, refresher=peers.Refresher(clock, 30))
    principal = VendorPrincipal(key_id="bench", scopes=frozenset(SCOPES))
    rng = random.Random(9)
    times, floor = [], []
    statements = [0]

    def counted(*_: Any) -> None:
        statements[0] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", counted)
    per_request: list[int] = []
    for i in range(requests + 20):
        data = body(rng, rng.choice(users))
        req = SuggestionRequest(user=data["user"], surface=data["surface"], limit=3,
                                trigger=TriggerIn(**data["trigger"]) if "trigger" in data else None)
        before = statements[0]
        t0 = time.perf_counter()
        async with maker() as s, s.begin():
            await service.suggest(s, principal, req, ctx=ctx)
        t1 = time.perf_counter()
        per_request.append(statements[0] - before)
        async with maker() as s, s.begin():
            await accounts.get_account(s, "big")
        t2 = time.perf_counter()
        if i >= 20:  # warm-up: caches and connections
            times.append((t1 - t0) * 1000)
            floor.append((t2 - t1) * 1000)
    await engine.dispose()
    return {"suggest": summary(times), "floor_one_query_transaction": summary(floor),
            "statements_per_request": {"min": min(per_request[20:]), "max": max(per_request[20:]),
                                       "mean": round(statistics.fmean(per_request[20:]), 1)},
            "ratio_p95": round(summary(times)["p95_ms"] / summary(floor)["p95_ms"], 2)}


def over_http(base: str, token: str, users: list[str], requests: int) -> dict[str, Any]:
    rng = random.Random(11)
    times, floor = [], []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10) as c:
        for _ in range(20):  # warm the connection and the app on the floor only: the first suggestion counts
            assert c.get("/v1/accounts/big").status_code == 200
        for _ in range(requests):
            t0 = time.perf_counter()
            r = c.post("/v1/suggestions", json=body(rng, rng.choice(users)))
            t1 = time.perf_counter()
            f = c.get("/v1/accounts/big")
            t2 = time.perf_counter()
            assert r.status_code == 200 and f.status_code == 200, r.text
            times.append((t1 - t0) * 1000)
            floor.append((t2 - t1) * 1000)
    return {"suggest": summary(times), "first_request_ms": round(times[0], 2), "floor_get_account": summary(floor),
            "ratio_p95": round(summary(times)["p95_ms"] / summary(floor)["p95_ms"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="suggest-bench-"))
    server = start_embedded(tmp / "pg")
    try:
        url = embedded_url(server)
        token, users = asyncio.run(seed(url, args.users))
        result: dict[str, Any] = {"machine": f"{platform.machine()}, Python {platform.python_version()}",
                                  "users": args.users}
        env = {"COMMERCE_SWEEP_SECONDS": "0", "COMMERCE_SUGGEST_HOLDOUT_PCT": "0",
               "COMMERCE_SUGGEST_CAP_PER_SURFACE": "0"}
        with live_server(url, tmp / "d2", "bench-" + "x" * 40, workers=1, extra_env=env) as base:
            result["http"] = over_http(base, token, users, args.requests)
        print(json.dumps(result["http"], indent=1), flush=True)
        result["in_process"] = asyncio.run(in_process(url, users, args.requests, tmp / "d1"))
        result["recount_ms"] = asyncio.run(recount_ms(url))
        print("summary:", json.dumps(result))
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
