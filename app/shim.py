"""What the fast paths in front of the app (the entitlement check, D92; the common quote and order, D96) share:
reading the few headers they need, the caller's remembered principal, the route's declared access and the
latency middleware's series. Each returns None whenever the full stack must answer instead, so a fast path
steps aside before it has counted or recorded anything."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from litestar.types import HTTPScope, Receive, ReceiveMessage

from app import auth, keys
from app.errors import DomainError
from app.ids import new_id
from app.logs import HEADER as REQUEST_ID
from app.logs import SANE_ID
from app.observability import METRICS_APP, METRICS_PREFIX

AUTHORIZATION = b"authorization"
CONTENT_TYPE = b"content-type"
IDEMPOTENCY_KEY = b"idempotency-key"
_ONCE = (AUTHORIZATION, CONTENT_TYPE, IDEMPOTENCY_KEY)


def read_headers(scope: HTTPScope, max_header_bytes: int) -> dict[bytes, bytes] | None:
    """The request's Authorization, Content-Type, Idempotency-Key and request id (the first one), or None when
    the full stack must answer: one of the first three given twice, an ``Origin`` (CORS is the middleware's), the
    headers over their limit, or no Authorization."""
    found: dict[bytes, bytes] = {}
    size = 0
    for name, value in scope["headers"]:
        size += len(name) + len(value)
        if name in _ONCE:
            if name in found:
                return None
            found[name] = value
        elif name == REQUEST_ID:
            found.setdefault(name, value)
        elif name == b"origin":
            return None
    if AUTHORIZATION not in found or size > max_header_bytes:
        return None
    return found


def remembered_principal(state: State, authorization: bytes, opt: dict[str, Any]) -> auth.Principal | None:
    """The principal of a ``Bearer`` vendor key this process has already verified, if the route's declared access
    (``opt``) admits it; None for anything else (a cold or unknown key, a session token, a refusal)."""
    scheme, _, token = authorization.decode("latin-1").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or keys.split_token(token) is None:
        return None
    principal = auth.remembered(state, keys.token_sha256(token))
    if principal is None:
        return None
    try:
        auth.authorize(principal, opt)
    except DomainError:
        return None
    return principal


def request_id(incoming: bytes | None) -> bytes:
    """The caller's request id when it is a sane one, else a new one (as the request-id middleware does)."""
    if incoming is not None and SANE_ID.match(incoming.decode("latin-1")):
        return incoming
    return new_id("req").encode()


def route_opt(app: Litestar, path: str, method: str) -> dict[str, Any] | None:
    """The declared access of the route at ``path`` for ``method`` (scope, owner, rate-limit class)."""
    for route in app.routes:
        if route.path == path:
            handlers = getattr(route, "route_handler_map", {})
            if method in handlers:
                opt: dict[str, Any] = handlers[method][0].opt
                return opt
    return None


def route_metrics(method: str, path: str, status: int) -> tuple[Any, Any, Any] | None:
    """The latency middleware's own series for this route and answer (in progress, count, duration), once the
    app's first request made them; None before."""
    from litestar.plugins.prometheus.middleware import PrometheusMiddleware

    made = PrometheusMiddleware._metrics
    names = [f"{METRICS_PREFIX}_{n}" for n in ("requests_in_progress", "requests_total", "request_duration_seconds")]
    if not all(n in made for n in names):
        return None
    # in progress is labelled with the status the middleware starts from (200), the rest with the answer's
    return (made[names[0]].labels(method, path, 200, METRICS_APP),
            made[names[1]].labels(method, path, status, METRICS_APP),
            made[names[2]].labels(method, path, status, METRICS_APP))


async def read_body(receive: Receive, limit: int) -> tuple[bytes, bool, ReceiveMessage | None]:
    """The request's body, whether it is all there and within ``limit``, and the message that is not a body part
    when the client left meanwhile."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False, message
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), size <= limit, None
        if size > limit:
            return b"".join(chunks), False, None


def replay(body: bytes, complete: bool, last: ReceiveMessage | None, receive: Receive) -> Receive:
    """``receive`` with what was read from it given back first: the body as one message, then the disconnect."""
    pending: list[Any] = [{"type": "http.request", "body": body, "more_body": not complete or last is not None}]
    if last is not None:
        pending.append(last)
    pending.reverse()

    async def replayed() -> Any:
        if pending:
            return pending.pop()
        return await receive()

    return replayed
