"""The Litestar application factory."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import ControllerRouterHandler

from app import metrics, observability, sessions, tracing
from app.accounts.routes import AccountController, SessionController
from app.accounts.service import CORS_TOPIC
from app.api.audit import AuditController
from app.api.health import healthz, readyz
from app.api.keys import ApiKeyController
from app.auth import KeyCache, auth_guard
from app.clock import Clock, SystemClock
from app.cors import AccountOrigins, CorsMiddleware, cors_config
from app.db import create_engine, create_fast_engine, create_lock_engine, release_driver_connections
from app.deps import DEPENDENCIES
from app.embedded import EmbeddedServer, embedded_url, start_embedded
from app.errors import EXCEPTION_HANDLERS
from app.http import AppRequest, RequestLimits
from app.jobs.routes import list_jobs
from app.jobs.wiring import JobsLoop
from app.logs import configure_logging
from app.notify import LagProbe, Listener
from app.openapi import SWAGGER_PATHS, finish_document, openapi_config
from app.ratelimit.limiter import RateLimiter
from app.settings import FAKE_STRIPE_WARNING, Settings, load_settings, require_card_payments_decided
from app.stripe_wiring import app_gateway
from app.webhooks.dispatcher import Dispatcher
from app.webhooks.routes import WebhookEndpointController, WebhookEventTypeController
from app.wiring import check_settings, sessionmaker
from billing.hotpath import PATHS as PURCHASE_PATHS
from billing.hotpath import PurchaseFastPath
from billing.routes import (
    AccountBillingController,
    AccountOrderController,
    ApprovalController,
    BillingController,
    BudgetController,
    GuardrailController,
    OrderController,
    QuoteController,
    SubscriptionController,
)
from billing.stripe import handlers as _stripe_handlers  # noqa: F401  (registers the Stripe event handlers)
from billing.stripe.routes import CardController, stripe_webhook
from catalog.routes import CatalogController
from entitlements.hotpath import PATH as CHECK_PATH
from entitlements.hotpath import USAGE_PATH, CheckFastPath, UsageFastPath
from entitlements.routes import (
    EntitlementController,
    GrantController,
    OfferController,
    TrialController,
    UsageController,
)
from entitlements.runtime import Runtime
from suggest.peers import Refresher
from suggest.routes import AdvisorController, ImportController, SuggestionController
from web.apidocs import apidocs_router, swagger_plugin
from web.consoles import consoles_router
from web.widget import widget_router

if TYPE_CHECKING:
    from stripe_fake import FakeStripe

VERSION = "0.1.0"
log = logging.getLogger("commerce")
STREAMS_DRAIN_SECONDS = 5.0  # at shutdown, how long closed change streams get to finish their last write

ROUTE_HANDLERS: list[ControllerRouterHandler] = [
    healthz, readyz, AccountController, SessionController, ApiKeyController, AuditController,
    BudgetController, GuardrailController, QuoteController, OrderController, AccountOrderController,
    ApprovalController, BillingController, AccountBillingController,
    CatalogController, OfferController, SuggestionController, AdvisorController, ImportController,
    WebhookEndpointController, WebhookEventTypeController,
    CardController, stripe_webhook, SubscriptionController,
    EntitlementController, GrantController, UsageController, TrialController,
    list_jobs,
]


def plain_dsn(url: str) -> str:
    """The asyncpg-native form of a SQLAlchemy URL (for LISTEN connections)."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    extra_route_handlers: Sequence[ControllerRouterHandler] = (),
    stripe_fake: FakeStripe | None = None,
) -> CommerceApp:
    """Build the app; the database (embedded when DATABASE_URL is unset) is opened in its lifespan.

    With COMMERCE_STRIPE=fake (never in production) card payments run against the in-process Stripe fake,
    which delivers its webhook events to this app shortly after each call; tests pass their own
    ``stripe_fake`` to deliver events when they choose. Refuses to build (SettingsError) while the way card
    payments run is undecided (no STRIPE_SECRET_KEY and no COMMERCE_STRIPE outside production).

    Two parts: the routes, middleware and documents, which the settings shape (built here, the costly part), and
    the runtime of one life of the app (settings, clock, caches, rate limiter, Stripe), which ``bind`` puts in
    its state and its lifespan reads from there.
    """
    settings = check_settings(settings or load_settings())
    require_card_payments_decided(settings)
    app = CommerceApp(
        route_handlers=[*ROUTE_HANDLERS, widget_router(settings), apidocs_router(), consoles_router(),
                        *observability.route_handlers(settings), *extra_route_handlers],
        logging_config=None,  # logging is ours (app/logs.py), configured once by the entry point
        plugins=tracing.plugins(settings),
        dependencies=DEPENDENCIES,
        guards=[auth_and_limit_guard if settings.rate_limit == "on" else auth_guard],
        middleware=[*observability.middleware(settings), CorsMiddleware(cors_config(settings)),
                    RequestLimits(max_url_bytes=settings.max_url_bytes, max_header_bytes=settings.max_header_bytes)],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=openapi_config(VERSION, swagger=swagger_plugin(path=SWAGGER_PATHS)),
        lifespan=[_lifespan],
        request_max_body_size=settings.max_body_bytes,
        request_class=AppRequest,
        debug=False,
    )
    app.shape, app.extra_route_handlers = shape_of(settings, extra_route_handlers), tuple(extra_route_handlers)
    finish_document(app)
    return _attach(app, settings, clock, stripe_fake)


def shape_of(settings: Settings, extra_route_handlers: Sequence[ControllerRouterHandler] = ()) -> bytes:
    """What an app's routes and middleware are built from: every setting but where the data lives."""
    plain = msgspec.structs.replace(settings, database_url=None, data_dir=Path("."))
    return msgspec.json.encode([plain, [id(handler) for handler in extra_route_handlers]], enc_hook=str)


def bind(app: CommerceApp, settings: Settings, *, clock: Clock | None = None,
         stripe_fake: FakeStripe | None = None) -> CommerceApp:
    """Give ``app`` a new runtime for ``settings``: fresh caches, rate limiter and fast paths, the clock, the
    database and the Stripe fake its next lifespan opens. Only between two lives of the app (never while its
    lifespan runs), and only with settings of the shape it was built for (so the card payments were decided when
    it was built; a test worker reuses one app for many tests this way instead of building some 300 routes each
    time)."""
    if shape_of(settings, app.extra_route_handlers) != app.shape:
        raise ValueError("an app is bound only to settings of the shape it was built for")
    return _attach(app, settings, clock, stripe_fake)


def _attach(app: CommerceApp, settings: Settings, clock: Clock | None, stripe_fake: FakeStripe | None) -> CommerceApp:
    clock = clock or SystemClock()
    limiter = RateLimiter(settings, clock) if settings.rate_limit == "on" else None
    app.state = _initial_state(settings, clock, limiter=limiter, stripe_fake=stripe_fake)
    traced = settings.tracing == "on"  # a traced request gets its spans from the full stack
    app.fast_check = None if traced else CheckFastPath(app, settings)
    app.fast_purchase = None if traced else PurchaseFastPath(app, settings)
    app.fast_usage = None if traced else UsageFastPath(app, settings)
    return app


def _on_stop_signal(callback: Callable[[], None]) -> None:
    """Also call ``callback`` when the server tells this worker to stop (SIGINT, SIGTERM), keeping the server's own
    handler. granian waits for every open connection to end before it runs the lifespan's shutdown, so what must
    end for the connections to end (the change streams) has to hear of the stop from the signal itself. Does
    nothing when the loop has no handler for them (the app run in process, by tests or another server)."""
    loop = asyncio.get_running_loop()
    handlers = getattr(loop, "_signal_handlers", None)  # asyncio's own table of add_signal_handler's handles
    if not isinstance(handlers, dict):
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = handlers.get(sig)
        if not isinstance(previous, asyncio.Handle):
            continue

        def both(previous: Any = previous) -> None:
            try:
                callback()
            finally:
                previous._callback(*previous._args)
        loop.add_signal_handler(sig, both)


@contextlib.asynccontextmanager
async def _lifespan(app: Litestar) -> AsyncIterator[None]:
    """One life of the app: the database, the change listener and what hangs off it, the jobs and the webhook
    dispatcher, all from the runtime ``bind`` put in the app's state."""
    settings: Settings = app.state.settings
    clock: Clock = app.state.clock
    origins: AccountOrigins = app.state.account_origins
    limiter: RateLimiter | None = app.state.rate_limiter
    server: EmbeddedServer | None = None
    url = settings.database_url
    if url is None:
        server = await asyncio.to_thread(start_embedded, settings.data_dir)
        url = embedded_url(server)
    engine = create_engine(url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)
    lock_engine = create_lock_engine(url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)
    fast_engine = create_fast_engine(url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)
    listener = Listener(plain_dsn(str(engine.url.render_as_string(hide_password=False))))
    key_cache: KeyCache = app.state.key_cache
    listener.subscribe("key", key_cache.invalidate)
    session_cache: sessions.GenerationCache = app.state.session_cache
    listener.subscribe(sessions.TOPIC, session_cache.invalidate)
    listener.subscribe(CORS_TOPIC, origins.invalidate)
    entitlements: Runtime = app.state.entitlements
    entitlements.subscribe(listener)
    app.state.engine = engine
    app.state.lock_engine = lock_engine
    app.state.fast_engine = fast_engine
    metrics.watch_pool("main", engine)
    metrics.watch_pool("locks", lock_engine)
    metrics.watch_pool("fast", fast_engine)
    tracing.instrument_engine(settings, engine)
    tracing.instrument_engine(settings, lock_engine)
    tracing.instrument_engine(settings, fast_engine)
    app.state.sessionmaker = sessionmaker(engine, settings)
    app.state.listener = listener
    app.state.stripe = _stripe(app, settings, clock, app.state.stripe_fake)
    probe = LagProbe(listener, app.state.sessionmaker, observe=metrics.NOTIFY_LAG.observe)
    await listener.start()
    probe.start()
    origins.bind(app.state.sessionmaker)
    if limiter is not None:
        await limiter.start(app.state.sessionmaker)
    await entitlements.start(app.state.sessionmaker)
    if settings.warm_start == "on":
        await _warm(app, settings, clock)
    jobs = JobsLoop(sessionmaker=app.state.sessionmaker, lock_engine=lock_engine, settings=settings, clock=clock,
                    stripe=app.state.stripe)
    app.state.jobs, app.state.job_list = jobs, jobs.jobs
    jobs.start()
    stop_dispatcher = asyncio.Event()
    dispatcher_task: asyncio.Task[None] | None = None
    if settings.dispatcher == "on":
        dispatcher = Dispatcher(app.state.sessionmaker, settings=settings, clock=clock)
        dispatcher_task = asyncio.create_task(dispatcher.run(stop_dispatcher), name="webhook-dispatcher")
    app.state.dispatcher_task = dispatcher_task
    _on_stop_signal(entitlements.changes.close)
    if app.state.get(SETTLE_AFTER_STARTUP):
        _settle()  # what the startup made (engines, caches, the catalog, the warm-up's answers) is frozen too
    try:
        yield
    finally:
        # first the change streams: a stream holds its connection open for up to an hour, and the server waits for
        # every connection before it lets this process go (it killed the worker after its timeout instead)
        entitlements.changes.close()
        if not await entitlements.changes.drained(seconds=STREAMS_DRAIN_SECONDS):
            log.warning("%d change streams still open at shutdown", entitlements.changes.streams)
        await jobs.stop()
        stop_dispatcher.set()
        if dispatcher_task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(dispatcher_task, timeout=settings.webhook_timeout_seconds + 5)
        await probe.stop()
        await entitlements.stop()
        if limiter is not None:
            await limiter.stop()
        await app.state.suggest_refresher.stop()
        await listener.stop()
        if app.state.stripe is not None:
            await app.state.stripe.close()
        for task in list(app.state.background_tasks):
            task.cancel()
        await release_driver_connections(fast_engine)
        await engine.dispose()
        await lock_engine.dispose()
        await fast_engine.dispose()
        if server is not None:
            await asyncio.to_thread(server.cleanup)


class CommerceApp(Litestar):
    """Litestar, with the entitlement check's fast path in front of routing (entitlements.hotpath, D92): a warm
    check from a known API key is answered without routing, middleware layers, guards or parameter models;
    likewise the common quote and order (billing.hotpath, D96) and the common usage batch (entitlements.hotpath,
    D100); every other request, and every one the fast paths cannot answer exactly as the route would, goes on to
    Litestar unchanged."""

    fast_check: CheckFastPath | None = None
    fast_purchase: PurchaseFastPath | None = None
    fast_usage: UsageFastPath | None = None
    shape: bytes = b""  # what the routes were built from (``shape_of``)
    extra_route_handlers: tuple[ControllerRouterHandler, ...] = ()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not self.before_send:
            path = scope["path"]
            if path == CHECK_PATH:
                fast = self.fast_check
                if fast is not None and await fast.answer(scope, send):
                    return
            elif path in PURCHASE_PATHS and self.fast_purchase is not None:
                receive = await self.fast_purchase.answer(scope, receive, send)
                if receive is None:
                    return
            elif path == USAGE_PATH and self.fast_usage is not None:
                receive = await self.fast_usage.answer(scope, receive, send)
                if receive is None:
                    return
        await super().__call__(scope, receive, send)


async def _warm(app: Litestar, settings: Settings, clock: Clock) -> None:
    """Caches and prepared statements of the suggestion request, before serving; a failure only logs."""
    from suggest.service import Context, warm

    try:
        await warm(Context(settings=settings, clock=clock, runtime=app.state.entitlements,
                           refresher=app.state.suggest_refresher, sessionmaker=app.state.sessionmaker))
    except Exception:
        log.warning("warming the suggestion path at start-up failed; the first requests pay for it", exc_info=True)


async def auth_and_limit_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Authentication, then the rate limit, as one guard (Litestar copies the route handler for each guard)."""
    await auth_guard(connection, handler)
    limiter: RateLimiter = connection.app.state.rate_limiter
    await limiter.guard(connection, handler)


def _stripe(app: Litestar, settings: Settings, clock: Clock, fake: FakeStripe | None) -> Any:
    gateway = app_gateway(app, settings, clock, fake)
    if gateway is not None and gateway.fake is not None:
        log.warning(FAKE_STRIPE_WARNING)
    return gateway


def _initial_state(
    settings: Settings, clock: Clock, *, limiter: RateLimiter | None, stripe_fake: FakeStripe | None,
) -> Any:
    from litestar.datastructures import State

    return State({
        "settings": settings, "clock": clock, "key_cache": KeyCache(settings.api_key_cache_seconds),
        "session_cache": sessions.GenerationCache(settings.session_cache_seconds),
        "account_origins": AccountOrigins(), "rate_limiter": limiter, "stripe_fake": stripe_fake,
        "background_tasks": set(), "entitlements": Runtime(settings, clock),
        "suggest_refresher": Refresher(clock, settings.suggest_unused_days),
    })


SERVE_PID_ENV = "COMMERCE_SERVE_PID"


def exit_with_parent(parent: int, *, poll_seconds: float = 0.5) -> None:
    """A worker whose ``commerce serve`` died (kill -9) exits too: orphans would go on serving on the port,
    holding database connections (and the Idempotency-Key locks of their requests) that a restart needs."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        log.error("the serving process %s is gone; this worker exits", parent)
        os._exit(70)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


SETTLE_AFTER_STARTUP = "settle_after_startup"


def _settle() -> None:
    gc.collect()
    gc.freeze()


def settled(app: CommerceApp) -> CommerceApp:
    """The app as a server worker keeps it: what importing and building made (about 200,000 objects) is collected
    once and then frozen out of the cycle collector's reach, so a full collection while serving scans only
    what serving made (on two busy cores a full pass over everything took 100-180 ms, a stall of every request
    in flight); the lifespan does it again once its startup is done, for what the startup made (a full pass
    during the check bench's half-load phase stalled the worker 9-18 ms without it). Only for the worker's one
    app: a process building many apps (tests) would freeze what each of them leaves behind."""
    _settle()
    app.state[SETTLE_AFTER_STARTUP] = True
    return app


def app_factory() -> Litestar:
    """Entry point for ASGI servers (``--factory``): settings from the environment."""
    settings = load_settings()
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    parent = os.environ.get(SERVE_PID_ENV)
    if parent is not None and parent.isdigit() and int(parent) == os.getppid():
        exit_with_parent(int(parent))
    return settled(create_app(settings))
