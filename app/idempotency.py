"""Idempotency-Key for POST routes that create or move money (IETF idempotency-key draft semantics).

* same key, same request -> the stored first response (same status and body), marked replayed;
* same key, another request -> 422; same key while the first is still running -> 409;
* the claim is taken in its own short transaction so a concurrent duplicate sees it at once, while
  the completed response is written in the request's own transaction: either the work and its
  recorded answer both commit, or neither does (a crash leaves a claim that expires, never a lost answer).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import msgspec
from litestar import Request, Response
from sqlalchemy import LargeBinary, SmallInteger, String, delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from app.clock import Clock
from app.db import Base
from app.errors import BadRequest, Conflict, DomainError, Unprocessable, problem_response
from app.settings import Settings

HEADER = "idempotency-key"
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")

log = logging.getLogger("commerce.idempotency")


class IdempotencyRecord(Base):
    """Global table keyed by the caller (API key or user) and the key it chose."""

    __tablename__ = "idempotency_keys"

    principal: Mapped[str] = mapped_column(String(120), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    media_type: Mapped[str | None] = mapped_column(String(80))
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    locked_until: Mapped[datetime]
    expires_at: Mapped[datetime]


Produce = Callable[[], Awaitable[tuple[int, Any]]]


def _fingerprint(request: Request[Any, Any, Any], body: bytes) -> str:
    h = hashlib.sha256()
    h.update(f"{request.method} {request.url.path}?{request.url.query}\n".encode())
    h.update(body)
    return h.hexdigest()


async def _claim(
    sessionmaker: async_sessionmaker[AsyncSession], *, principal: str, key: str, fingerprint: str,
    now: datetime, settings: Settings,
) -> IdempotencyRecord | None:
    """Take the key for this request (None) or return the completed record to replay."""
    lock_until = now + timedelta(seconds=settings.idempotency_lock_seconds)
    expires_at = now + timedelta(seconds=settings.idempotency_ttl_seconds)
    async with sessionmaker() as session, session.begin():
        inserted = await session.scalar(
            insert(IdempotencyRecord)
            .values(principal=principal, key=key, request_sha256=fingerprint, state="running",
                    created_at=now, locked_until=lock_until, expires_at=expires_at)
            .on_conflict_do_nothing()
            .returning(IdempotencyRecord.key)
        )
        if inserted is not None:
            return None
        record = await session.scalar(
            select(IdempotencyRecord)
            .where(IdempotencyRecord.principal == principal, IdempotencyRecord.key == key)
            .with_for_update()
        )
        assert record is not None
        if record.expires_at <= now:
            record.request_sha256, record.state, record.created_at = fingerprint, "running", now
            record.locked_until, record.expires_at = lock_until, expires_at
            record.status_code = record.response_body = record.media_type = None
            return None
        if record.request_sha256 != fingerprint:
            raise Unprocessable(
                "This Idempotency-Key was already used with a different request; use a new key.",
                idempotency_key=key,
            )
        if record.state == "completed":
            return record
        if record.locked_until > now:
            raise Conflict(
                "A request with this Idempotency-Key is still being processed; retry shortly.",
                idempotency_key=key,
            )
        record.locked_until = lock_until  # the first attempt died without committing: take over
        return None


async def _finish_apart(
    sessionmaker: async_sessionmaker[AsyncSession], *, principal: str, key: str,
    outcome: tuple[int, str, bytes] | None,
) -> None:
    """Store a failed attempt's problem answer (or drop the claim) outside the rolled-back transaction."""
    async with sessionmaker() as session, session.begin():
        where = (IdempotencyRecord.principal == principal, IdempotencyRecord.key == key)
        if outcome is None:
            await session.execute(delete(IdempotencyRecord).where(*where))
        else:
            status, media_type, body = outcome
            await session.execute(update(IdempotencyRecord).where(*where).values(
                state="completed", status_code=status, media_type=media_type, response_body=body))


async def run_idempotent(
    request: Request[Any, Any, Any], session: AsyncSession, produce: Produce, *, required: bool = False,
) -> Response[Any]:
    """Run ``produce`` (returning status and a msgspec-encodable body) at most once per Idempotency-Key."""
    key = request.headers.get(HEADER)
    if key is None:
        if required:
            raise BadRequest("This request moves money: send an Idempotency-Key header (any unique string).")
        status, body = await produce()
        return Response(content=msgspec.json.encode(body), status_code=status, media_type="application/json")
    if not _KEY_RE.match(key):
        raise BadRequest("Idempotency-Key must be 1 to 255 visible ASCII characters.")
    state = request.app.state
    settings: Settings = state.settings
    clock: Clock = state.clock
    principal: str = request.scope["auth"].actor
    raw = await request.body()
    record = await _claim(
        state.sessionmaker, principal=principal, key=key, fingerprint=_fingerprint(request, raw),
        now=clock.now(), settings=settings,
    )
    if record is not None:
        return Response(
            content=record.response_body or b"", status_code=record.status_code or 200,
            media_type=record.media_type or "application/json", headers={"Idempotent-Replayed": "true"},
        )
    try:
        status, body = await produce()
    except DomainError as exc:
        problem = problem_response(status=exc.status, code=exc.code, title=exc.title, detail=exc.detail,
                                   instance=request.url.path, errors=exc.errors, extensions=exc.extensions)
        if exc.status < 500:
            await _finish_apart(state.sessionmaker, principal=principal, key=key,
                                outcome=(exc.status, problem.media_type or "", bytes(problem.content)))
        else:
            await _finish_apart(state.sessionmaker, principal=principal, key=key, outcome=None)
        raise
    except BaseException:
        await _finish_apart(state.sessionmaker, principal=principal, key=key, outcome=None)
        raise
    encoded = msgspec.json.encode(body)
    await session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.principal == principal, IdempotencyRecord.key == key)
        .values(state="completed", status_code=status, media_type="application/json", response_body=encoded)
    )
    return Response(content=encoded, status_code=status, media_type="application/json")


async def purge_expired(session: AsyncSession, *, now: datetime) -> int:
    """Delete keys past their TTL (run by the maintenance worker)."""
    result = await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= now))
    return int(getattr(result, "rowcount", 0) or 0)
