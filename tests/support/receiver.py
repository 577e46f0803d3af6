"""A webhook receiver on loopback that records requests: a small ASGI app served by granian in the test's loop.

With ``tls``, a TLS terminator sits in front of it: it accepts TLS with the given context (so a test sees
the SNI name through the context's callback and the client checks the certificate it serves), then pipes the
decrypted bytes to the ASGI server unchanged. Nothing here parses HTTP by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from stripe_fake.asgi import Receive, Scope, Send, lifespan, read_body, respond
from stripe_fake.server import LoopbackServer


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


Responder = Callable[[Received], Reply]


class Receiver:
    """``async with Receiver() as r``: ``r.url``; ``r.responder`` picks each answer; ``r.requests`` logs them."""

    def __init__(self, responder: Responder | None = None, *, tls: ssl.SSLContext | None = None) -> None:
        self.responder: Responder = responder or (lambda _req: Reply())
        self.requests: list[Received] = []
        self.tls = tls
        self._server = LoopbackServer(self)
        self._terminator: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._tls_port = 0

    @property
    def port(self) -> int:
        return self._tls_port or self._server.port

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/hooks"

    async def __aenter__(self) -> Receiver:
        await self._server.start()
        if self.tls is not None:
            self._terminator = await asyncio.start_server(self._terminate, "127.0.0.1", 0, ssl=self.tls)
            self._tls_port = self._terminator.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._terminator is not None:
            self._terminator.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        await self._server.stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        request = Received(method=str(scope["method"]), path=str(scope["path"]) + (f"?{query}" if query else ""),
                           headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
                           body=await read_body(receive) or b"")
        self.requests.append(request)
        reply = self.responder(request)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        await respond(send, reply.status, reply.body, reply.headers)

    async def _terminate(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        """One TLS connection: its plaintext is piped both ways to the ASGI server."""
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        try:
            upstream_r, upstream_w = await asyncio.open_connection("127.0.0.1", self._server.port)
            await asyncio.gather(_pipe(client_r, upstream_w), _pipe(upstream_r, client_w))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._pipes.discard(task)
            client_w.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            sink.close()
