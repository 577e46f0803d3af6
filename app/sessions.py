"""Session token revocation: a per-user token generation, cached per process, pushed through NOTIFY.

Every session token carries the generation its user had when it was minted (``app.tokens``). Bumping the
user's generation (``app.accounts.service.revoke_tokens``) revokes every token minted before. Each use of a
token compares its generation with the user's current one from ``GenerationCache``: no database round trip
while the entry is warm; entries live ``ttl`` seconds and a revocation anywhere drops them at once through
LISTEN/NOTIFY (topic ``session``, value the user id). A token newer than the cached entry (minted by another
process after a revocation this one has not heard of yet) makes the entry reload, so a fresh token is never
refused.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import Unauthorized
from app.notify import FLUSH
from app.tokens import SessionClaims

TOPIC = "session"
MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class _Entry:
    account_id: str
    generation: int | None  # None: the user no longer exists
    loaded_at: float


class GenerationCache:
    """LRU of users' current token generations, keyed by user id, each entry ``ttl`` seconds."""

    def __init__(self, ttl: float, max_entries: int = MAX_ENTRIES) -> None:
        assert ttl > 0 and max_entries >= 1
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._seq = 0  # grows with every invalidation: a read that began before one is not cached

    def get(self, user_id: str) -> _Entry | None:
        entry = self._entries.get(user_id)
        if entry is None or time.monotonic() - entry.loaded_at > self.ttl:
            return None
        self._entries.move_to_end(user_id)
        return entry

    def token(self) -> int:
        """Take before reading from the database; hand back to ``put``."""
        return self._seq

    def put(self, user_id: str, entry: _Entry, token: int) -> None:
        if token != self._seq:
            return
        self._entries[user_id] = entry
        self._entries.move_to_end(user_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def invalidate(self, user_id: str) -> None:
        """NOTIFY callback: one user id, or ``*`` for everything (after the listener reconnects)."""
        self._seq += 1
        if user_id == FLUSH:
            self._entries.clear()
        else:
            self._entries.pop(user_id, None)


async def _load(sessionmaker: async_sessionmaker[AsyncSession], account_id: str, user_id: str) -> int | None:
    from app.accounts.models import User  # here, not at the top: app.accounts imports app.auth, which imports us

    async with sessionmaker() as session:
        generation: int | None = await session.scalar(select(User.token_generation).where(
            User.account_id == account_id, User.user_id == user_id))
    return generation


async def check_current(cache: GenerationCache, sessionmaker: async_sessionmaker[AsyncSession],
                        claims: SessionClaims) -> None:
    """Refuse a token whose generation is not its user's current one (401)."""
    entry = cache.get(claims.user_id)
    if entry is None or entry.account_id != claims.account_id or (
            entry.generation is not None and claims.generation > entry.generation):
        token = cache.token()
        generation = await _load(sessionmaker, claims.account_id, claims.user_id)
        entry = _Entry(account_id=claims.account_id, generation=generation, loaded_at=time.monotonic())
        cache.put(claims.user_id, entry, token)
    if entry.generation is None:
        raise Unauthorized("The user of this session token no longer exists.")
    if claims.generation < entry.generation:
        raise Unauthorized("This session token was revoked (the user's roles changed or its sessions were "
                           "ended); ask the vendor's app for a new one.")
    if claims.generation != entry.generation:
        raise Unauthorized("The session token is invalid.")

