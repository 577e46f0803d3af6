"""Metrics, request ids and access logs as the app factory plugs them in (one place to read and merge)."""

from __future__ import annotations

from typing import Any

from litestar.plugins.prometheus import PrometheusConfig
from litestar.types import ControllerRouterHandler

from app.logs import request_id_middleware_factory
from app.metrics import metrics_endpoint, public_metrics_endpoint
from app.settings import Settings

NOT_MEASURED = ["/metrics", "/healthz", "/readyz"]
METRICS_PREFIX = METRICS_APP = "commerce"  # the request series are commerce_requests_total{app_name="commerce"}...


def middleware(settings: Settings) -> list[Any]:
    """Outermost first: the request id (so every later layer logs it), then the latency histograms."""
    layers: list[Any] = [request_id_middleware_factory(access=settings.access_log == "on")]
    if settings.metrics != "off":
        layers.append(PrometheusConfig(app_name=METRICS_APP, prefix=METRICS_PREFIX, group_path=True,
                                       exclude=NOT_MEASURED, exclude_unhandled_paths=True).middleware)
    return layers


def route_handlers(settings: Settings) -> list[ControllerRouterHandler]:
    """``/metrics``: behind an ``ops:read`` key (``on``), without credentials (``public``) or not at all."""
    handlers: dict[str, list[ControllerRouterHandler]] = {
        "on": [metrics_endpoint], "public": [public_metrics_endpoint], "off": []}
    return handlers[settings.metrics]
