"""Console sign-in: one-time links minted by the vendor's backend or the CLI, redeemed for a cookie session.

A link (``cl_<id>_<secret>``) is stored as a hash, lives minutes and is redeemed once (a conditional UPDATE),
for a customer admin of one account (``kind="admin"``) or for a member of the vendor's staff (``"vendor"``).
Redeeming it opens a console session: the cookie ``commerce_console`` carries ``cs_<id>_<secret>`` (HttpOnly,
SameSite=Lax, Secure outside development), the row keeps a CSRF token, an idle and an absolute expiry. An admin
session stops working when its user's session tokens are revoked (their token generation moves on) or the user
is no longer an admin; a vendor session acts as the vendor with every scope. ``app.auth`` turns a live session
into the same principal an API call would have, so a console page can do exactly what the API lets it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import CheckConstraint, Index, String, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app import audit
from app.clock import Clock
from app.db import Base
from app.errors import Unauthorized, Unprocessable
from app.ids import new_id
from app.settings import Settings

ConsoleKind = Literal["admin", "vendor"]
COOKIE = "commerce_console"
CSRF_HEADER = "x-csrf-token"
LINK_PREFIX = "cl"
SESSION_PREFIX = "cs"
TOUCH_RESOLUTION = timedelta(seconds=60)  # last_seen_at is written at most once a minute per session


class ConsoleLinkInvalid(Unauthorized):
    code, title = "console_link_invalid", "Console link not valid"


class ConsoleSessionInvalid(Unauthorized):
    code, title = "console_session_invalid", "Console session ended"


class NotAnAdmin(Unprocessable):
    code, title = "not_an_admin", "The user is not an admin"


class ConsoleLink(Base):
    """A one-time sign-in link (global: vendor staff links have no account; admin links carry theirs)."""

    __tablename__ = "console_links"
    __table_args__ = (CheckConstraint("kind IN ('admin', 'vendor')", name="kind_known"),
                      CheckConstraint("kind = 'vendor' OR (account_id IS NOT NULL AND user_id IS NOT NULL)",
                                      name="admin_has_user"))

    link_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(10))
    account_id: Mapped[str | None] = mapped_column(String(40))
    user_id: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(320))
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class ConsoleSession(Base):
    """A signed-in console: who, its CSRF token, when it was last used and when it ends regardless."""

    __tablename__ = "console_sessions"
    __table_args__ = (CheckConstraint("kind IN ('admin', 'vendor')", name="kind_known"),
                      Index("ix_console_sessions_account_id", "account_id"))

    session_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    csrf_token: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(10))
    account_id: Mapped[str | None] = mapped_column(String(40))
    user_id: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(320))
    token_generation: Mapped[int]  # the admin's token generation at sign-in: a revocation ends the session
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


@dataclass(frozen=True)
class Policy:
    """How long links and sessions live (from settings)."""

    link_ttl: timedelta
    idle: timedelta
    absolute: timedelta


def policy_of(settings: Settings) -> Policy:
    """The console's lifetimes from the settings."""
    return Policy(link_ttl=timedelta(seconds=settings.console_link_ttl_seconds),
                  idle=timedelta(seconds=settings.console_idle_seconds),
                  absolute=timedelta(seconds=settings.console_max_seconds))


def _sha(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _split(token: str, prefix: str) -> tuple[str, str] | None:
    head, sep, secret = token.rpartition("_")
    if not sep or not head.startswith(prefix + "_") or len(secret) < 20 or len(token) > 200:
        return None
    return head, secret


async def mint_link(session: AsyncSession, *, kind: ConsoleKind, account_id: str | None, user_id: str | None,
                    email: str | None, actor: str, policy: Policy, clock: Clock) -> tuple[str, datetime]:
    """A new one-time link token and its expiry."""
    assert kind == "vendor" or (account_id and user_id), "an admin link names its account and user"
    secret = secrets.token_hex(24)  # hex: no "_", which separates the id from the secret
    now = clock.now()
    row = ConsoleLink(link_id=new_id(LINK_PREFIX), secret_sha256=_sha(secret), kind=kind, account_id=account_id,
                      user_id=user_id, email=email, created_by=actor, created_at=now,
                      expires_at=now + policy.link_ttl, used_at=None)
    session.add(row)
    await audit.record(session, clock=clock, actor=actor, action="console.link_created", target_type="console_link",
                       target_id=row.link_id, account_id=account_id,
                       after={"kind": kind, "email": email, "expires_at": row.expires_at.isoformat()})
    return f"{row.link_id}_{secret}", row.expires_at


async def redeem_link(session: AsyncSession, token: str, *, policy: Policy,
                      clock: Clock) -> tuple[ConsoleSession, str]:
    """Use a link once: a new session (tied to an admin's current token generation) and its cookie value."""
    from app.accounts.models import User  # here, not at the top: app.accounts imports app.auth, which imports us

    parts = _split(token, LINK_PREFIX)
    now = clock.now()
    link = None
    if parts is not None:
        link = await session.scalar(
            update(ConsoleLink).where(ConsoleLink.link_id == parts[0], ConsoleLink.used_at.is_(None),
                                      ConsoleLink.expires_at > now)
            .values(used_at=now).returning(ConsoleLink))
    if link is None or parts is None or not hmac.compare_digest(link.secret_sha256, _sha(parts[1])):
        raise ConsoleLinkInvalid("This console link is not valid: it was already used, has expired or was "
                                 "mistyped. Ask for a new one.")
    generation = 0
    if link.kind == "admin":
        generation = await session.scalar(select(User.token_generation).where(
            User.account_id == link.account_id, User.user_id == link.user_id)) or 0
    secret = secrets.token_hex(24)  # hex: no "_", which separates the id from the secret
    row = ConsoleSession(
        session_id=new_id(SESSION_PREFIX), secret_sha256=_sha(secret), csrf_token=secrets.token_urlsafe(32),
        kind=link.kind, account_id=link.account_id, user_id=link.user_id, email=link.email,
        token_generation=generation, created_at=now, last_seen_at=now,
        expires_at=now + policy.absolute, ended_at=None)
    session.add(row)
    await audit.record(session, clock=clock, actor=_actor(row), action="console.signed_in",
                       target_type="console_session", target_id=row.session_id, account_id=row.account_id,
                       after={"kind": row.kind, "link": link.link_id})
    return row, f"{row.session_id}_{secret}"


def _actor(row: ConsoleSession) -> str:
    return f"staff:{row.email}" if row.kind == "vendor" else f"user:{row.user_id}"


async def current_session(session: AsyncSession, cookie: str, *, policy: Policy, clock: Clock) -> ConsoleSession:
    """The live session a cookie names (401 when unknown, ended, idle too long or past its absolute end)."""
    parts = _split(cookie, SESSION_PREFIX)
    row = await session.get(ConsoleSession, parts[0]) if parts is not None else None
    now = clock.now()
    if row is None or parts is None or not hmac.compare_digest(row.secret_sha256, _sha(parts[1])):
        raise ConsoleSessionInvalid("You are not signed in to the console; open a new console link.")
    if row.ended_at is not None or now >= row.expires_at or now - row.last_seen_at >= policy.idle:
        raise ConsoleSessionInvalid("Your console session has ended; open a new console link to sign in again.")
    if now - row.last_seen_at >= TOUCH_RESOLUTION:
        await session.execute(update(ConsoleSession).where(ConsoleSession.session_id == row.session_id)
                              .values(last_seen_at=now))
    return row


async def end_session(session: AsyncSession, row: ConsoleSession, *, clock: Clock) -> None:
    """Sign out: the cookie stops working at once."""
    await session.execute(update(ConsoleSession).where(ConsoleSession.session_id == row.session_id,
                                                       ConsoleSession.ended_at.is_(None))
                          .values(ended_at=clock.now()))
    await audit.record(session, clock=clock, actor=_actor(row), action="console.signed_out",
                       target_type="console_session", target_id=row.session_id, account_id=row.account_id)


def csrf_matches(row: ConsoleSession, sent: str | None) -> bool:
    """Whether a mutation carries this session's CSRF token."""
    return sent is not None and hmac.compare_digest(row.csrf_token.encode(), sent.encode())


async def sessions_of(session: AsyncSession, account_id: str) -> list[ConsoleSession]:
    """The account's open console sessions (for tests and operators)."""
    return list((await session.scalars(select(ConsoleSession).where(
        ConsoleSession.account_id == account_id, ConsoleSession.ended_at.is_(None)))).all())
