"""The entitlement change stream: ``GET /v1/entitlements/changes`` as one JSON batch or server-sent events.

A reader holds a cursor (the log horizon it has read up to, and when it was issued). Each read returns the
distinct (account, user) pairs changed since, narrowed to what the caller may see. The stream wakes on this
process's LISTEN/NOTIFY (topics ``ent`` and ``catalog``), so a committed change reaches SDKs within
milliseconds; a heartbeat every few seconds carries a fresh cursor and keeps proxies from closing the stream.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec
from litestar.response.sse import ServerSentEventMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import Principal, UserPrincipal
from app.errors import FieldError, ValidationFailed
from app.settings import Settings
from entitlements.cache import ChangeSignal
from entitlements.runtime import Runtime
from entitlements.schemas import ChangeBatch, ChangeItem
from entitlements.service._changes import current_horizon, read_changes

PENDING_RETRY_SECONDS = 0.05  # a change is committed but an older transaction still runs: look again soon


@dataclass(frozen=True)
class Cursor:
    horizon: int
    issued_epoch: int

    def encode(self) -> str:
        return base64.urlsafe_b64encode(f"{self.horizon}.{self.issued_epoch}".encode()).decode().rstrip("=")

    @staticmethod
    def decode(text: str) -> Cursor:
        """An opaque cursor we issued; anything else is a 400."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            horizon, _, epoch = raw.partition(".")
            if not (horizon.isdigit() and epoch.isdigit() and len(horizon) <= 19 and len(epoch) <= 12):
                raise ValueError(raw)
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise ValidationFailed("The change cursor is not valid; pass back a cursor this API gave you.", errors=[
                FieldError(field="cursor", message="not a cursor this API issued")]) from exc
        return Cursor(int(horizon), int(epoch))


def visibility(principal: Principal) -> tuple[frozenset[str] | None, str | None]:
    """(accounts, user) the caller may hear about: a global key everything, an end user itself and its account."""
    if isinstance(principal, UserPrincipal):
        return principal.account_ids, None if principal.is_admin else principal.user_id
    return principal.account_ids, None


class ChangeReader:
    """Reads of one caller from a cursor on; each read moves the cursor to the horizon it read up to."""

    def __init__(self, *, engine: AsyncEngine, runtime: Runtime, settings: Settings, principal: Principal) -> None:
        self._engine = engine
        self._runtime = runtime
        self._settings = settings
        self._accounts, self._user = visibility(principal)
        self.cursor: Cursor | None = None
        self.pending = False

    async def start(self, cursor: str | None) -> ChangeBatch:
        """The first batch: changes since ``cursor``, or a reset when there is none usable."""
        given = Cursor.decode(cursor) if cursor else None
        async with self._engine.connect() as conn:
            horizon, now_epoch = await current_horizon(conn)
        too_old = given is not None and now_epoch - given.issued_epoch > self._settings.changes_retention_seconds
        if given is None or too_old or given.horizon > horizon:
            # No cursor is a fresh start (nothing cached yet); a stale or foreign one means changes may be lost.
            self.cursor = Cursor(horizon, now_epoch)
            return await self._batch([], reset=given is not None)
        self.cursor = given
        return await self.read()

    async def read(self) -> ChangeBatch:
        assert self.cursor is not None
        async with self._engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                found = await read_changes(conn, start=self.cursor.horizon, account_ids=self._accounts,
                                           user_id=self._user)
        self.cursor = Cursor(max(found.horizon, self.cursor.horizon), found.now_epoch)
        self.pending = found.pending
        if found.changes is None:
            return await self._batch([], reset=True)
        return await self._batch([ChangeItem(account=c.account, user=c.user) for c in found.changes], reset=False)

    async def _batch(self, changes: list[ChangeItem], *, reset: bool) -> ChangeBatch:
        assert self.cursor is not None
        view = await self._runtime.view()
        return ChangeBatch(cursor=self.cursor.encode(), catalog_revision=view.revision, reset=reset, changes=changes)


def _event(kind: str, batch: ChangeBatch) -> bytes:
    return ServerSentEventMessage(data=msgspec.json.encode(batch).decode(), event=kind, id=batch.cursor,
                                  sep="\n").encode()


async def stream(reader: ChangeReader, *, cursor: str | None, signal: ChangeSignal,
                 settings: Settings) -> AsyncIterator[bytes]:
    """``ready`` first (with ``reset`` when the cursor could not be honoured), then ``changes`` as they commit and
    ``heartbeat`` when idle; ends after ``changes_max_stream_seconds``, or at once when the process stops
    (``signal.close``); the client resumes with its cursor."""
    signal.opened()
    try:
        async for event in _events(reader, cursor=cursor, signal=signal, settings=settings):
            yield event
    finally:
        signal.ended()


async def _events(reader: ChangeReader, *, cursor: str | None, signal: ChangeSignal,
                  settings: Settings) -> AsyncIterator[bytes]:
    token = signal.token()
    first = await reader.start(cursor)
    yield b"retry: 1000\n\n" + _event("ready", first)
    revision = first.catalog_revision
    ends_at = time.monotonic() + settings.changes_max_stream_seconds
    beat_at = time.monotonic() + settings.changes_heartbeat_seconds
    while (now := time.monotonic()) < ends_at and not signal.closed:
        if not reader.pending:
            await signal.wait(token, seconds=max(0.0, min(beat_at, ends_at) - now))
        else:
            await asyncio.sleep(PENDING_RETRY_SECONDS)
        if signal.closed:
            return  # the process is stopping: the client resumes from its last cursor
        token = signal.token()
        batch = await reader.read()
        if batch.changes or batch.reset or batch.catalog_revision != revision:
            revision = batch.catalog_revision
            yield _event("changes", batch)
            beat_at = time.monotonic() + settings.changes_heartbeat_seconds
        elif time.monotonic() >= beat_at:
            yield _event("heartbeat", batch)
            beat_at = time.monotonic() + settings.changes_heartbeat_seconds
