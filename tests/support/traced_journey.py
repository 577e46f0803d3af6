"""Run a short journey with COMMERCE_TRACING=on and print the spans (a separate process: tracer providers
and client instrumentation are process-wide, and the rest of the suite must not inherit them)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from litestar.testing import AsyncTestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.asgi import create_app
from app.clock import SystemClock
from app.db import create_engine, create_lock_engine, make_sessionmaker
from app.jobs.wiring import JobsLoop
from app.settings import load_settings
from app.tracing import configure_tracing
from app.webhooks.dispatcher import Dispatcher
from tests.factories import bearer, emit_test_event, make_endpoint, make_key
from tests.support.receiver import Receiver


async def journey(database_url: str, data_dir: str) -> list[dict[str, object]]:
    settings = load_settings({}, env="test", database_url=database_url, data_dir=Path(data_dir),
                             token_secret="t" * 40, dispatcher="off", scheduler="off", stripe_backend="fake",
                             tracing="on")
    exporter = InMemorySpanExporter()
    configure_tracing(settings, exporter=exporter)
    clock = SystemClock()
    engine = create_engine(database_url, pool_size=2, max_overflow=2)
    locks = create_lock_engine(database_url, pool_size=2, max_overflow=2)
    sessionmaker = make_sessionmaker(engine)
    key = await make_key(sessionmaker, clock)
    async with AsyncTestClient(app=create_app(settings, clock=clock)) as client, Receiver() as rx:
        assert (await client.get("/v1/accounts", headers=bearer(key))).status_code == 200
        await make_endpoint(sessionmaker, clock, settings, rx.url)
        await emit_test_event(sessionmaker, clock)
        dispatcher = Dispatcher(sessionmaker, settings=settings, clock=clock)
        await dispatcher.run_once()
        await dispatcher.aclose()
        jobs = JobsLoop(sessionmaker=sessionmaker, lock_engine=locks, settings=settings, clock=clock, stripe=None)
        await jobs.scheduler.run_now("idempotency_purge")
    await engine.dispose()
    await locks.dispose()
    return [{"name": s.name, "kind": s.kind.name, "attributes": dict(s.attributes or {})}
            for s in exporter.get_finished_spans()]


if __name__ == "__main__":
    print(json.dumps(asyncio.run(journey(sys.argv[1], sys.argv[2])), default=str))
