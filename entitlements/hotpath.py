"""The entitlement check's fast path: a warm ``GET /v1/entitlements/check`` answered in front of the app; and
the common usage batch's (``UsageFastPath``, D100, at the end).

The app (``app.asgi.CommerceApp``) hands every request for exactly this path to ``CheckFastPath.answer`` before
routing. The fast path answers only the common case that it can answer exactly as the full stack would: a vendor
key already verified by this process, no ``Origin`` (no CORS), plain query parameters that the route's declared
constraints accept, a warm snapshot the key may read, a lease with hits left. It does what the middleware, the
guard and the handler do for that case (request id, latency metrics, the API key's last use, the rate limit, the
cache metric, the demand signal of a denial) and sends the answer's bytes memoised on the snapshot, with the same
headers. Everything else (errors, cold caches, session tokens, browsers, anything unusual in the URL) returns
False before it has counted or recorded anything, and the full app answers: the route, its OpenAPI document and
its problem answers stay where they are (entitlements.routes).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, cast

import msgspec
import structlog
from litestar import Litestar
from litestar.types import HTTPScope, Receive, Send

from app import metrics, shim
from app.errors import DomainError
from app.http import decode_body, without_patterns
from app.logs import HEADER as REQUEST_ID
from app.logs import access_log
from app.ratelimit.limiter import SPENT, RateLimiter
from app.settings import Settings
from entitlements import service
from entitlements.runtime import Runtime
from entitlements.schemas import UsageBatch, UsageEventIn

PATH = "/v1/entitlements/check"
_QUERY_MEMO_MAX = 4096
_QUANTITY_MAX = 1_000_000_000
# What the route's declared constraints accept, in the raw query string: no percent-escapes and no '+' (both
# would need decoding), user ids as app.params.UserRef, feature keys as entitlements.routes.FeatureQuery.
_USER = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,199}")
_FEATURE = re.compile(rb"[a-z0-9][a-z0-9_.-]{0,59}")
_QUANTITY = re.compile(rb"[1-9][0-9]{0,9}")
_JSON = (b"content-type", b"application/json")


def parse_query(query: bytes) -> tuple[str, str, int] | None:
    """(user, feature, quantity) when the query string is exactly those parameters in their plain form; None for
    anything else (the route's own parsing then decides, including its problem answers)."""
    user = feature = quantity = None
    for part in query.split(b"&"):
        name, eq, value = part.partition(b"=")
        if not eq:
            return None
        if name == b"user" and user is None and _USER.fullmatch(value):
            user = value
        elif name == b"feature" and feature is None and _FEATURE.fullmatch(value):
            feature = value
        elif name == b"quantity" and quantity is None and _QUANTITY.fullmatch(value):
            quantity = int(value)
            if quantity > _QUANTITY_MAX:
                return None
        else:
            return None
    if user is None or feature is None:
        return None
    return user.decode("ascii"), feature.decode("ascii"), 1 if quantity is None else quantity


class CheckFastPath:
    """One per app; ``answer`` is called for every HTTP request whose path is ``PATH``."""

    def __init__(self, app: Litestar, settings: Settings) -> None:
        self.app = app
        self.state = app.state
        self.runtime: Runtime = app.state.entitlements
        self.limiter: RateLimiter | None = app.state.rate_limiter
        self.clock = app.state.clock
        self.max_url_bytes = settings.max_url_bytes
        self.max_header_bytes = settings.max_header_bytes
        self.access = settings.access_log == "on"
        self.measured = settings.metrics != "off"
        self._opt: dict[str, Any] | None = None
        self._queries: dict[bytes, tuple[str, str, int] | None] = {}
        self._metrics: tuple[Any, Any, Any] | None = None

    def _route_opt(self) -> dict[str, Any] | None:
        """The check route's declared access (scope, owner, rate-limit class), read from the app once."""
        if self._opt is None:
            self._opt = shim.route_opt(self.app, PATH, "GET")
        return self._opt

    def _request_metrics(self) -> tuple[Any, Any, Any] | None:
        """The latency middleware's own series for this route (made by its first request through the app)."""
        if self._metrics is None:
            self._metrics = shim.route_metrics("GET", PATH, 200)
        return self._metrics

    def _query(self, query: bytes) -> tuple[str, str, int] | None:
        try:
            return self._queries[query]
        except KeyError:
            pass
        parsed = parse_query(query)
        if len(self._queries) >= _QUERY_MEMO_MAX:
            self._queries.clear()
        self._queries[query] = parsed
        return parsed

    async def answer(self, scope: HTTPScope, send: Send) -> bool:
        """Answer the request and return True, or return False having changed nothing (the app answers)."""
        started = time.perf_counter()
        if scope["method"] != "GET":
            return False
        query: bytes = scope.get("query_string", b"")
        if len(scope.get("raw_path") or PATH) + len(query) > self.max_url_bytes:
            return False
        headers = shim.read_headers(scope, self.max_header_bytes)
        if headers is None:
            return False
        parsed = self._query(query)
        opt = self._route_opt()
        request_metrics = self._request_metrics() if self.measured else None
        if parsed is None or opt is None or (self.measured and request_metrics is None):
            return False
        principal = shim.remembered_principal(self.state, headers[shim.AUTHORIZATION], opt)
        if principal is None:
            return False
        user, feature, quantity = parsed
        now = self.clock.now()
        warm = self.runtime.cached(principal, user, now)
        if warm is None:
            return False
        snap, view = warm
        memo = snap.memo.get((feature, quantity))
        if memo is None:
            if feature not in view.features:
                return False  # 404 feature_not_found: the route's problem answer
            read = self.runtime.answer(snap, view, feature, quantity, now)
            # the memo is full when it has no entry: encode this answer for this request only
            memo = snap.memo.get((feature, quantity)) or (read, Runtime.encode(read))
        read, body = memo
        if self.limiter is not None and not self.limiter.spend_leased(principal, opt.get("rate_limit", "default")):
            return False
        # committed: from here on the request is answered here
        if not read.allowed:
            self.runtime.demand.add(snap.account_id, snap.user_id, feature, now.date())
        metrics.ENTITLEMENT_CACHE.labels(result="hit").inc()
        request_id = shim.request_id(headers.get(REQUEST_ID))
        if request_metrics is not None:
            request_metrics[0].inc()
        await send({"type": "http.response.start", "status": 200, "headers": [
            _JSON, (b"content-length", str(len(body)).encode()), (REQUEST_ID, request_id)]})
        await send({"type": "http.response.body", "body": body, "more_body": False})
        elapsed = time.perf_counter() - started
        if request_metrics is not None:
            request_metrics[0].dec()
            request_metrics[1].inc()
            request_metrics[2].observe(elapsed)
        if self.access:
            tokens = structlog.contextvars.bind_contextvars(request_id=request_id.decode())
            try:
                access_log.info("request", extra={"method": "GET", "path": scope.get("path"), "status": 200,
                                                  "duration_ms": round(elapsed * 1000, 2)})
            finally:
                structlog.contextvars.reset_contextvars(**tokens)
        return True


USAGE_PATH = "/v1/usage"


def _classes(field: str) -> tuple[bytes, bytes]:
    """The ASCII characters ``UsageEventIn.field``'s pattern (``^[first][rest]*$``) admits first and after."""
    struct = msgspec.inspect.type_info(UsageEventIn)
    assert isinstance(struct, msgspec.inspect.StructType)
    info = next(f for f in struct.fields if f.name == field).type
    if isinstance(info, msgspec.inspect.Metadata):  # a description
        info = info.type
    assert isinstance(info, msgspec.inspect.StrType) and info.pattern is not None
    shape = re.fullmatch(r"\^(\[[^\]]+\])(\[[^\]]+\])\*\$", info.pattern)
    assert shape is not None, info.pattern
    first, rest = (bytes(c for c in range(128) if re.fullmatch(cls, chr(c))) for cls in shape.groups())
    assert set(first) <= set(rest) and b"\n" not in rest
    return first, rest


_FIELDS = [(field, *_classes(field)) for field in ("event_id", "user", "feature")]


def _admitted(values: list[str], first: bytes, rest: bytes) -> bool:
    """Whether every value (ASCII, not empty) matches ``^[first][rest]*$`` (the newline msgspec's ``$`` would
    take at the end is refused: the route then decides)."""
    return (not "".join(values).encode().translate(None, rest)
            and not "".join([v[0] for v in values]).encode().translate(None, first))


_LENIENT = msgspec.json.Decoder(without_patterns(UsageBatch), strict=True)


def decode_batch(body: bytes) -> UsageBatch | None:
    """The body as the route decodes it (``decode_body``), or None when the route must answer (every body it
    refuses among them). msgspec checks a string's pattern by calling a regular expression per string, 2,500 calls
    for a batch of 500 (about 2 ms); here the batch is decoded without patterns (``without_patterns``: every other
    rule kept) and each field's pattern (one character class, then another repeated) is checked over all its
    values at once by deleting the admitted characters, the properties' (no NUL) by looking for the only way to
    write a NUL in JSON text."""
    if not body.isascii() or b"\\u0000" in body:  # the route's own decoder, with its checks (and its answers)
        try:
            decoded: UsageBatch = decode_body(body or b"null", UsageBatch)
        except DomainError:
            return None
        return decoded
    try:
        batch = _LENIENT.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None
    events = batch.events
    for field, first, rest in _FIELDS:
        if not _admitted([getattr(e, field) for e in events], first, rest):
            return None
    return cast(UsageBatch, batch)  # the same fields and values: only the class differs

log = logging.getLogger("commerce.usage_fast_path")


class UsageFastPath:
    """``POST /v1/usage`` answered in front of the app (D100): a batch from a vendor key this process already
    remembers, without an Idempotency-Key and without enforcement, whose body decodes into the route's
    ``UsageBatch`` (the same strict decoder), within the URL, header and body limits, with a warm catalog and a
    rate-limit lease with hits left, recorded by ``service.fast_usage`` (two statements on the fast pool). It
    does what the middleware, guards and handler do for that case: the request id, the lease's hit, the key's
    last use, the request metrics and the access line; and sends the bytes the route sends. Everything else --
    Idempotency-Keys, enforcement, session tokens, browsers, bad bodies, unknown users or features, a database
    that refuses a statement -- goes on to Litestar with the body given back, having written nothing, so the
    route, its OpenAPI document and its problem answers stay in ``entitlements.routes``."""

    def __init__(self, app: Litestar, settings: Settings) -> None:
        self.app = app
        self.state = app.state
        self.runtime: Runtime = app.state.entitlements
        self.limiter: RateLimiter | None = app.state.rate_limiter
        self.clock = app.state.clock
        self.max_url_bytes = settings.max_url_bytes
        self.max_header_bytes = settings.max_header_bytes
        self.max_body_bytes = settings.max_body_bytes
        self.backfill_days = settings.usage_backfill_days
        self.access = settings.access_log == "on"
        self.measured = settings.metrics != "off"
        self._opt: dict[str, Any] | None = None
        self._metrics: tuple[Any, Any, Any] | None = None

    async def answer(self, scope: HTTPScope, receive: Receive, send: Send) -> Receive | None:
        """Answer the request and return None, or return the ``receive`` the app must read the request from (the
        body read here given back first), having answered and written nothing."""
        started = time.perf_counter()
        if scope["method"] != "POST" or scope.get("query_string"):
            return receive
        if len(scope.get("raw_path") or USAGE_PATH.encode()) > self.max_url_bytes:
            return receive
        headers = shim.read_headers(scope, self.max_header_bytes)
        if (headers is None or headers.get(shim.CONTENT_TYPE) != b"application/json"
                or shim.IDEMPOTENCY_KEY in headers):
            return receive
        if self._opt is None:
            self._opt = shim.route_opt(self.app, USAGE_PATH, "POST")
        if self.measured and self._metrics is None:
            self._metrics = shim.route_metrics("POST", USAGE_PATH, 200)
        opt, request_metrics = self._opt, self._metrics if self.measured else None
        if opt is None or (self.measured and request_metrics is None):
            return receive
        principal = shim.remembered_principal(self.state, headers[shim.AUTHORIZATION], opt)
        if principal is None:
            return receive
        view = self.runtime.catalog.current()
        if view is None:
            return receive  # the route reads the catalog in its transaction
        body, complete, last = await shim.read_body(receive, self.max_body_bytes)
        given_back = shim.replay(body, complete, last, receive)
        if not complete:
            return given_back  # too large, or the client left: the app answers (413, or nothing)
        data = decode_batch(body)
        if data is None or data.enforce:
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
                result = await service.fast_usage(self.state.fast_engine, principal, data, clock=self.clock,
                                                  view=view, backfill_days=self.backfill_days)
            except Exception:  # the full stack runs it again and answers as it would (see fast_usage)
                log.warning("the usage fast path failed; the app answers", exc_info=True)
                result = None
            finally:
                if request_metrics is not None:
                    request_metrics[0].dec()
            if result is None:
                return given_back
            answer = msgspec.json.encode(result)
            await send({"type": "http.response.start", "status": 200, "headers": [
                _JSON, (b"content-length", str(len(answer)).encode()), (REQUEST_ID, request_id)]})
            await send({"type": "http.response.body", "body": answer, "more_body": False})
            elapsed = time.perf_counter() - started
            if request_metrics is not None:
                request_metrics[1].inc()
                request_metrics[2].observe(elapsed)
            if self.access:
                access_log.info("request", extra={"method": "POST", "path": USAGE_PATH, "status": 200,
                                                  "duration_ms": round(elapsed * 1000, 2)})
            return None
        finally:
            structlog.contextvars.reset_contextvars(**tokens)
