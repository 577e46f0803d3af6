"""The fake as an ASGI application: Stripe's API paths answered by a ``FakeStripe``, plus control endpoints.

Control endpoints (JSON, for tests and the demo; the fake only ever listens on loopback):

* ``POST /_control/faults`` ``{"kind": "timeout", "method": "POST", "path": "/v1/payment_intents", "times": 1}``
  makes the next matching requests suffer a fault (``DELETE /_control/faults`` clears them);
* ``POST /_control/deliver`` delivers the events not delivered yet to the webhook targets, now.

A fault is a real network failure: a timeout hangs the connection; a connection error or a lost answer
starts a response and aborts the connection mid-body, which an HTTP client reports as a broken connection.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal, NoReturn

import msgspec

from stripe_fake.challenge import answer_challenge, challenge_page
from stripe_fake.core import FakeStripe, FaultKind

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY = 1_048_576
# Stripe's API answers browsers from any origin (Stripe.js calls it with the publishable key, never a cookie).
CORS = {"access-control-allow-origin": "*"}
PREFLIGHT = {**CORS, "access-control-allow-methods": "GET, POST, DELETE",
             "access-control-allow-headers": "Authorization, Content-Type, Idempotency-Key, Stripe-Version",
             "access-control-max-age": "600"}
_CHALLENGE = re.compile(r"/_fake/3ds/([A-Za-z0-9_]+)")


class FaultIn(msgspec.Struct, forbid_unknown_fields=True):
    kind: Literal["timeout", "connection_error", "server_error", "lost_response"]
    method: str | None = None
    path: str | None = None
    times: int = 1


class ConnectionDropped(Exception):
    """Raised after a response has started: the server aborts the connection (the simulated network failure)."""


async def read_body(receive: Receive, *, limit: int = MAX_BODY) -> bytes | None:
    """The request body, or None when it is larger than ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def respond(send: Send, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    """One complete HTTP response."""
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
           if k.lower() != "content-length"]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def drop_connection(send: Send) -> NoReturn:
    """Start an answer and abort it: the client sees the connection break before the body is complete."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"{", "more_body": True})
    raise ConnectionDropped("simulated network failure")


async def lifespan(receive: Receive, send: Send) -> None:
    """Nothing to start or stop: acknowledge the server's lifespan messages."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class FakeStripeApp:
    """ASGI app over one ``FakeStripe``; a ``timeout`` fault holds the request ``hang_seconds``, then drops it."""

    def __init__(self, fake: FakeStripe, *, hang_seconds: float = 5.0) -> None:
        self.fake, self.hang_seconds = fake, hang_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        if body is None:
            await respond(send, 413, b'{"error": {"type": "invalid_request_error", "message": "Too large."}}',
                          {"content-type": "application/json"})
            return
        method, path = str(scope["method"]), str(scope["path"])
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        if path.startswith("/_control/"):
            await self._control(send, method, path, body)
            return
        if method == "OPTIONS":
            await respond(send, 204, b"", PREFLIGHT)
            return
        challenge = _CHALLENGE.fullmatch(path)
        if challenge is not None and method in ("GET", "POST"):
            status, page = (challenge_page(self.fake, challenge.group(1), query) if method == "GET"
                            else answer_challenge(self.fake, challenge.group(1), body.decode("utf-8", "replace")))
            self.fake.after_request()
            await respond(send, status, page, {"content-type": "text/html; charset=utf-8", "cache-control": "no-store"})
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        reply = self.fake.handle(method, path, query, headers, body.decode("utf-8", "replace"))
        self.fake.after_request()
        if reply.fault is FaultKind.TIMEOUT:
            await asyncio.sleep(self.hang_seconds)
        if reply.fault is not None:
            await drop_connection(send)  # raises: the server aborts the connection
        await respond(send, reply.status, reply.body, {**reply.headers, **CORS})

    async def _control(self, send: Send, method: str, path: str, body: bytes) -> None:
        json = {"content-type": "application/json"}
        if path == "/_control/faults" and method == "POST":
            try:
                fault = msgspec.json.decode(body, type=FaultIn)
            except msgspec.DecodeError as exc:
                await respond(send, 400, msgspec.json.encode({"error": str(exc)}), json)
                return
            self.fake.inject(fault.kind, method=fault.method, path=fault.path, times=max(1, fault.times))
            await respond(send, 204, b"")
        elif path == "/_control/faults" and method == "DELETE":
            self.fake.clear_faults()
            await respond(send, 204, b"")
        elif path == "/_control/deliver" and method == "POST":
            delivered = await self.fake.deliver_events()
            await respond(send, 200, msgspec.json.encode({"delivered": delivered}), json)
        else:
            await respond(send, 404, b'{"error": "unknown control endpoint"}', json)
