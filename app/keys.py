"""Vendor API keys: shown once, stored as a SHA-256 hash, scoped, revocable, last use recorded."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, Text, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.clock import Clock
from app.db import Base
from app.errors import NotFound
from app.ids import new_id

KEY_PREFIX = "sk_"


class ApiKey(Base):
    """A vendor API key (global: keys belong to the vendor, not to a customer account)."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    secret: str  # the full bearer token; shown once, never stored


def _hash(secret: str) -> str:
    # API secrets carry 256 bits of entropy, so a fast hash is enough (no password stretching needed).
    return hashlib.sha256(secret.encode()).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    """``sk_<key id>.<secret>`` -> (key id, token) or None when it is not shaped like a key."""
    if not token.startswith(KEY_PREFIX) or "." not in token:
        return None
    key_id = token[len(KEY_PREFIX):].split(".", 1)[0]
    if not key_id.startswith("key_") or len(key_id) > 40:
        return None
    return key_id, token


def secret_matches(secret_sha256: str, token: str) -> bool:
    """Constant-time comparison of a presented token with a stored hash."""
    return hmac.compare_digest(secret_sha256, _hash(token))


async def create_key(session: AsyncSession, *, name: str, scopes: frozenset[str], clock: Clock) -> NewKey:
    """Create a key; the returned secret is the only time it is ever visible."""
    key_id = new_id("key")
    token = f"{KEY_PREFIX}{key_id}.{secrets.token_urlsafe(32)}"
    key = ApiKey(
        key_id=key_id, name=name, secret_sha256=_hash(token), scopes=sorted(scopes),
        created_at=clock.now(), revoked_at=None, last_used_at=None,
    )
    session.add(key)
    await session.flush()
    return NewKey(key=key, secret=token)


async def revoke_key(session: AsyncSession, key_id: str, *, clock: Clock) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"API key {key_id!r} does not exist")
    if key.revoked_at is None:
        key.revoked_at = clock.now()
        await session.flush()
    return key


async def list_keys(session: AsyncSession) -> list[ApiKey]:
    return list((await session.scalars(select(ApiKey).order_by(ApiKey.key_id))).all())


async def touch_last_used(session: AsyncSession, key_id: str, when: datetime) -> None:
    await session.execute(update(ApiKey).where(ApiKey.key_id == key_id).values(last_used_at=when))
