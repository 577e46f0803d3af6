"""End-to-end budget purchase (quote -> order -> fulfilled) over HTTP vs a bare SQL transaction floor.

    python -m bench.purchase_bench [--purchases 300] [--concurrency 16] [--workers 2] [--rounds 3] [--warmup 96]

Two scenarios: every buyer on ONE shared budget (one hot row), and every buyer in its own account with
its own budget (MANY budgets). The floor is like for like: one real purchase is made first and every row it
left new or changed is captured (quote, idempotency key, order, hold, ledger entries, grant, change-feed row,
subscription, sales credit, suggestion outcome and peer statistics, audit entry, outbox events); the floor then
writes those rows again for twin buyers with fresh ids, into the same real tables (logged, with their
constraints, indexes and foreign keys), as ONE statement per purchase (the guarded budget UPDATE and an upsert
per table in data-modifying CTEs, its own implicit transaction), bare asyncpg, the same concurrency. Each
scenario first warms both sides up with ``--warmup`` purchases each (not counted: the server's connections and
their prepared statements, the floor's pool and its plans -- PostgreSQL plans a prepared statement afresh for its
first five runs on a connection before it may keep a generic plan, and the floor's statement ran about a third
faster once it did, so the default warm-up is six per connection), then runs ``--rounds`` rounds that alternate HTTP
purchases with as many floor purchases; the ratio is the median round's (every round's is printed). Bounded:
loopback only, an embedded PostgreSQL in a temporary folder, a fixed number of purchases per phase (the vendor key
may make 3,000 money requests a minute: keep warm-up plus purchases under about 700).

The load generator is kept cheap, since on a small machine it competes with the server for the same cores: raw
asyncio streams with keep-alive (one connection per buyer in flight), request bytes encoded before the clock
starts, and of each answer only the status line, the content length and the quote id or order state are read.
Each phase also reports CPU seconds per purchase, split between the server's processes (granian and its
workers), PostgreSQL (the postmaster and every backend) and this process (the load generator), sampled from
/proc before and after the phase (children that exited are counted through their parent's totals).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
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
from bench.cpu import tree_cpu
from billing import service as billing
from billing.domain.guardrails import GuardrailPolicy
from catalog import service as catalog
from tests.support.live_server import live_process


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


class CpuMeter:
    """CPU seconds of the server (granian's process tree), PostgreSQL (the postmaster's) and this process."""

    def __init__(self, server_pid: int | None, postmaster_pid: int) -> None:
        self.server_pid, self.postmaster_pid = server_pid, postmaster_pid

    def sample(self) -> tuple[float, float, float]:
        server = tree_cpu(self.server_pid) if self.server_pid is not None else 0.0
        return server, tree_cpu(self.postmaster_pid), time.process_time()

    @staticmethod
    def per_purchase(before: tuple[float, float, float], after: tuple[float, float, float], n: int,
                     ) -> dict[str, float]:
        names = ("server", "postgres", "client")
        split = {f"{k}_ms": round((b - a) * 1000 / n, 2) for k, a, b in zip(names, before, after, strict=True)}
        split["total_ms"] = round(sum(split.values()), 2)
        return split


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "pg" / "postmaster.pid").read_text().split("\n", 1)[0])


_QUOTE_ID = re.compile(rb'"id":"([^"]+)"')


class Http:
    """A minimal HTTP/1.1 client over one keep-alive connection: pre-encoded requests, answers read as status,
    content length and body (the server always sends a Content-Length)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Http:
        return cls(*await asyncio.open_connection(host, port))

    async def send(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        at = head.lower().find(b"\r\ncontent-length:")
        if at < 0:
            raise RuntimeError(f"an answer without Content-Length: {head[:200]!r}")
        length = int(head[at + 17:head.index(b"\r\n", at + 2)])
        return int(head[9:12]), await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def post(host: str, path: str, key: str, body: bytes, extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\n{extra}Content-Length: {len(body)}\r\n\r\n").encode() + body


async def http_phase(base: str, key: str, users: list[str], concurrency: int, meter: CpuMeter,
                     ) -> tuple[float, list[float], dict[str, float]]:
    """Each user buys one module: POST /v1/quotes then POST /v1/orders; latency of the pair."""
    host = base.removeprefix("http://")
    name, port = host.rsplit(":", 1)
    quotes = [post(host, "/v1/quotes", key, b'{"user":"%s","items":[{"module":"reports_basic"}]}' % u.encode())
              for u in users]
    order_head = [post(host, "/v1/orders", key, b"", f"Idempotency-Key: bench-{u}\r\n").rsplit(b"0\r\n\r\n", 1)[0]
                  for u in users]  # the head up to "Content-Length: "; the quote id is known only later
    pool: asyncio.Queue[Http] = asyncio.Queue()
    for _ in range(concurrency):
        pool.put_nowait(await Http.open(name, int(port)))
    latencies: list[float] = []

    async def buy(i: int) -> None:
        conn = await pool.get()
        try:
            t0 = time.perf_counter()
            status, body = await conn.send(quotes[i])
            found = _QUOTE_ID.search(body)
            if status != 201 or found is None:
                raise RuntimeError(f"quote: {status} {body[:300]!r}")
            order = b'{"quote_id":"' + found.group(1) + b'"}'
            status, body = await conn.send(order_head[i] + b"%d\r\n\r\n" % len(order) + order)
            if status != 201 or b'"state":"fulfilled"' not in body:
                raise RuntimeError(f"order: {status} {body[:300]!r}")
            latencies.append(time.perf_counter() - t0)
        finally:
            pool.put_nowait(conn)

    before = meter.sample()
    start = time.perf_counter()
    await asyncio.gather(*(buy(i) for i in range(len(users))))
    elapsed = time.perf_counter() - start
    cpu = CpuMeter.per_purchase(before, meter.sample(), len(users))
    while not pool.empty():
        pool.get_nowait().close()
    return elapsed, latencies, cpu


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


async def floor_phase(pool: asyncpg.Pool, template: FloorTemplate, targets: list[tuple[str, str, str]],
                      concurrency: int, meter: CpuMeter) -> tuple[float, list[float], dict[str, float]]:
    """Each purchase: the template's rows for another buyer (fresh ids), one statement, its own transaction, on the
    floor's ``pool`` (``concurrency`` connections, kept from round to round as the server keeps its own)."""
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

    before = meter.sample()
    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(len(targets))))
    elapsed = time.perf_counter() - start
    cpu = CpuMeter.per_purchase(before, meter.sample(), len(targets))
    del cpu["server_ms"]  # the floor does not touch the server
    cpu["total_ms"] = round(cpu["postgres_ms"] + cpu["client_ms"], 2)
    return elapsed, latencies, cpu


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


def _mean_cpu(splits: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.fmean(split[k] for split in splits), 2) for k in splits[0]}


async def scenario(base: str, key: str, dsn: str, template: FloorTemplate, prefix: str, args: argparse.Namespace,
                   meter: CpuMeter) -> dict[str, Any]:
    """One scenario: a warm-up of both sides (not counted), then ``rounds`` rounds alternating the purchases over
    HTTP with as many floor purchases, so a neighbour on the shared cores hits both alike; the ratio is the
    median round's."""
    total = args.warmup + args.purchases
    users = [f"{prefix}-{i}" for i in range(total)]
    targets = await floor_targets(dsn, "f" + prefix, total)
    pool = await asyncpg.create_pool(dsn, min_size=args.concurrency, max_size=args.concurrency)
    try:
        if args.warmup:
            await http_phase(base, key, users[:args.warmup], args.concurrency, meter)
            await floor_phase(pool, template, targets[:args.warmup], args.concurrency, meter)
        per = args.purchases // args.rounds
        ratios, http_s, floor_s, lat, f_lat, cpus, f_cpus = [], 0.0, 0.0, [], [], [], []
        for r in range(args.rounds):
            chunk = slice(args.warmup + r * per, args.warmup + (r + 1) * per)
            elapsed, latencies, cpu = await http_phase(base, key, users[chunk], args.concurrency, meter)
            f_elapsed, f_latencies, f_cpu = await floor_phase(pool, template, targets[chunk], args.concurrency, meter)
            ratios.append(round(f_elapsed / elapsed, 3))
            http_s, floor_s = http_s + elapsed, floor_s + f_elapsed
            lat, f_lat = lat + latencies, f_lat + f_latencies
            cpus.append(cpu)
            f_cpus.append(f_cpu)
    finally:
        await pool.close()
    n = per * args.rounds
    return {
        "purchases_per_s": round(n / http_s, 1), "p95_ms": round(p95(lat), 1),
        "floor_per_s": round(n / floor_s, 1), "floor_p95_ms": round(p95(f_lat), 1),
        "ratio": statistics.median(ratios), "round_ratios": ratios,
        "cpu_per_purchase": _mean_cpu(cpus), "floor_cpu_per_purchase": _mean_cpu(f_cpus),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    warnings.simplefilter("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="purchase-bench-"))
    server = start_embedded(tmp)
    url = embedded_url(server)
    dsn = server.get_uri("postgres")
    try:
        key = await seed(url, args.warmup + args.purchases)
        results: dict[str, Any] = {}
        with live_process(url, tmp / "data", "bench-secret-" + "b" * 40, workers=args.workers) as (base, proc):
            meter = CpuMeter(proc.pid, postmaster_pid(tmp))
            template = await capture_template(dsn, base, key)
            results["rows per purchase"] = {t: rows.count("},{") + 1 for t, rows in sorted(template.tables.items())}
            for name, prefix in (("one shared budget", "s"), ("many budgets", "m")):
                results[name] = await scenario(base, key, dsn, template, prefix, args, meter)
        return results
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)  # the database folder: each run left 50-250 MB in the temp folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--purchases", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="rounds alternating HTTP and floor purchases")
    parser.add_argument("--warmup", type=int, default=96,
                        help="purchases of each side first, not counted (6 per connection at 16: past custom plans)")
    args = parser.parse_args()
    if args.purchases < args.rounds * 20:
        parser.error("--purchases: at least 20 per round")
    results = asyncio.run(main_async(args))
    print(json.dumps({"purchases": args.purchases, "rounds": args.rounds, "warmup": args.warmup,
                      "concurrency": args.concurrency, "workers": args.workers, "results": results}, indent=2))


if __name__ == "__main__":
    main()
