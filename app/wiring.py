"""How the packages hear each other: the domain-event subscriptions, the sessions that carry them, and the
settings only a higher package can judge. With app/asgi.py, app/cli.py, app/demo.py and app/models.py, the
only code that knows every package (tests/gates/test_import_direction_gate.py holds everyone else to
app <- catalog <- entitlements <- billing <- suggest)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import catalog
import suggest
from app.db import make_sessionmaker
from app.events import Bus
from app.settings import Settings, SettingsError


def event_bus(settings: Settings) -> Bus:
    """Every in-process subscriber: the suggestion engine hears fulfilled orders and decided approvals."""
    bus = Bus()
    suggest.subscribe(bus, attribution_days=settings.suggest_attribution_days,
                      unused_days=settings.suggest_unused_days)
    return bus


def session_info(settings: Settings) -> dict[str, object]:
    """What every session of the service carries: the event bus, and billing's answer to the catalog's question
    of who pays which price version (the catalog sits below billing and cannot ask it directly)."""
    from billing.service._price_migrations import price_owners_of

    return {**event_bus(settings).session_info(), **catalog.owner_source_info(price_owners_of)}


def sessionmaker(engine: AsyncEngine, settings: Settings) -> async_sessionmaker[AsyncSession]:
    """Sessions whose published events reach the subscribers: every session the service and its jobs open."""
    return make_sessionmaker(engine, info=session_info(settings))


def check_settings(settings: Settings) -> Settings:
    """The settings a higher package judges (the suggestion weights); raises SettingsError."""
    try:
        suggest.parse_weights(settings.suggest_weights)
    except ValueError as exc:
        raise SettingsError(f"COMMERCE_SUGGEST_WEIGHTS: {exc}") from exc
    return settings
