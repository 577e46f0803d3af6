"""Webhook deliveries per second to a loopback receiver with 2 dispatcher processes, against the floor.

The floor is the same receiver hit by a bare httpx loop (same client settings, same body, same
signature header, same number of processes and concurrency) without outbox, fan-out, claims or
attempt logging. The ratio dispatcher/floor is what the figures in docs/performance.md report.

    python -m bench.webhooks_bench [--events 3000] [--processes 2] [--concurrency 16]

Bounded: loopback only, an embedded PostgreSQL in a temporary folder, stops by itself (--timeout).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import platform
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from app import outbox
from app.clock import SystemClock
from app.db import create_engine, make_sessionmaker
from app.embedded import embedded_url, start_embedded
from app.ids import new_id
from app.migrate import upgrade
from app.settings import Settings, load_settings
from app.webhooks import domain, egress
from app.webhooks.dispatcher import SIGNATURE_HEADER, Dispatcher, make_client
from app.webhooks.models import WebhookDelivery
from tests.factories import make_endpoint
from tests.support.receiver import Receiver

BODY = json.dumps({"id": "evt_bench", "type": "bench.ping", "version": 1, "seq": 1,
                   "occurred_at": "2026-01-01T00:00:00Z", "account_id": None, "data": {"i": 0}}).encode()


def _settings(db_url: str, data_dir: str, concurrency: int) -> Settings:
    return load_settings({}, env="development", database_url=db_url, data_dir=Path(data_dir),
                         token_secret="bench-" + "x" * 40, dispatcher="off", scheduler="off", webhook_poll_seconds=0.02,
                         webhook_concurrency=concurrency, webhook_batch_size=100, db_pool_size=4)


def _dispatcher_process(db_url: str, data_dir: str, concurrency: int, stop: Any, go: Any) -> None:
    async def main() -> None:
        settings = _settings(db_url, data_dir, concurrency)
        engine = create_engine(db_url, pool_size=4, max_overflow=concurrency)
        done = asyncio.Event()
        go.wait()  # imports and set-up are not measured

        async def watch() -> None:
            while not stop.is_set():
                await asyncio.sleep(0.05)
            done.set()

        watcher = asyncio.create_task(watch())
        await Dispatcher(make_sessionmaker(engine), settings=settings, clock=SystemClock()).run(done)
        await watcher
        await engine.dispose()

    asyncio.run(main())


def _floor_process(url: str, count: int, concurrency: int, data_dir: str, go: Any) -> None:
    async def main() -> None:
        settings = _settings("postgresql://unused/none", data_dir, concurrency)
        client = make_client(settings)
        slots = asyncio.Semaphore(concurrency)
        go.wait()

        async def one() -> None:
            async with slots:
                header = domain.signature_header(["whsec_bench"], int(time.time()), BODY)
                r = await client.post(url, content=BODY, headers={
                    "Content-Type": "application/json", SIGNATURE_HEADER: header})
                assert r.status_code == 200

        with egress.pinned(egress.Pin(host="127.0.0.1", addresses=("127.0.0.1",))):  # the receiver, unchecked
            await asyncio.gather(*(one() for _ in range(count)))
        await client.aclose()

    asyncio.run(main())


async def _floor(receiver: Receiver, events: int, processes: int, concurrency: int, data_dir: str) -> float:
    ctx = mp.get_context("spawn")
    go = ctx.Barrier(processes + 1)
    procs = [ctx.Process(target=_floor_process, args=(receiver.url, events // processes, concurrency, data_dir, go))
             for _ in range(processes)]
    for p in procs:
        p.start()
    await asyncio.to_thread(go.wait)
    started = time.perf_counter()
    while any(p.is_alive() for p in procs):
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    assert all(p.exitcode == 0 for p in procs), "floor process failed"
    return (events // processes * processes) / elapsed


async def _dispatch(receiver: Receiver, db_url: str, events: int, processes: int, concurrency: int,
                    data_dir: str, timeout: float) -> tuple[float, int]:
    settings = _settings(db_url, data_dir, concurrency)
    engine = create_engine(db_url, pool_size=2, max_overflow=2)
    sessionmaker = make_sessionmaker(engine)
    clock = SystemClock()
    await make_endpoint(sessionmaker, clock, settings, receiver.url)
    for start in range(0, events, 500):
        async with sessionmaker() as s, s.begin():
            for i in range(start, min(events, start + 500)):
                outbox.write(s, event_id=new_id("evt"), type="bench.ping", version=1, account_id=None,
                             occurred_at=clock.now(), payload={"i": i})
    receiver.requests.clear()
    ctx = mp.get_context("spawn")
    stop, go = ctx.Event(), ctx.Barrier(processes + 1)
    procs = [ctx.Process(target=_dispatcher_process, args=(db_url, data_dir, concurrency, stop, go))
             for _ in range(processes)]
    for p in procs:
        p.start()
    await asyncio.to_thread(go.wait)
    started = time.perf_counter()
    delivered = 0
    while time.perf_counter() - started < timeout:
        async with sessionmaker() as s:
            delivered = await s.scalar(select(func.count()).select_from(WebhookDelivery)
                                       .where(WebhookDelivery.status == "succeeded")) or 0
        if delivered >= events:
            break
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    stop.set()
    while any(p.is_alive() for p in procs):
        await asyncio.sleep(0.05)
    await engine.dispose()
    duplicates = len(receiver.requests) - len({r.body for r in receiver.requests})
    return delivered / elapsed, duplicates


async def main(args: argparse.Namespace) -> dict[str, Any]:
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        server = start_embedded(Path(tmp) / "pg")
        try:
            db_url = embedded_url(server)
            engine = create_engine(db_url, pool_size=1, max_overflow=0)
            await upgrade(engine)
            await engine.dispose()
            async with Receiver() as receiver:
                floor = await _floor(receiver, args.events, args.processes, args.concurrency, tmp)
                rate, duplicates = await _dispatch(receiver, db_url, args.events, args.processes,
                                                   args.concurrency, tmp, args.timeout)
        finally:
            server.cleanup()
    return {
        "bench": "webhooks", "events": args.events, "processes": args.processes, "concurrency": args.concurrency,
        "floor_requests_per_s": round(floor), "dispatcher_deliveries_per_s": round(rate),
        "ratio": round(rate / floor, 3), "duplicate_deliveries": duplicates,
        "cpus": mp.cpu_count(), "python": platform.python_version(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=120.0)
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
