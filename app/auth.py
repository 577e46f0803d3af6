"""Authentication and authorisation for every route, in one app-level guard.

Each route declares its access in ``opt``:
  * ``public=True``: no credentials (health, readiness, OpenAPI, signature-authenticated webhooks);
  * ``scope="x:y"``: the vendor API key scope it needs;
  * ``user_access``: whether user session tokens may call it: ``"self"`` (end users, for themselves,
    and customer admins inside their account) or ``"admin"`` (customer admins only); absent = vendor only;
  * ``owner``: whose objects the route touches (``account``, ``user``, ``catalog``, ``vendor``, ``self``,
    ``public``). A key bound to accounts may call ``account``, ``user`` and ``catalog`` routes only, unless
    the route says ``bound_keys=True`` (its handler then narrows the answer to the key's accounts).
Per-object tenancy (another account's object answers 404) is checked in the services, always through the
principal's ``may_access_account``/``may_access_user``: the one rule for session tokens and bound keys alike.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from app import console, keys, sessions, tokens
from app.clock import Clock
from app.errors import FieldError, Forbidden, Unauthorized, ValidationFailed
from app.notify import FLUSH
from app.settings import Settings
from app.singleflight import SingleFlight

log = logging.getLogger("commerce.auth")

UserAccess = Literal["self", "admin"]
LAST_USED_RESOLUTION_S = 60.0
# Route owners a key bound to accounts may call; every other owner is deployment-level (deny by default).
BOUND_KEY_OWNERS = frozenset({"account", "user", "catalog"})


@dataclass(frozen=True)
class VendorPrincipal:
    """The vendor's app, through an API key."""

    key_id: str
    scopes: frozenset[str]
    account_ids: frozenset[str] | None = None  # the accounts a bound key may reach; None: a global key
    staff: str | None = None  # a member of the vendor's staff signed in to the console (key_id: the session)

    @property
    def actor(self) -> str:
        return f"staff:{self.staff}" if self.staff is not None else f"key:{self.key_id}"

    def may_access_account(self, account_id: str) -> bool:
        """Whether this key may see and change the account's objects."""
        return self.account_ids is None or account_id in self.account_ids

    def may_access_user(self, account_id: str, user_id: str) -> bool:
        """Whether this key may act for the user (every user of an account it may access)."""
        return self.may_access_account(account_id)


@dataclass(frozen=True)
class UserPrincipal:
    """An end user or customer admin, through a session token."""

    account_id: str
    user_id: str
    roles: frozenset[str]
    is_admin: bool

    @property
    def actor(self) -> str:
        return f"user:{self.user_id}"

    @property
    def account_ids(self) -> frozenset[str]:
        """The accounts this session may see: its own."""
        return frozenset({self.account_id})

    def may_access_account(self, account_id: str) -> bool:
        """Whether this session may see the account's objects (its own account only)."""
        return account_id == self.account_id

    def may_access_user(self, account_id: str, user_id: str) -> bool:
        """End users act for themselves; customer admins for any user of their account."""
        return account_id == self.account_id and (self.is_admin or user_id == self.user_id)


Principal = VendorPrincipal | UserPrincipal


@dataclass
class _CachedKey:
    key_id: str
    secret_sha256: str
    scopes: frozenset[str]
    account_ids: frozenset[str] | None  # the binding travels with the entry; it never changes after creation
    revoked: bool
    loaded_at: float
    last_used_write: float


class KeyCache:
    """Per-process cache of API keys so authentication costs no database round trip when warm.

    Entries live ``ttl`` seconds; a revocation anywhere is pushed through LISTEN/NOTIFY (topic ``key``).
    Verified tokens map by their SHA-256 to the ready principal: a warm request hashes its token once and
    builds nothing. Such a principal is served only while its key's entry is the live one, so a revocation
    (or the TTL) that drops the entry ends it too.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, _CachedKey] = {}
        self._principals: dict[str, tuple[_CachedKey, VendorPrincipal]] = {}
        self._loading: SingleFlight[str, _CachedKey | None] = SingleFlight()

    async def load(self, key_id: str, read: Callable[[], Awaitable[_CachedKey | None]]) -> _CachedKey | None:
        """The key's entry read by ``read`` and cached; concurrent misses of one key share one read (when an
        entry expires under load, every request in flight would otherwise query the database at once)."""
        async def read_and_keep() -> _CachedKey | None:
            entry = await read()
            if entry is not None:
                self.put(entry)
            return entry

        return await self._loading.run(key_id, read_and_keep)

    def get(self, key_id: str) -> _CachedKey | None:
        entry = self._entries.get(key_id)
        if entry is None or time.monotonic() - entry.loaded_at > self.ttl:
            return None
        return entry

    def put(self, entry: _CachedKey) -> None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[entry.key_id] = entry

    def principal(self, token_sha256: str) -> tuple[_CachedKey, VendorPrincipal] | None:
        """The principal of a token verified earlier, while its key's entry is live and not revoked."""
        hit = self._principals.get(token_sha256)
        if hit is None:
            return None
        entry = hit[0]
        if entry.revoked or self._entries.get(entry.key_id) is not entry or \
                time.monotonic() - entry.loaded_at > self.ttl:
            del self._principals[token_sha256]
            return None
        return hit

    def remember(self, token_sha256: str, entry: _CachedKey, principal: VendorPrincipal) -> None:
        if len(self._principals) > 10_000:
            self._principals.clear()
        self._principals[token_sha256] = (entry, principal)

    def invalidate(self, key_id: str) -> None:
        if key_id == FLUSH:
            self._entries.clear()
            self._principals.clear()
        else:
            entry = self._entries.pop(key_id, None)
            if entry is not None:
                entry.revoked = True  # its remembered principals stop at once, not at their next lookup


def _bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    header = connection.headers.get("authorization")
    if not header:
        raise Unauthorized("Send an API key or a session token as 'Authorization: Bearer <token>'.")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("The Authorization header must use the Bearer scheme.")
    return token


def remembered(state: Any, digest: str) -> VendorPrincipal | None:
    """The principal of a token (by its SHA-256) verified earlier and still live, with its last use recorded
    (at most once a minute per key and process); None when the token must be verified first."""
    cache: KeyCache = state.key_cache
    hit = cache.principal(digest)
    if hit is None:
        return None
    known, principal = hit
    if time.monotonic() - known.last_used_write > LAST_USED_RESOLUTION_S:
        known.last_used_write = time.monotonic()
        _schedule_last_used(state, principal.key_id, state.clock)
    return principal


async def _vendor(connection: ASGIConnection[Any, Any, Any, Any], key_id: str, token: str) -> VendorPrincipal:
    state = connection.app.state
    cache: KeyCache = state.key_cache
    clock: Clock = state.clock
    digest = keys.token_sha256(token)
    known = remembered(state, digest)
    if known is not None:
        return known
    entry = cache.get(key_id)
    if entry is None:
        async def read() -> _CachedKey | None:
            async with state.sessionmaker() as session:
                row = await session.get(keys.ApiKey, key_id)
            if row is None:
                return None
            return _CachedKey(
                key_id=row.key_id, secret_sha256=row.secret_sha256, scopes=frozenset(row.scopes),
                account_ids=None if row.account_ids is None else frozenset(row.account_ids),
                revoked=row.revoked_at is not None, loaded_at=time.monotonic(), last_used_write=0.0,
            )

        entry = await cache.load(key_id, read)
        if entry is None:
            raise Unauthorized("The API key is not valid.")
    if entry.revoked or not hmac.compare_digest(entry.secret_sha256, digest):
        raise Unauthorized("The API key is not valid.")
    if time.monotonic() - entry.last_used_write > LAST_USED_RESOLUTION_S:
        entry.last_used_write = time.monotonic()
        _schedule_last_used(state, key_id, clock)
    principal = VendorPrincipal(key_id=key_id, scopes=entry.scopes, account_ids=entry.account_ids)
    cache.remember(digest, entry, principal)
    return principal


def _schedule_last_used(state: Any, key_id: str, clock: Clock) -> None:
    """Record last use off the request path, at most once a minute per key and process."""

    async def write() -> None:
        try:
            async with state.sessionmaker() as session, session.begin():
                await keys.touch_last_used(session, key_id, clock.now())
        except Exception:
            log.warning("could not record last use of key %s", key_id, exc_info=True)

    task = asyncio.get_running_loop().create_task(write())
    state.background_tasks.add(task)
    task.add_done_callback(state.background_tasks.discard)


async def _user(connection: ASGIConnection[Any, Any, Any, Any], token: str) -> UserPrincipal:
    state = connection.app.state
    settings: Settings = state.settings
    clock: Clock = state.clock
    claims = tokens.verify(token, secret=settings.token_secret, audience=settings.token_audience, now=clock.now())
    await sessions.check_current(state.session_cache, state.sessionmaker, claims)  # revoked tokens end here
    roles = frozenset(claims.roles)
    return UserPrincipal(
        account_id=claims.account_id, user_id=claims.user_id, roles=roles,
        is_admin=bool(roles & set(settings.admin_roles)),
    )


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def _console(connection: ASGIConnection[Any, Any, Any, Any], cookie: str) -> Principal:
    """A console session cookie acts as the principal its sign-in link named: the vendor (every scope) or a
    customer admin, who stays one only while the user is an admin and its tokens are not revoked."""
    from app.accounts.models import User  # here, not at the top: app.accounts imports us
    from app.scopes import SCOPES

    state = connection.app.state
    settings: Settings = state.settings
    async with state.sessionmaker() as session, session.begin():
        row = await console.current_session(session, cookie, policy=console.policy_of(settings), clock=state.clock)
        user = await session.get(User, (row.account_id, row.user_id)) if row.kind == "admin" else None
    if connection.scope.get("method") not in SAFE_METHODS and not console.csrf_matches(
            row, connection.headers.get(console.CSRF_HEADER)):
        raise Forbidden("A console change must carry the page's CSRF token (X-CSRF-Token); reload the page.",
                        csrf=True)
    if row.kind == "vendor":
        return VendorPrincipal(key_id=row.session_id, scopes=frozenset(SCOPES), staff=row.email or row.session_id)
    if user is None or user.token_generation != row.token_generation:
        raise console.ConsoleSessionInvalid("Your console session was ended (your sessions were revoked); open a "
                                            "new console link.")
    roles = frozenset(user.roles)
    if not roles & set(settings.admin_roles):
        raise console.ConsoleSessionInvalid("You are no longer an admin of this account.")
    return UserPrincipal(account_id=user.account_id, user_id=user.user_id, roles=roles, is_admin=True)


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    if not connection.headers.get("authorization"):
        cookie = connection.cookies.get(console.COOKIE)
        if cookie:
            return await _console(connection, cookie)
    token = _bearer(connection)
    parts = keys.split_token(token)
    if parts is not None:
        return await _vendor(connection, *parts)
    if token.startswith(keys.KEY_PREFIX):
        raise Unauthorized("The API key is not valid.")
    return await _user(connection, token)


def authorize(principal: Principal, opt: dict[str, Any]) -> None:
    """Check the route's declared access for this principal (scopes, a bound key's reach, user access)."""
    if isinstance(principal, VendorPrincipal):
        scope = opt.get("scope")
        if scope is None:
            raise Forbidden("This route is for user session tokens, not API keys.")
        if scope not in principal.scopes:
            raise Forbidden(f"This API key lacks the '{scope}' scope.", required_scope=scope)
        if principal.account_ids is not None and not (
                opt.get("owner") in BOUND_KEY_OWNERS or opt.get("bound_keys")):
            raise Forbidden("This API key is bound to accounts; deployment-level routes need a global key.",
                            bound_key=True)
        return
    access: UserAccess | None = opt.get("user_access")
    if access is None:
        raise Forbidden("This route needs a vendor API key; session tokens cannot call it.")
    if access == "admin" and not principal.is_admin:
        raise Forbidden("Only a customer admin of this account may do this.")


async def auth_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """App-level guard: every route authenticates unless it is declared public."""
    opt = handler.opt
    if opt.get("public") or opt.get("exclude_from_auth") or connection.scope.get("method") == "OPTIONS":
        return  # OPTIONS: CORS preflights carry no credentials and answer nothing but headers
    principal = await authenticate(connection)
    authorize(principal, opt)
    connection.scope["auth"] = principal
    reject_unknown_query(connection, opt)


def reject_unknown_query(connection: ASGIConnection[Any, Any, Any, Any], opt: dict[str, Any]) -> None:
    """Unknown query parameters are a 400, like unknown body fields: a typo never passes silently."""
    allowed: frozenset[str] | None = opt.get("query_params")
    if allowed is None:
        return
    unknown = sorted(set(connection.query_params.keys()) - allowed)
    if unknown:
        raise ValidationFailed(
            f"Unknown query parameter(s): {', '.join(repr(u) for u in unknown)[:300]}.",
            errors=[FieldError(field=f"query.{u}"[:200], message="unknown parameter") for u in unknown[:20]],
        )
    # a parameter of one value given twice (?status=a&status=b) would be read as one of them, silently
    counts = Counter(name for name, _ in connection.query_params.multi_items())
    repeated = sorted(n for n, c in counts.items() if c > 1 and n not in opt.get("repeatable_query_params", ()))
    if repeated:
        raise ValidationFailed(
            f"Query parameter(s) given more than once: {', '.join(repr(r) for r in repeated)[:300]}.",
            errors=[FieldError(field=f"query.{r}"[:200], message="given more than once") for r in repeated[:20]],
        )


def provide_principal(request: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """Dependency: the authenticated principal of this request."""
    principal: Principal = request.scope["auth"]
    return principal
