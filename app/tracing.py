"""Optional OpenTelemetry tracing (``COMMERCE_TRACING=on``; off by default; the ``tracing`` extra).

Spans: one per HTTP request (Litestar's OpenTelemetry plugin, named by route template), one per SQL statement
(SQLAlchemy instrumentation on both engines), one per outgoing HTTP call (httpx instrumentation: webhook
deliveries and Stripe, whose SDK speaks through httpx), and one per scheduled job run. Spans go to an OTLP/HTTP
collector configured by the standard variables (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_HEADERS``
...). Statement parameters are never recorded (the instrumentation records the SQL text only).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from app.settings import Settings

_configured = False


def configure_tracing(settings: Settings, *, exporter: Any | None = None) -> bool:
    """Install the tracer provider and the client instrumentations once per process; False when off."""
    global _configured
    if settings.tracing != "on":
        return False
    if _configured:
        return True
    from opentelemetry import trace
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": settings.tracing_service_name}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:  # tests hand in an in-memory exporter and read spans synchronously
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument()
    _configured = True
    return True


def plugins(settings: Settings) -> list[Any]:
    """Litestar's OpenTelemetry plugin (request spans) when tracing is on."""
    if settings.tracing != "on":
        return []
    from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

    configure_tracing(settings)
    return [OpenTelemetryPlugin(OpenTelemetryConfig(exclude=["/metrics", "/healthz", "/readyz"]))]


def instrument_engine(settings: Settings, engine: Any) -> None:
    """SQL spans for one engine (its sync core, which the async engine drives)."""
    if settings.tracing != "on":
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    # the instrumentation declares SQLAlchemy < 2.1; the engine events it uses are unchanged in 2.1 (a test
    # checks the spans), so its version guard is skipped
    SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine, enable_commenter=False, skip_dep_check=True)


@contextlib.contextmanager
def job_span(name: str, slot: str) -> Iterator[None]:
    """A span around one scheduled job run (a no-op tracer when tracing is off or not installed)."""
    try:
        from opentelemetry import trace
    except ImportError:
        yield
        return
    with trace.get_tracer("commerce.jobs").start_as_current_span(f"job {name}", attributes={"job.slot": slot}):
        yield
