"""The service's app for a test, built once per shape and test worker.

Building an app registers some 300 routes (about 0.15 s of CPU); a worker keeps the apps its tests are done with
and gives the next test of the same shape one of them with a fresh runtime (``app.asgi.bind``: state, caches,
rate limiter, clock, database, Stripe fake), as ``create_app`` itself does for a new app.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence

from litestar.types import ControllerRouterHandler

from app.asgi import CommerceApp, bind, create_app, shape_of
from app.clock import Clock
from app.settings import Settings
from stripe_fake import FakeStripe

_idle: dict[bytes, list[CommerceApp]] = {}
_lock = threading.Lock()  # browser journeys serve their app from another thread


@contextlib.contextmanager
def commerce_app(settings: Settings, *, clock: Clock | None = None, stripe_fake: FakeStripe | None = None,
                 extra_route_handlers: Sequence[ControllerRouterHandler] = ()) -> Iterator[CommerceApp]:
    """An app for ``settings`` for the block; use it for one life (one lifespan) inside the block only."""
    with _lock:
        idle = _idle.setdefault(shape_of(settings, extra_route_handlers), [])
        app = idle.pop() if idle else None
    if app is None:
        app = create_app(settings, clock=clock, stripe_fake=stripe_fake, extra_route_handlers=extra_route_handlers)
    else:
        app = bind(app, settings, clock=clock, stripe_fake=stripe_fake)
    try:
        yield app
    finally:
        with _lock:
            _idle.setdefault(app.shape, []).append(app)
