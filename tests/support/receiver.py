"""A webhook receiver on loopback that records requests: a small ASGI app served by granian in the test's loop."""

from __future__ import annotations

import asyncio
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

    def __init__(self, responder: Responder | None = None) -> None:
        self.responder: Responder = responder or (lambda _req: Reply())
        self.requests: list[Received] = []
        self._server = LoopbackServer(self)

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return f"{self._server.base_url}/hooks"

    async def __aenter__(self) -> Receiver:
        await self._server.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
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
