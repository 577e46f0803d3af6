"""Domain events: the typed facts packages publish, the event catalogue, and a small in-process bus.

A package says what happened by publishing an event: a msgspec Struct registered here with ``@event`` (the
payload types are the event catalogue; publishing an unregistered type fails). ``publish`` runs, in the
caller's transaction, the subscribers the app's wiring put on the session's bus (app/wiring.py), then writes
the event to the outbox, which carries it to webhooks. So a lower package never calls a higher one: it
publishes, and the higher one is subscribed to it. A subscriber that raises fails the publishing
transaction: a fact and its consequences commit together or not at all.

The catalogue feeds the docs (docs/webhooks.md, checked by a test), the OpenAPI document (``webhooks``) and
``GET /v1/webhook-event-types``. Versioning: adding a field with a default keeps the version; renaming,
removing or retyping a field registers the same type with ``version + 1``.
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import Clock
from app.ids import new_id
from app.logs import current_request_id
from app.onestatement import Statement, plain
from app.outbox import OutboxEvent, write


class Event(msgspec.Struct, kw_only=True, frozen=True):
    """Base of every event payload (and of the structs nested in them)."""


class WithVendorIds(Event, kw_only=True, frozen=True):
    """An event about an account's (or a user's) object that also names them by the vendor's own ids.

    ``publish`` fills ``account`` and ``user`` from the event's ``account_id`` and its ``user_id`` member, so the
    vendor's app can act on the event without mapping our ids back (``user`` stays null for an account-wide
    object). Packages publishing such an event leave them out.
    """

    account: str | None = None
    user: str | None = None


@dataclass(frozen=True)
class EventSpec:
    type: str
    version: int
    payload: builtins.type[Event]
    description: str


_REGISTRY: dict[tuple[str, int], EventSpec] = {}
_BY_CLASS: dict[type[Event], EventSpec] = {}
_INTERNAL: set[type[Event]] = set()  # heard in process only (``announce``): not in the catalogue, never sent
E = TypeVar("E", bound=Event)
C = TypeVar("C", bound=type[Event])


def event(type: str, *, version: int = 1, description: str) -> Callable[[C], C]:
    """Register a payload struct as ``type`` at ``version``."""

    def register(cls: C) -> C:
        key = (type, version)
        assert key not in _REGISTRY, f"event {type} v{version} is registered twice"
        assert cls not in _BY_CLASS, f"{cls.__name__} is registered twice"
        _REGISTRY[key] = _BY_CLASS[cls] = EventSpec(type=type, version=version, payload=cls,
                                                    description=description)
        return cls

    return register


def internal_event(cls: C) -> C:
    """Register a payload that only in-process subscribers hear (``announce``): it is no webhook, not in the
    catalogue and never written to the outbox."""
    assert cls not in _BY_CLASS and cls not in _INTERNAL, f"{cls.__name__} is registered twice"
    _INTERNAL.add(cls)
    return cls


def catalogue() -> list[EventSpec]:
    """Every registered event, by type then version."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def event_types() -> set[str]:
    """Every registered type name (any version)."""
    return {t for t, _ in _REGISTRY}


def spec_of(payload: Event) -> EventSpec:
    """The catalogue entry of a payload; only registered types can be published."""
    spec = _BY_CLASS.get(type(payload))
    assert spec is not None, f"{type(payload).__name__} is not a registered event payload"
    return spec


@dataclass(frozen=True)
class Published(Generic[E]):
    """An event as a subscriber receives it: the fact, its outbox id, its account and when it happened."""

    event: E
    event_id: str
    account_id: str | None
    occurred_at: datetime


Subscriber = Callable[[AsyncSession, Published[E]], Awaitable[None]]
# The same subscriber as a part of a fast path's one statement (app/onestatement.py): it adds its CTEs for the
# event; ``facts`` are what the publisher says about the event's object (its type is the publisher's contract).
InlineSubscriber = Callable[[Statement, Published[E], object], None]
_SESSION_KEY = "app.events.bus"


class Bus:
    """Who hears which event, in the order subscribed; built once by the app's wiring and carried by every
    session its sessionmaker opens (``session_info``), so a session made elsewhere publishes to nobody."""

    def __init__(self) -> None:
        self._subscribers: dict[type[Event], list[Subscriber[Any]]] = {}
        self._inline: dict[type[Event], list[InlineSubscriber[Any] | None]] = {}

    def subscribe(self, event_type: type[E], subscriber: Subscriber[E], *,
                  inline: InlineSubscriber[E] | None = None) -> None:
        """Run ``subscriber`` for every ``event_type`` published on a session carrying this bus; ``inline``: the
        same consequence as SQL in a fast path's one statement (without it, fast paths that publish this event
        take their ordinary path)."""
        assert event_type in _BY_CLASS or event_type in _INTERNAL, (
            f"{event_type.__name__} is not a registered event payload")
        self._subscribers.setdefault(event_type, []).append(subscriber)
        self._inline.setdefault(event_type, []).append(inline)

    def inline_subscribers(self, event_type: type[Event]) -> tuple[InlineSubscriber[Any], ...] | None:
        """Every subscriber of exactly this type in its inline form, in order; None when one has none."""
        found = self._inline.get(event_type, [])
        if any(f is None for f in found):
            return None
        return tuple(f for f in found if f is not None)

    def subscribers(self, event_type: type[Event]) -> tuple[Subscriber[Any], ...]:
        """The subscribers of exactly this type, in the order they subscribed."""
        return tuple(self._subscribers.get(event_type, ()))

    def session_info(self) -> dict[str, object]:
        """The ``info`` a sessionmaker passes to its sessions so that they publish to this bus."""
        return {_SESSION_KEY: self}


W = TypeVar("W", bound=WithVendorIds)


async def _with_vendor_ids(session: AsyncSession, payload: W, account_id: str) -> W:
    """The event with the vendor's ids of its account and user (read through the session's identity map: the
    publishing code has usually loaded both already, so this costs no query then)."""
    # imported here: the accounts package publishes events of its own (``app.accounts.events``), so importing it
    # while this module loads made ``import app.events`` fail when nothing had imported the accounts package first
    from app.accounts.models import Account, User

    account = await session.get(Account, account_id)
    user_id = getattr(payload, "user_id", None)
    user = await session.get(User, (account_id, user_id)) if isinstance(user_id, str) else None
    return msgspec.structs.replace(payload, account=account.external_id if account else None,
                                   user=user.external_id if user else None)


def outbox_row(published: Published[Event], *, extra: Mapping[str, object] | None = None) -> OutboxEvent:
    """The outbox row ``publish`` would write for this event (for a fast path writing it in its one statement).
    Vendor ids (``WithVendorIds``) must already be filled by the caller."""
    spec = spec_of(published.event)
    body: dict[str, Any] = msgspec.to_builtins(published.event)
    body.update(msgspec.to_builtins(dict(extra or {})))
    return plain(OutboxEvent, event_id=published.event_id, type=spec.type, version=spec.version,
                       account_id=published.account_id, occurred_at=published.occurred_at, payload=body,
                       request_id=current_request_id())


def bus_of(session: AsyncSession) -> Bus | None:
    """The bus this session publishes to (None: it was not opened by the app's wiring)."""
    bus = session.info.get(_SESSION_KEY)
    assert bus is None or isinstance(bus, Bus)
    return bus


def bus_in(info: Mapping[str, object]) -> Bus | None:
    """The bus of sessions opened with this ``info`` (a sessionmaker's), for work done outside a session."""
    bus = info.get(_SESSION_KEY)
    assert bus is None or isinstance(bus, Bus)
    return bus


async def publish(session: AsyncSession, payload: Event, *, clock: Clock, account_id: str | None = None,
                  extra: Mapping[str, object] | None = None) -> str:
    """Run the session's subscribers of this event in the caller's transaction, then write it to the outbox
    (it exists only if that transaction commits); returns its event id.

    ``extra``: members written beside the payload that the catalogue does not describe (yet), for bodies
    that carried them before their event was typed; subscribers never see them.
    """
    spec = spec_of(payload)
    if isinstance(payload, WithVendorIds) and account_id is not None and payload.account is None:
        payload = await _with_vendor_ids(session, payload, account_id)
    published = Published(event=payload, event_id=new_id("evt"), account_id=account_id, occurred_at=clock.now())
    bus = bus_of(session)
    if bus is not None:
        for subscriber in bus.subscribers(type(payload)):
            await subscriber(session, published)
    body: dict[str, Any] = msgspec.to_builtins(payload)
    body.update(msgspec.to_builtins(dict(extra or {})))
    write(session, event_id=published.event_id, type=spec.type, version=spec.version, account_id=account_id,
          occurred_at=published.occurred_at, payload=body)
    return published.event_id


async def announce(session: AsyncSession, payload: Event, *, clock: Clock, account_id: str | None = None) -> None:
    """Run the session's subscribers of an internal event (``internal_event``) in the caller's transaction."""
    assert type(payload) in _INTERNAL, f"{type(payload).__name__} is not an internal event"
    bus = bus_of(session)
    if bus is None:
        return
    published = Published(event=payload, event_id=new_id("evt"), account_id=account_id, occurred_at=clock.now())
    for subscriber in bus.subscribers(type(payload)):
        await subscriber(session, published)
