"""Idempotency-Key for POST routes that create or move money (IETF idempotency-key draft semantics).

* same key, same request -> the stored first response (same status and body), marked replayed;
* same key, another request -> 422; same key while the first is still running -> 409;
* liveness, not a lease: a request owns its key through a PostgreSQL session advisory lock, taken on a
  connection of its own before anything else and released after the request's transaction ended. A
  duplicate that cannot take the lock gets 409 however long the first runs. When the owner's process dies,
  the server drops its connections and so the lock, and a retry takes over at once (a claim left
  ``running`` with nobody holding its lock belongs to a dead request);
* the claim row is committed apart, while the completed response is written in the request's own
  transaction, guarded by the claim's token: either the work and its recorded answer both commit, or
  neither does, and an owner whose lock connection died while it lived on cannot commit after a retry
  took over (its answer is refused with 409 and its transaction rolls back).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.datastructures import State
from sqlalchemy import (
    BigInteger,
    DateTime,
    LargeBinary,
    SmallInteger,
    String,
    bindparam,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from app.clock import Clock
from app.db import Base, after_transaction
from app.errors import BadRequest, Conflict, DomainError, Unprocessable, problem_response
from app.onestatement import Statement
from app.settings import Settings

HEADER = "idempotency-key"
KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")

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
    expires_at: Mapped[datetime]
    claim_token: Mapped[str | None] = mapped_column(String(32))  # the attempt that owns a running key


Produce = Callable[[], Awaitable[tuple[int, Any]]]


def fingerprint_of(method: str, path: str, query: str, body: bytes) -> str:
    """What tells one request from another under the same key: method, path, query string and body."""
    h = hashlib.sha256()
    h.update(f"{method} {path}?{query}\n".encode())
    h.update(body)
    return h.hexdigest()


def _fingerprint(request: Request[Any, Any, Any], body: bytes) -> str:
    return fingerprint_of(request.method, request.url.path, request.url.query, body)


def lock_id(principal: str, key: str) -> int:
    """The 64-bit advisory lock id of one (caller, key)."""
    digest = hashlib.sha256(f"commerce-idempotency\0{principal}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


# The usual claim in one round trip: drop whatever a previous user of this pooled connection left (the
# subquery with a volatile call runs first), try the key's lock, and insert the running claim if we got it.
_FIRST_CLAIM = text("""
WITH lock AS MATERIALIZED (
    SELECT pg_try_advisory_lock(:lock_id) AS owner FROM (SELECT pg_advisory_unlock_all()) AS unlocked),
claimed AS (
    INSERT INTO idempotency_keys (principal, key, request_sha256, state, created_at, expires_at, claim_token)
    SELECT :principal, :key, :fingerprint, 'running', :now, :expires_at, :token FROM lock WHERE lock.owner
    ON CONFLICT DO NOTHING RETURNING 1)
SELECT (SELECT owner FROM lock), EXISTS (SELECT 1 FROM claimed)
""").bindparams(bindparam("lock_id", type_=BigInteger), bindparam("now", type_=DateTime(timezone=True)),
                bindparam("expires_at", type_=DateTime(timezone=True)))


async def _claim(
    session: AsyncSession, *, principal: str, key: str, fingerprint: str, now: datetime, settings: Settings,
    owner: bool,
) -> IdempotencyRecord | str:
    """After a first claim that found the key taken: the completed record to replay, or this attempt's claim
    token (an expired or abandoned key is ours again); else 409/422. ``owner``: whether we hold its lock."""
    where = (IdempotencyRecord.principal == principal, IdempotencyRecord.key == key)
    if not owner:  # a live request holds the key; only a finished answer can be replayed meanwhile
        record = await session.scalar(select(IdempotencyRecord).where(*where))
        if record is not None and record.expires_at > now:
            if record.request_sha256 != fingerprint:
                raise _reused(key)
            if record.state == "completed":
                return record
        raise _in_flight(key)
    token = secrets.token_hex(16)
    expires_at = now + timedelta(seconds=settings.idempotency_ttl_seconds)
    inserted = await session.scalar(
        insert(IdempotencyRecord)
        .values(principal=principal, key=key, request_sha256=fingerprint, state="running", created_at=now,
                expires_at=expires_at, claim_token=token)
        .on_conflict_do_nothing()
        .returning(IdempotencyRecord.key)
    )
    if inserted is not None:
        return token
    record = await session.scalar(select(IdempotencyRecord).where(*where).with_for_update())
    assert record is not None
    if record.expires_at <= now:
        record.request_sha256, record.state, record.created_at = fingerprint, "running", now
        record.expires_at = expires_at
        record.status_code = record.response_body = record.media_type = None
    elif record.request_sha256 != fingerprint:
        raise _reused(key)
    elif record.state == "completed":
        return record
    else:  # running, yet nobody holds its lock: the request that claimed it died; take over now
        log.warning("Idempotency-Key %r of %s: the first attempt died; this retry takes over", key, principal)
    record.claim_token = token
    return token


def _reused(key: str) -> Unprocessable:
    return Unprocessable("This Idempotency-Key was already used with a different request; use a new key.",
                         idempotency_key=key)


def _in_flight(key: str) -> Conflict:
    return Conflict("A request with this Idempotency-Key is still being processed; retry shortly.",
                    idempotency_key=key)


async def _unlock(conn: AsyncConnection) -> None:
    """Give the lock connection back without locks; a connection that cannot say so is closed instead."""
    try:
        await conn.execute(select(func.pg_advisory_unlock_all()))
        await conn.close()
    except Exception as exc:  # e.g. the connection died: the server already dropped its locks
        log.warning("could not release an idempotency lock (%s); closing its connection", exc)
        await conn.invalidate()
        await conn.close()


def _releaser(conn: AsyncConnection) -> Callable[[], Awaitable[None]]:
    async def release() -> None:
        await asyncio.shield(_unlock(conn))  # even a cancelled request gives its lock back
    return release


async def _take(
    engine: AsyncEngine, *, principal: str, key: str, fingerprint: str, now: datetime, settings: Settings,
) -> tuple[IdempotencyRecord | str, Callable[[], Awaitable[None]]]:
    """Claim the key on a lock connection of its own; returns the claim and how to release it.

    The connection runs in autocommit: the advisory lock, not a transaction, is what makes its owner the only
    writer of the key's row, so the usual claim is one statement with no BEGIN or COMMIT around it.
    """
    conn = await engine.connect()
    release = _releaser(conn)
    try:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        token = secrets.token_hex(16)
        owner, inserted = (await conn.execute(_FIRST_CLAIM, {
            "lock_id": lock_id(principal, key), "principal": principal, "key": key, "fingerprint": fingerprint,
            "now": now, "expires_at": now + timedelta(seconds=settings.idempotency_ttl_seconds),
            "token": token})).one()
        if owner and inserted:
            return token, release
        async with AsyncSession(bind=conn, expire_on_commit=False) as session:
            claim = await _claim(session, principal=principal, key=key, fingerprint=fingerprint, now=now,
                                 settings=settings, owner=bool(owner))
            await session.commit()  # autocommit: each statement already took effect; this ends the ORM's unit
    except BaseException:
        await release()
        raise
    return claim, release


async def _finish_apart(
    sessionmaker: async_sessionmaker[AsyncSession], *, principal: str, key: str, token: str,
    outcome: tuple[int, str, bytes] | None,
) -> None:
    """Store a failed attempt's problem answer (or drop the claim) outside the rolled-back transaction."""
    async with sessionmaker() as session, session.begin():
        where = (IdempotencyRecord.principal == principal, IdempotencyRecord.key == key,
                 IdempotencyRecord.claim_token == token)
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
    if not KEY_RE.match(key):
        raise BadRequest("Idempotency-Key must be 1 to 255 visible ASCII characters.")
    state = request.app.state
    settings: Settings = state.settings
    clock: Clock = state.clock
    principal: str = request.scope["auth"].actor
    raw = await request.body()
    claim, release = await _take(state.lock_engine, principal=principal, key=key,
                                 fingerprint=_fingerprint(request, raw), now=clock.now(), settings=settings)
    if isinstance(claim, IdempotencyRecord):
        await release()
        return Response(
            content=claim.response_body or b"", status_code=claim.status_code or 200,
            media_type=claim.media_type or "application/json", headers={"Idempotent-Replayed": "true"},
        )
    after_transaction(session, release)  # held until the answer below has committed (or rolled back)
    try:
        status, body = await produce()
    except DomainError as exc:
        problem = problem_response(status=exc.status, code=exc.code, title=exc.title, detail=exc.detail,
                                   instance=request.url.path, errors=exc.errors, extensions=exc.extensions)
        outcome = (exc.status, problem.media_type or "", bytes(problem.content)) if exc.status < 500 else None
        await _finish_apart(state.sessionmaker, principal=principal, key=key, token=claim, outcome=outcome)
        raise
    except BaseException:
        await _finish_apart(state.sessionmaker, principal=principal, key=key, token=claim, outcome=None)
        raise
    encoded = msgspec.json.encode(body)
    stored = await session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.principal == principal, IdempotencyRecord.key == key,
               IdempotencyRecord.claim_token == claim)
        .values(state="completed", status_code=status, media_type="application/json", response_body=encoded)
    )
    if getattr(stored, "rowcount", 0) != 1:  # our lock was lost and a retry owns the key: keep nothing
        raise Conflict("A retry with this Idempotency-Key took this request over; its result was not kept.",
                       idempotency_key=key)
    return Response(content=encoded, status_code=status, media_type="application/json")


@dataclass(frozen=True)
class FastClaim:
    """What a one-statement fast path needs to claim an Idempotency-Key and store its answer in that statement."""

    principal: str
    key: str
    fingerprint: str
    now: datetime
    expires_at: datetime


async def fast_claim(request: Request[Any, Any, Any]) -> FastClaim | None:
    """The request's key as a fast path claims it; None (no key, or a malformed one): the ordinary path answers."""
    key = request.headers.get(HEADER)
    if key is None or not KEY_RE.match(key):
        return None
    return claim_for(request.app.state, request.scope["auth"].actor, key,
                     _fingerprint(request, await request.body()))


def claim_for(state: State, actor: str, key: str, fingerprint: str) -> FastClaim:
    """A claim of ``key`` by ``actor`` now, kept as long as the settings keep Idempotency-Keys."""
    now = state.clock.now()
    return FastClaim(principal=actor, key=key, fingerprint=fingerprint, now=now,
                     expires_at=now + timedelta(seconds=state.settings.idempotency_ttl_seconds))


def claim_in(statement: Statement, claim: FastClaim, *, status: int, body: bytes) -> str:
    """Claim the key in ``statement`` with its completed answer, as the statement's first guards.

    The key's advisory lock is taken for the statement's transaction only (the ordinary path holds the same
    lock for its whole request, so each sees the other as in flight), and the row is inserted completed: the
    statement is one transaction, so the answer commits with the work or neither does. A key that is held or
    already stored refuses the statement: the ordinary path then replays, refuses or takes it over. Returns the
    claim's CTE (a row when the key was claimed).
    """
    lock = statement.cte("key_lock", "SELECT pg_try_advisory_xact_lock("
                         f"{statement.param(lock_id(claim.principal, claim.key), 'BIGINT')}) AS owner",
                         materialized=True)
    p = statement.param
    claimed = statement.cte("key_claim", (
        "INSERT INTO idempotency_keys (principal, key, request_sha256, state, status_code, media_type, "
        "response_body, created_at, expires_at, claim_token) "
        f"SELECT {p(claim.principal, 'VARCHAR')}, {p(claim.key, 'VARCHAR')}, {p(claim.fingerprint, 'VARCHAR')}, "
        f"'completed', {p(status, 'SMALLINT')}, 'application/json', {p(body, 'BYTEA')}, "
        f"{p(claim.now, 'TIMESTAMPTZ')}, {p(claim.expires_at, 'TIMESTAMPTZ')}, {p(secrets.token_hex(16), 'VARCHAR')} "
        f"FROM {lock} WHERE {lock}.owner ON CONFLICT DO NOTHING RETURNING 1"))
    statement.guard(f"(SELECT owner FROM {lock})", "key_in_flight")
    statement.guard(f"EXISTS (SELECT 1 FROM {claimed})", "key_stored")
    return claimed


async def purge_expired(session: AsyncSession, *, now: datetime) -> int:
    """Delete keys past their TTL (run by the maintenance worker)."""
    result = await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= now))
    return int(getattr(result, "rowcount", 0) or 0)
