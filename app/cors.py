"""CORS for the browser-facing routes only, from deployment origins and per-account origins.

Litestar's own CORS support applies one origin list to every route, before routing; here the answer depends
on the route (only routes that take user session tokens, ``opt["user_access"]``, speak CORS) and, for the
actual request, on the token's account. ``CORSConfig`` still supplies the header values (methods, headers,
max age, credentials, exposed headers).

- A preflight carries no token: it is answered here, before any guard, and allowed when the origin is in
  ``COMMERCE_CORS_ORIGINS`` or in some account's ``allowed_origins``.
- The actual response carries ``Access-Control-Allow-Origin`` when the origin is in the deployment list,
  or in the ``allowed_origins`` of the session token's account. A response without a principal (401) also
  gets it for any account's origin, so the widget can read that its token expired.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts.service import allowed_origins
from app.auth import UserPrincipal, VendorPrincipal
from app.notify import FLUSH
from app.settings import Settings

log = logging.getLogger("commerce.cors")

REQUEST_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "If-None-Match"]
EXPOSED_HEADERS = ["ETag", "Idempotent-Replayed", "Location", "Retry-After", "RateLimit-Limit",
                   "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy"]
METHODS: list[Any] = ["DELETE", "GET", "PATCH", "POST", "PUT"]
ORIGINS_TTL_S = 300.0


def cors_config(settings: Settings) -> CORSConfig:
    """The header values of every CORS answer, from the settings (origins are checked at settings load)."""
    return CORSConfig(
        allow_origins=list(settings.cors_origins), allow_methods=METHODS, allow_headers=REQUEST_HEADERS,
        allow_credentials=settings.cors_allow_credentials == "on", expose_headers=EXPOSED_HEADERS,
        max_age=settings.cors_max_age_seconds,
    )


class AccountOrigins:
    """This process's copy of every account's allowed origins; NOTIFY topic ``cors`` names changed accounts."""

    def __init__(self, ttl_s: float = ORIGINS_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._by_account: dict[str, frozenset[str]] = {}
        self._accounts_per_origin: dict[str, int] = {}
        self._full = True
        self._dirty: set[str] = set()
        self._loaded_at = 0.0
        self._retry_at = 0.0
        self._lock = asyncio.Lock()
        self._sessionmaker: async_sessionmaker[AsyncSession] | None = None

    def bind(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    def invalidate(self, value: str) -> None:
        if value == FLUSH:
            self._full = True
        else:
            self._dirty.add(value)

    def allows(self, account_id: str, origin: str) -> bool:
        return origin in self._by_account.get(account_id, ())

    def any_allows(self, origin: str) -> bool:
        return origin in self._accounts_per_origin

    def stale(self) -> bool:
        """Something changed or the copy is old (cheap: callers check before awaiting ``refresh``)."""
        return self._full or bool(self._dirty) or time.monotonic() - self._loaded_at > self.ttl_s

    async def refresh(self) -> None:
        """Reload what changed (or everything, first and after the TTL); a failed load keeps the old copy."""
        if not self.stale() or self._sessionmaker is None or time.monotonic() < self._retry_at:
            return
        async with self._lock:
            if not self.stale():
                return
            full = self._full or time.monotonic() - self._loaded_at > self.ttl_s
            dirty, self._dirty, self._full = self._dirty, set(), False
            try:
                async with self._sessionmaker() as session:
                    rows = await allowed_origins(session, None if full else dirty)
            except Exception:
                log.warning("allowed origins could not be loaded; keeping the previous copy", exc_info=True)
                self._dirty |= dirty
                self._full = self._full or full
                self._retry_at = time.monotonic() + 1.0
                return
            if full:
                self._by_account, self._accounts_per_origin = {}, {}
                self._loaded_at = time.monotonic()
            for account_id in rows if full else dirty:
                self._set(account_id, frozenset(rows.get(account_id, ())))

    def _set(self, account_id: str, origins: frozenset[str]) -> None:
        for origin in self._by_account.pop(account_id, frozenset()):
            left = self._accounts_per_origin[origin] - 1
            if left:
                self._accounts_per_origin[origin] = left
            else:
                del self._accounts_per_origin[origin]
        if origins:
            self._by_account[account_id] = origins
            for origin in origins:
                self._accounts_per_origin[origin] = self._accounts_per_origin.get(origin, 0) + 1


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


class CorsMiddleware(ASGIMiddleware):
    """Answers preflights of browser-facing routes without authentication; decorates their responses."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, config: CORSConfig) -> None:
        self.config = config
        self.allow_all = config.is_allow_all_origins
        self.deployment = frozenset(o for o in config.allow_origins if o != "*")
        self.allowed_request_headers = {h.lower() for h in config.preflight_headers.get(
            "Access-Control-Allow-Headers", "").split(", ") if h}
        # the response headers, encoded once (no ACAO: it is the request's origin, or * below)
        self._simple = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in config.simple_headers.items()]
        self._browser_methods: dict[str, frozenset[str]] | None = None

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        origin = _header(scope, b"origin")
        if origin is None:
            await next_app(scope, receive, send)
        elif scope.get("method") == "OPTIONS":
            if not await self._preflight(scope, send, origin):
                await next_app(scope, receive, send)  # Litestar's plain OPTIONS answer, without CORS headers
        elif scope["route_handler"].opt.get("user_access") is None:
            await next_app(scope, receive, send)  # vendor-key-only routes never speak CORS
        else:
            origins = _origins(scope)
            if origins.stale():
                await origins.refresh()

            async def send_with_cors(message: Message) -> None:
                if message["type"] == "http.response.start":
                    self._decorate(message, scope, origin)
                await send(message)

            await next_app(scope, receive, send_with_cors)

    async def _preflight(self, scope: Scope, send: Send, origin: str) -> bool:
        requested = _header(scope, b"access-control-request-method")
        methods = self._methods_of(scope)
        if requested is None or requested.upper() not in methods:
            return False
        asked = _header(scope, b"access-control-request-headers") or ""
        if any(h.strip().lower() not in self.allowed_request_headers for h in asked.split(",") if h.strip()):
            return False
        if not (self.allow_all or origin in self.deployment):
            origins = _origins(scope)
            if origins.stale():
                await origins.refresh()
            if not origins.any_allows(origin):
                return False
        headers = dict(self.config.preflight_headers)
        headers["Access-Control-Allow-Methods"] = ", ".join(sorted(methods))
        if not self.allow_all:
            headers["Access-Control-Allow-Origin"] = origin
        await send({"type": "http.response.start", "status": 204,
                    "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return True

    def _methods_of(self, scope: Scope) -> frozenset[str]:
        """The browser-facing methods of the request's path (none for vendor-only paths), computed once."""
        if self._browser_methods is None:
            self._browser_methods = _browser_methods(scope["litestar_app"])
        return self._browser_methods.get(scope["path_template"], frozenset())

    def _decorate(self, message: Message, scope: Scope, origin: str) -> None:
        headers = cast(list[tuple[bytes, bytes]], cast(dict[str, Any], message).setdefault("headers", []))
        if not self.allow_all:
            _add_vary_origin(headers)
        if not self._allowed(_origins(scope), scope.get("auth"), origin):
            return
        headers.extend(self._simple)  # our handlers never set CORS headers themselves: appending is enough
        if not self.allow_all:
            headers.append((b"access-control-allow-origin", origin.encode("latin-1")))

    def _allowed(self, origins: AccountOrigins, principal: Any, origin: str) -> bool:
        if self.allow_all or origin in self.deployment:
            return True
        if isinstance(principal, UserPrincipal):
            return origins.allows(principal.account_id, origin)
        if isinstance(principal, VendorPrincipal):
            return False  # per-account origins are for session tokens; vendor keys stay on servers
        return origins.any_allows(origin)


def _origins(scope: Scope) -> AccountOrigins:
    """The app's copy of the accounts' origins (it lives in the app's state, with the rest of its runtime)."""
    origins: AccountOrigins = scope["litestar_app"].state.account_origins
    return origins


def _add_vary_origin(headers: list[tuple[bytes, bytes]]) -> None:
    for i, (name, value) in enumerate(headers):
        if name.lower() == b"vary":
            if b"origin" not in value.lower():
                headers[i] = (name, value + b", Origin")
            return
    headers.append((b"vary", b"Origin"))


def _browser_methods(app: Litestar) -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if handler.opt.get("user_access") is not None:
                out.setdefault(route.path_format, set()).update(handler.http_methods)
    return {path: frozenset(methods) for path, methods in out.items()}
