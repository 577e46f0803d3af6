"""Prometheus metrics of the service: defined once per process, served at ``/metrics``.

HTTP latency per route comes from Litestar's Prometheus middleware (``commerce_request_duration_seconds``
by method, path template and status); the domain metrics below are updated where the work happens.
With several granian workers, ``commerce serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a folder of the
data directory so a scrape of any worker sums every worker.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from litestar import Response, get
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from app.db import held_connections

NAMESPACE = "commerce"

ENTITLEMENT_CACHE = Counter("entitlement_cache_lookups", "Entitlement snapshot lookups by result (hit, miss)",
                            ["result"], namespace=NAMESPACE)
NOTIFY_LAG = Histogram("notify_lag_seconds", "Time from an invalidation's commit to its arrival in this process",
                       namespace=NAMESPACE, buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
OUTBOX_LAG = Histogram("outbox_lag_seconds", "Age of an outbox event when the dispatcher first attempts it",
                       namespace=NAMESPACE, buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600))
WEBHOOK_DELIVERIES = Counter("webhook_delivery_attempts", "Webhook delivery attempts by outcome", ["outcome"],
                             namespace=NAMESPACE)
STRIPE_CALLS = Counter("stripe_calls", "Stripe API calls by outcome (ok or the error class)", ["outcome"],
                       namespace=NAMESPACE)
JOB_RUNS = Counter("job_runs", "Scheduled job runs by job and outcome (succeeded, failed)", ["job", "outcome"],
                   namespace=NAMESPACE)
JOB_FAILURES = Counter("job_failures", "Scheduled job runs that failed after their last attempt", ["job"],
                       namespace=NAMESPACE)
JOB_SECONDS = Histogram("job_duration_seconds", "Duration of scheduled job runs", ["job"], namespace=NAMESPACE,
                        buckets=(0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600))
BUDGET_CAPTURES = Counter("budget_captures", "Budget captures by currency (count)", ["currency"],
                          namespace=NAMESPACE)
BUDGET_CAPTURED_MINOR = Counter("budget_captured_minor", "Budget captured, in minor units of the currency",
                                ["currency"], namespace=NAMESPACE)


class PoolCollector(Collector):
    """Connections in use and idle per engine of this process, read at scrape time."""

    def __init__(self) -> None:
        self.engines: weakref.WeakValueDictionary[str, AsyncEngine] = weakref.WeakValueDictionary()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["pool", "pid"]
        used = GaugeMetricFamily(f"{NAMESPACE}_db_pool_checked_out", "Connections in use", labels=labels)
        idle = GaugeMetricFamily(f"{NAMESPACE}_db_pool_idle", "Idle pooled connections", labels=labels)
        pid = str(os.getpid())
        for name, engine in list(self.engines.items()):
            pool: Any = engine.pool
            if hasattr(pool, "checkedout"):
                kept = held_connections(engine)  # the fast paths' idle connections are out of the pool, not in use
                used.add_metric([name, pid], float(pool.checkedout() - kept))
                idle.add_metric([name, pid], float(pool.checkedin() + kept))
        yield used
        yield idle


POOLS = PoolCollector()
REGISTRY.register(POOLS)


def count_capture(*, currency: str, amount_minor: int) -> None:
    BUDGET_CAPTURES.labels(currency=currency).inc()
    BUDGET_CAPTURED_MINOR.labels(currency=currency).inc(amount_minor)


_ON_COMMIT = "commerce_metrics_on_commit"


def on_commit(session: AsyncSession, update: Callable[[], None]) -> None:
    """Apply a metric update only if the caller's transaction commits (a rolled-back capture never happened)."""
    sync = session.sync_session
    if _ON_COMMIT not in sync.info:
        sync.info[_ON_COMMIT] = []
        event.listen(sync, "after_commit", _apply_updates)
        event.listen(sync, "after_rollback", _drop_updates)
    sync.info[_ON_COMMIT].append(update)


def _apply_updates(sync: Session) -> None:
    updates: list[Callable[[], None]] = sync.info.get(_ON_COMMIT, [])
    sync.info[_ON_COMMIT] = []
    for update in updates:
        update()


def _drop_updates(sync: Session) -> None:
    sync.info[_ON_COMMIT] = []


def watch_pool(name: str, engine: AsyncEngine) -> None:
    """Report this engine's pool under ``pool=name`` (the latest engine of a name wins)."""
    POOLS.engines[name] = engine


def exposition() -> bytes:
    """The metrics text: this process, or every worker's when running multi-process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(POOLS)  # pools are per process: the scraped worker's own, labelled by pid
        return generate_latest(registry)
    return generate_latest(REGISTRY)


@get("/metrics", opt={"scope": "ops:read", "owner": "vendor"}, tags=["Operations"],
     summary="Prometheus metrics (a vendor key with ops:read)", include_in_schema=False)
async def metrics_endpoint() -> Response[bytes]:
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)


@get("/metrics", opt={"public": True, "owner": "public"}, tags=["Operations"],
     summary="Prometheus metrics (COMMERCE_METRICS=public: no credentials)", include_in_schema=False)
async def public_metrics_endpoint() -> Response[bytes]:
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)
