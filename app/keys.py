"""Vendor API keys: shown once, stored as a SHA-256 hash, scoped, optionally bound to accounts, revocable.

A key hands out only what it holds: the keys it creates or revokes carry no scope it lacks and reach no
account it cannot reach (``check_grantable``, ``check_revocable``). The CLI acts as the operator and is not
bound by these rules.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, String, Text, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.clock import Clock
from app.db import Base
from app.errors import Forbidden, NotFound
from app.ids import new_id

if TYPE_CHECKING:
    from app.auth import VendorPrincipal

KEY_PREFIX = "sk_"
MAX_BOUND_ACCOUNTS = 1000


class KeyPrivilegeExceeded(Forbidden):
    code, title = "key_privilege_exceeded", "Beyond this key's own privileges"


class ApiKey(Base):
    """A vendor API key: global (every account) or bound to a list of accounts (by internal account id)."""

    __tablename__ = "api_keys"
    __table_args__ = (
        # NULL means global; an empty binding would reach nothing and is never stored.
        CheckConstraint("account_ids IS NULL OR cardinality(account_ids) > 0", name="binding_not_empty"),
    )

    key_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    account_ids: Mapped[list[str] | None] = mapped_column(ARRAY(String(40)))
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


def token_sha256(token: str) -> str:
    """The stored form of a presented token (what ``secret_sha256`` holds for the key's own token)."""
    return _hash(token)


def secret_matches(secret_sha256: str, token: str) -> bool:
    """Constant-time comparison of a presented token with a stored hash."""
    return hmac.compare_digest(secret_sha256, _hash(token))


def within(account_ids: Iterable[str] | None, *, bound_to: frozenset[str] | None) -> bool:
    """Whether a binding (None: global) reaches no account beyond ``bound_to`` (None: global)."""
    if bound_to is None:
        return True
    return account_ids is not None and set(account_ids) <= bound_to


def check_grantable(holder: VendorPrincipal, *, scopes: frozenset[str], account_ids: frozenset[str] | None) -> None:
    """A key may create only keys with a subset of its scopes, bound to a subset of its accounts."""
    missing = sorted(scopes - holder.scopes)
    if missing:
        raise KeyPrivilegeExceeded(f"This API key cannot grant scopes it does not hold: {', '.join(missing)}.",
                                   missing_scopes=missing)
    if not within(account_ids, bound_to=holder.account_ids):
        raise KeyPrivilegeExceeded("This API key is bound to accounts: a key it creates must be bound to some of "
                                   "them (name them in 'accounts').")


def check_revocable(holder: VendorPrincipal, key: ApiKey) -> None:
    """A key may revoke only keys with no scope it lacks (keys beyond its accounts it does not even see)."""
    missing = sorted(set(key.scopes) - holder.scopes)
    if missing:
        raise KeyPrivilegeExceeded(f"This API key cannot revoke a key holding scopes it lacks: {', '.join(missing)}.",
                                   missing_scopes=missing)


async def create_key(session: AsyncSession, *, name: str, scopes: frozenset[str], clock: Clock,
                     account_ids: frozenset[str] | None = None) -> NewKey:
    """Create a key (global, or bound to ``account_ids``); the returned secret is the only time it is visible."""
    assert account_ids is None or 0 < len(account_ids) <= MAX_BOUND_ACCOUNTS
    key_id = new_id("key")
    token = f"{KEY_PREFIX}{key_id}.{secrets.token_urlsafe(32)}"
    key = ApiKey(
        key_id=key_id, name=name, secret_sha256=_hash(token), scopes=sorted(scopes),
        account_ids=None if account_ids is None else sorted(account_ids),
        created_at=clock.now(), revoked_at=None, last_used_at=None,
    )
    session.add(key)
    await session.flush()
    return NewKey(key=key, secret=token)


async def revoke_key(session: AsyncSession, key_id: str, *, clock: Clock,
                     holder: VendorPrincipal | None = None) -> ApiKey:
    """Revoke a key; with ``holder`` (an API caller), only a key it may see and that has no scope beyond its own."""
    key = await session.get(ApiKey, key_id, with_for_update=True)
    if key is None or (holder is not None and not within(key.account_ids, bound_to=holder.account_ids)):
        raise NotFound(f"API key {key_id!r} does not exist")
    if holder is not None:
        check_revocable(holder, key)
    if key.revoked_at is None:
        key.revoked_at = clock.now()
        await session.flush()
    return key


async def list_keys(session: AsyncSession, *, bound_to: frozenset[str] | None = None) -> list[ApiKey]:
    """Every key, or with ``bound_to`` only the keys bound within those accounts (a bound caller's view)."""
    query = select(ApiKey).order_by(ApiKey.key_id)
    if bound_to is not None:
        query = query.where(ApiKey.account_ids.is_not(None), ApiKey.account_ids.contained_by(sorted(bound_to)))
    return list((await session.scalars(query)).all())


async def touch_last_used(session: AsyncSession, key_id: str, when: datetime) -> None:
    await session.execute(update(ApiKey).where(ApiKey.key_id == key_id).values(last_used_at=when))
