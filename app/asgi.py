"""The Litestar application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from litestar import Litestar
from litestar.types import ControllerRouterHandler

from app.accounts.routes import AccountController, SessionController
from app.api.audit import AuditController
from app.api.health import healthz, readyz
from app.api.keys import ApiKeyController
from app.auth import KeyCache, auth_guard
from app.clock import Clock, SystemClock
from app.db import create_engine, make_sessionmaker
from app.deps import DEPENDENCIES
from app.embedded import EmbeddedServer, embedded_url, start_embedded
from app.errors import EXCEPTION_HANDLERS
from app.notify import Listener
from app.openapi import add_event_webhooks, add_problem_responses, openapi_config
from app.settings import Settings, load_settings
from app.stripe_wiring import app_gateway
from app.webhooks.dispatcher import Dispatcher
from app.webhooks.routes import WebhookEndpointController, WebhookEventTypeController
from billing.orders_routes import AccountOrderController, ApprovalController, OrderController, QuoteController
from billing.reports_routes import AccountBillingController, BillingController
from billing.routes import BudgetController, GuardrailController
from billing.stripe import handlers as _stripe_handlers  # noqa: F401  (registers the Stripe event handlers)
from billing.stripe.routes import CardController, stripe_webhook
from billing.subscriptions_routes import SubscriptionController
from catalog.routes import CatalogController, OfferController
from catalog.suggest.peers import Refresher
from catalog.suggest.routes import AdvisorController, SuggestionController
from entitlements.routes import EntitlementController, GrantController, TrialController, UsageController
from entitlements.runtime import Runtime

if TYPE_CHECKING:
    from stripe_fake import FakeStripe

VERSION = "0.1.0"
log = logging.getLogger("commerce")

ROUTE_HANDLERS: list[ControllerRouterHandler] = [
    healthz, readyz, AccountController, SessionController, ApiKeyController, AuditController,
    BudgetController, GuardrailController, QuoteController, OrderController, AccountOrderController,
    ApprovalController, BillingController, AccountBillingController,
    CatalogController, OfferController, SuggestionController, AdvisorController,
    WebhookEndpointController, WebhookEventTypeController,
    CardController, stripe_webhook, SubscriptionController,
    EntitlementController, GrantController, UsageController, TrialController,
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
) -> Litestar:
    """Build the app; the database (embedded when DATABASE_URL is unset) is opened in its lifespan.

    Without STRIPE_SECRET_KEY (never in production) card payments run against the in-process Stripe fake,
    which delivers its webhook events to this app shortly after each call; tests pass their own
    ``stripe_fake`` to deliver events when they choose.
    """
    settings = settings or load_settings()
    clock = clock or SystemClock()

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        server: EmbeddedServer | None = None
        url = settings.database_url
        if url is None:
            server = await asyncio.to_thread(start_embedded, settings.data_dir)
            url = embedded_url(server)
        engine = create_engine(url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)
        listener = Listener(plain_dsn(str(engine.url.render_as_string(hide_password=False))))
        key_cache: KeyCache = app.state.key_cache
        listener.subscribe("key", key_cache.invalidate)
        entitlements: Runtime = app.state.entitlements
        entitlements.subscribe(listener)
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        app.state.listener = listener
        app.state.stripe = app_gateway(app, settings, clock, stripe_fake)
        await listener.start()
        await entitlements.start(app.state.sessionmaker)
        stop_dispatcher = asyncio.Event()
        dispatcher_task: asyncio.Task[None] | None = None
        if settings.dispatcher == "on":
            dispatcher = Dispatcher(app.state.sessionmaker, settings=settings, clock=clock)
            dispatcher_task = asyncio.create_task(dispatcher.run(stop_dispatcher), name="webhook-dispatcher")
        try:
            yield
        finally:
            stop_dispatcher.set()
            if dispatcher_task is not None:
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(dispatcher_task, timeout=settings.webhook_timeout_seconds + 5)
            await entitlements.stop()
            await app.state.suggest_refresher.stop()
            await listener.stop()
            if app.state.stripe is not None:
                await app.state.stripe.close()
            for task in list(app.state.background_tasks):
                task.cancel()
            await engine.dispose()
            if server is not None:
                await asyncio.to_thread(server.cleanup)

    app = Litestar(
        route_handlers=[*ROUTE_HANDLERS, *extra_route_handlers],
        dependencies=DEPENDENCIES,
        guards=[auth_guard],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=openapi_config(VERSION),
        lifespan=[lifespan],
        request_max_body_size=settings.max_body_bytes,
        debug=False,
        state=_initial_state(settings, clock),
    )
    add_problem_responses(app)
    add_event_webhooks(app)
    return app


def _initial_state(settings: Settings, clock: Clock) -> Any:
    from litestar.datastructures import State

    return State({
        "settings": settings, "clock": clock, "key_cache": KeyCache(settings.api_key_cache_seconds),
        "background_tasks": set(), "entitlements": Runtime(settings, clock),
        "suggest_refresher": Refresher(clock, settings.suggest_unused_days),
    })


def app_factory() -> Litestar:
    """Entry point for ASGI servers (``--factory``): settings from the environment."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return create_app(load_settings())
