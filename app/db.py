"""Database wiring: the declarative base, the engine, and the one-transaction-per-request session.

The unit of work: a request (or a job step) owns one transaction; services never commit. Network calls that
may be slow (Stripe) must not run while the calling task holds an open transaction: ``in_transaction`` tells,
from the engine's own begin/commit/rollback events, whether the current asyncio task has one open, and
``assert_outside_transaction`` is the guard the Stripe gateway runs before every call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import msgspec
from litestar.datastructures import State
from sqlalchemy import BigInteger, Connection, DateTime, MetaData, event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# Table options of a row updated in place many times (a usage counter, a day's demand signal, a budget's period
# balance): pages kept 30 % free, so an update finds room for its new version on the row's own page and is a HOT
# update (no index entry written, the old version pruned on the page): HOT updates of the counters in the
# ingestion bench 22 -> 61 %, PostgreSQL's CPU per usage batch 10.3-12.7 -> 8.7-9.3 ms (docs/decisions.md, D101).
HOT_UPDATES = {"postgresql_with": {"fillfactor": 70}}


class Base(DeclarativeBase):
    """Declarative base of every table; each domain package declares its own tables on it."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: DateTime(timezone=True), int: BigInteger}


def async_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the asyncpg driver."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    raise ValueError("DATABASE_URL must be a PostgreSQL URL (postgresql://...)")


_ENCODE_JSON = msgspec.json.Encoder().encode


def json_text(value: Any) -> str:
    """JSON text of a JSONB value, by msgspec (the standard library's encoder was the slowest step of writing an
    order's JSON columns); what msgspec cannot encode (an integer past 64 bits) goes to the standard library."""
    try:
        return _ENCODE_JSON(value).decode()
    except (TypeError, OverflowError, msgspec.EncodeError):
        return json.dumps(value)


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10) -> AsyncEngine:
    """An asyncpg engine; UTC session time zone so timestamps never depend on the server's setting.

    No ping per checkout (a round trip on every request): a connection the server dropped fails its first
    statement, SQLAlchemy recognises the disconnect and invalidates the whole pool, so only the requests
    already holding a dead connection fail (docs/decisions.md, the fast-path decision).
    """
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=False,
        json_serializer=json_text,
        connect_args={"server_settings": {"timezone": "UTC", "application_name": "commerce"}},
    )
    track_transactions(engine)
    return engine


# --- which tasks hold an open transaction ------------------------------------------------------------------

# Connection -> the task that began its transaction; an entry lives from BEGIN to COMMIT or ROLLBACK, and goes
# with the Connection object itself (weak keys) when a broken connection is discarded without either.
_OPEN: weakref.WeakKeyDictionary[Connection, asyncio.Task[Any]] = weakref.WeakKeyDictionary()


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop (a synchronous caller): nothing to guard
        return None


# The listeners touch nothing but the Connection object: reading ``conn.connection`` in a ROLLBACK of an
# invalidated connection would try to revalidate it, and an error raised here would replace the
# CancelledError or driver error that is unwinding the transaction.
def _began(conn: Connection) -> None:
    task = _current_task()
    if task is not None:
        _OPEN[conn] = task


def _ended(conn: Connection) -> None:
    _OPEN.pop(conn, None)


def track_transactions(engine: AsyncEngine) -> None:
    """Record which task begins and ends each transaction of ``engine`` (cheap: a dict write per BEGIN)."""
    sync = engine.sync_engine
    event.listen(sync, "begin", _began)
    event.listen(sync, "commit", _ended)
    event.listen(sync, "rollback", _ended)


def in_transaction() -> bool:
    """Whether the current asyncio task holds an open database transaction (of an engine made here)."""
    task = _current_task()
    return task is not None and any(owner is task for owner in _OPEN.values())


class TransactionOpen(AssertionError):
    """A call that must run outside any transaction was made while the task held one (a programming error)."""


def assert_outside_transaction(what: str) -> None:
    """Raise TransactionOpen when the current task holds an open transaction: commit first, then call out."""
    if in_transaction():
        raise TransactionOpen(f"{what} while this task holds an open database transaction; commit the pending "
                              "state first, call outside any transaction, record the answer in a new one")


def create_fast_engine(url: str, *, pool_size: int, max_overflow: int) -> AsyncEngine:
    """Connections of the purchase's fast paths (D90, D96): a few fixed statements, prepared once per connection
    and each run as its own transaction, planned once (``plan_cache_mode = force_generic_plan``).

    With the default mode PostgreSQL planned the order's one statement (about twenty data-modifying CTEs and
    their guards) at every execution -- 1.9 ms of its 3.5 ms -- because its cost model never preferred the
    generic plan; the generic plan is the same index lookups and inserts (every parameter is a key or a value to
    write), 1.1 ms to run. A pool of its own, so no other statement of the app is planned that way.
    """
    engine = create_async_engine(
        async_url(url), pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=False, json_serializer=json_text,
        connect_args={"server_settings": {"timezone": "UTC", "application_name": "commerce-fast",
                                          "plan_cache_mode": "force_generic_plan"}},
    )
    track_transactions(engine)
    return engine


class _Held:
    """Connections of one fast engine kept checked out between requests, with their driver connection."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.idle: list[tuple[AsyncConnection, Any]] = []


_HELD: weakref.WeakKeyDictionary[AsyncEngine, _Held] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[Any]:
    """A bare driver (asyncpg) connection of ``engine`` for one request's fast-path statements (D102).

    Taking a connection from SQLAlchemy's pool and giving it back cost about 50 us of CPU (the pool's checkout,
    its reset on return, the connection's events): twice per purchase. The fast engine's connections are
    instead kept checked out between requests, up to its pool size, and handed over as they are; one comes back
    only when the request ended normally with it idle (no transaction open, not closed). Anything else -- an
    exception, a cancellation, more connections than are kept -- goes back through SQLAlchemy's pool, and one
    closed or left inside a transaction is discarded; a kept one the server closed while it was idle (a restart)
    is discarded when its turn comes instead of handed over. ``release_driver_connections`` gives them all back
    (shutdown)."""
    held = _HELD.get(engine)
    if held is None:
        held = _HELD[engine] = _Held(engine.pool.size() if hasattr(engine.pool, "size") else 0)
    while held.idle and held.idle[-1][1].is_closed():  # the server closed it while idle (a restart): discard it
        await _give_back(*held.idle.pop())
    if held.idle:
        connection, driver = held.idle.pop()
    else:
        connection = await engine.connect()
        try:
            driver = (await connection.get_raw_connection()).driver_connection
        except BaseException:
            await connection.close()
            raise
    try:
        yield driver
    except BaseException:
        await _give_back(connection, driver)
        raise
    if len(held.idle) < held.keep and not driver.is_closed() and not driver.is_in_transaction():
        held.idle.append((connection, driver))
    else:
        await _give_back(connection, driver)


async def _give_back(connection: AsyncConnection, driver: Any) -> None:
    """Back to SQLAlchemy's pool; discarded when it is closed (the pool would keep it and hand it out again) or
    when a transaction begun on the driver is still open (the pool's reset rolls back only the transactions
    SQLAlchemy itself began, so it would hand the open one to the next user)."""
    if driver.is_closed() or driver.is_in_transaction():
        await connection.invalidate()
    await connection.close()


def held_connections(engine: AsyncEngine) -> int:
    """How many of ``engine``'s connections are kept idle for the fast paths (checked out of its pool)."""
    held = _HELD.get(engine)
    return len(held.idle) if held is not None else 0


async def release_driver_connections(engine: AsyncEngine) -> None:
    """Give every kept connection of ``engine`` back to its pool (before ``dispose``)."""
    held = _HELD.pop(engine, None)
    if held is None:
        return
    held.keep = 0  # a request still running gives its connection back to the pool, not to this list
    while held.idle:
        connection, _ = held.idle.pop()
        await connection.close()


def create_lock_engine(url: str, *, pool_size: int, max_overflow: int) -> AsyncEngine:
    """Connections that only hold session advisory locks while their owner lives (app.idempotency).

    Its own pool: a request takes its lock connection before any other, so it never waits for this pool
    while holding one of the main pool's. TCP keepalives make the server drop (and so unlock) a connection
    whose host vanished within about half a minute instead of hours.
    """
    return create_async_engine(
        async_url(url), pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True,
        connect_args={"server_settings": {
            "timezone": "UTC", "application_name": "commerce-locks", "tcp_keepalives_idle": "10",
            "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3"}},
    )


def make_sessionmaker(engine: AsyncEngine, *,
                      info: dict[str, object] | None = None) -> async_sessionmaker[AsyncSession]:
    """Sessions on ``engine``; ``info`` is copied into each (the app's wiring passes its event bus there)."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False, info=info)


AfterTransaction = Callable[[], Awaitable[None]]
_AFTER = "after_transaction"


def after_transaction(session: AsyncSession, callback: AfterTransaction) -> None:
    """Run ``callback`` once the request's transaction has committed or rolled back (provide_session only)."""
    callbacks: list[AfterTransaction] | None = session.info.get(_AFTER)
    assert callbacks is not None, "only the request's own session (provide_session) runs after-transaction work"
    callbacks.append(callback)


async def provide_session(state: State) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed after the handler returns, before the response is sent."""
    sessionmaker: async_sessionmaker[AsyncSession] = state.sessionmaker
    async with sessionmaker() as session:
        session.info[_AFTER] = []
        try:
            async with session.begin():
                yield session
        finally:
            for callback in session.info.pop(_AFTER):
                await callback()


def model_to_dict(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """A small before/after summary of a row for the audit log."""
    out: dict[str, Any] = {}
    for f in fields:
        value = getattr(obj, f)
        if isinstance(value, msgspec.Struct) or (isinstance(value, list) and value
                                                 and isinstance(value[0], msgspec.Struct)):
            value = msgspec.to_builtins(value)  # typed JSONB columns (an address, tax ids)
        out[f] = value.isoformat() if isinstance(value, datetime) else value
    return out
