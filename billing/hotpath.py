"""The purchase's fast paths in front of the app (D96): ``POST /v1/quotes`` and ``POST /v1/orders`` for the common
case, answered without Litestar's routing, middleware layers, guards, dependency injection and signature models.

The app (``app.asgi.CommerceApp``) hands every request for exactly these two paths to ``PurchaseFastPath.answer``
before routing. It answers only when it can answer exactly as the full stack would: ``POST``, no query string, no
``Origin`` (CORS stays with its middleware), one ``Content-Type: application/json``, one ``Authorization: Bearer``
vendor key whose principal this process already remembers by the token's hash and whose scopes and binding the
route's ``opt`` admit, URL and headers within the request limits, a body within the size limit that decodes into
the route's input struct (the same strict decoder, ``app.http.decode_body``), for an order a well-formed
Idempotency-Key, a rate-limit lease with hits left, and then the service's fast path (D90) answering. It does what
the middleware, the guards and the handler do for that case: the request id (echoed or made, bound for the
service's audit entry and logs), the lease's hit, the key's last use, the request metrics
(``commerce_requests_*`` with the route template), the access line when it is on, and sends the answer's bytes
(encoded by the same structs) with the same headers.

Everything else -- a bad body, an unknown or cold key, a browser, a refusal, a replay, an idempotency conflict,
anything the service's fast path declines -- goes on to Litestar with the body it read given back, so the route,
its OpenAPI document and its problem answers stay in ``billing.routes``. When the lease's hit was already spent
here, the request carries ``SPENT`` in its scope and the rate limiter's guard does not count it twice.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any, cast

import msgspec
import structlog
from litestar import Litestar
from litestar.datastructures import State
from litestar.types import HTTPScope, Receive, Send

from app import auth, shim
from app.errors import DomainError
from app.events import bus_in
from app.http import decode_body
from app.idempotency import KEY_RE, FastClaim, claim_for, fingerprint_of
from app.logs import HEADER as REQUEST_ID
from app.logs import access_log
from app.ratelimit.limiter import SPENT, RateLimiter
from app.settings import Settings
from billing import service
from billing.schemas import OrderCreate, QuoteCreate, QuoteRead

log = logging.getLogger("commerce.purchase_fast_path")

QUOTES = "/v1/quotes"
ORDERS = "/v1/orders"
PATHS = frozenset({QUOTES, ORDERS})
_JSON = (b"content-type", b"application/json")


class PurchaseFastPath:
    """One per app; ``answer`` is called for every HTTP request whose path is in ``PATHS``."""

    def __init__(self, app: Litestar, settings: Settings) -> None:
        self.app = app
        self.state = app.state
        self.limiter: RateLimiter | None = app.state.rate_limiter
        self.max_url_bytes = settings.max_url_bytes
        self.max_header_bytes = settings.max_header_bytes
        self.max_body_bytes = settings.max_body_bytes
        self.access = settings.access_log == "on"
        self.measured = settings.metrics != "off"
        self._opt: dict[str, dict[str, Any]] = {}
        self._metrics: dict[str, tuple[Any, Any, Any]] = {}

    def _route_opt(self, path: str) -> dict[str, Any] | None:
        """The route's declared access (scope, owner, rate-limit class, idempotency), read from the app once."""
        opt = self._opt.get(path)
        if opt is None:
            opt = shim.route_opt(self.app, path, "POST")
            if opt is not None:
                self._opt[path] = opt
        return opt

    def _request_metrics(self, path: str) -> tuple[Any, Any, Any] | None:
        """The latency middleware's own series for this route's 201 (made by the app's first request)."""
        found = self._metrics.get(path)
        if found is None:
            found = shim.route_metrics("POST", path, 201)
            if found is not None:
                self._metrics[path] = found
        return found

    async def answer(self, scope: HTTPScope, receive: Receive, send: Send) -> Receive | None:
        """Answer the request and return None, or return the ``receive`` the app must read the request from (the
        body read here given back first), having answered nothing."""
        started = time.perf_counter()
        path = scope["path"]
        if scope["method"] != "POST" or scope.get("query_string"):
            return receive
        if len(scope.get("raw_path") or path.encode()) > self.max_url_bytes:
            return receive
        headers = shim.read_headers(scope, self.max_header_bytes)
        if headers is None or headers.get(shim.CONTENT_TYPE) != b"application/json":
            return receive
        ordering = path == ORDERS
        idempotency_key = None
        if ordering:
            key = headers.get(shim.IDEMPOTENCY_KEY)
            if key is None:
                return receive
            idempotency_key = key.decode("latin-1")
            if not KEY_RE.match(idempotency_key):
                return receive
        opt = self._route_opt(path)
        request_metrics = self._request_metrics(path) if self.measured else None
        if opt is None or (self.measured and request_metrics is None):
            return receive
        principal = shim.remembered_principal(self.state, headers[shim.AUTHORIZATION], opt)
        if principal is None:
            return receive
        body, complete, last = await shim.read_body(receive, self.max_body_bytes)
        given_back = shim.replay(body, complete, last, receive)
        if not complete:
            return given_back  # too large, or the client left: the app answers (413, or nothing)
        try:
            data = decode_body(body or b"null", OrderCreate if ordering else QuoteCreate)
        except DomainError:
            return given_back
        if self.limiter is not None:
            if not self.limiter.spend_leased(principal, opt.get("rate_limit", "default")):
                return given_back
            cast(dict[str, Any], scope)[SPENT] = True
        request_id = shim.request_id(headers.get(REQUEST_ID))
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id.decode())
        try:
            if request_metrics is not None:
                request_metrics[0].inc()
            try:
                if ordering:
                    assert idempotency_key is not None
                    claim = claim_for(self.state, principal.actor, idempotency_key,
                                      fingerprint_of("POST", path, "", body))
                    answer = await order_fast(self.state, principal, data, claim)
                else:
                    quote = await quote_fast(self.state, principal, data, quote_items(data))
                    answer = None if quote is None else msgspec.json.encode(quote)
            except Exception:  # the full stack runs it again and answers as it would (its 500 included)
                log.warning("the purchase fast path failed; the app answers", exc_info=True)
                answer = None
            finally:
                if request_metrics is not None:
                    request_metrics[0].dec()
            if answer is None:
                return given_back
            await send({"type": "http.response.start", "status": 201, "headers": [
                _JSON, (b"content-length", str(len(answer)).encode()), (REQUEST_ID, request_id)]})
            await send({"type": "http.response.body", "body": answer, "more_body": False})
            elapsed = time.perf_counter() - started
            if request_metrics is not None:
                request_metrics[1].inc()
                request_metrics[2].observe(elapsed)
            if self.access:
                access_log.info("request", extra={"method": "POST", "path": path, "status": 201,
                                                  "duration_ms": round(elapsed * 1000, 2)})
            return None
        finally:
            structlog.contextvars.reset_contextvars(**tokens)



async def quote_fast(state: State, principal: auth.Principal, data: QuoteCreate,
                     items: list[service.QuoteItem]) -> QuoteRead | None:
    """The quote by the service's fast path (D90), or None: the ordinary path answers (the route, and this
    module's shim, both ask here first)."""
    return await service.fast_quote(state.fast_engine, principal, user_ref=data.user, items=items,
                                    include_requirements=data.include_requirements, clock=state.clock,
                                    ttl=timedelta(seconds=state.settings.quote_ttl_seconds),
                                    taxed=state.get("stripe") is not None)


def quote_items(data: QuoteCreate) -> list[service.QuoteItem]:
    return [service.QuoteItem(module=i.module, quantity=i.quantity, interval=i.interval) for i in data.items]


async def order_fast(state: State, principal: auth.Principal, data: OrderCreate, claim: FastClaim) -> bytes | None:
    """The order's answer by the service's one-statement fast path (D90), or None: the ordinary path answers."""
    return await service.fast_order(state.fast_engine, bus_in(state.sessionmaker.kw.get("info") or {}), principal,
                                    claim, quote_id=data.quote_id, reason=data.reason, clock=state.clock)
