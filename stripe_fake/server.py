"""Serving ASGI apps on loopback with granian's embedded server, inside the caller's event loop.

The same process keeps the state (a test reads the fake's objects and the requests it saw directly), while
every byte still crosses a real socket and a real HTTP server: what the SDK's HTTPX client meets in
production. ``LoopbackServer`` serves any ASGI app (the test webhook receiver uses it too); ``serve`` runs a
``FakeStripe`` for the duration of a block.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

from granian.constants import HTTPModes, Interfaces
from granian.log import LogLevels
from granian.server.embed import Server

from stripe_fake.asgi import ASGIApp, FakeStripeApp, Receive, Scope, Send
from stripe_fake.core import FakeStripe

LOOPBACK = ("127.0.0.1", "::1", "localhost")
# granian configures logging with dictConfig when a server is made; a full dictConfig closes every handler of
# the process (a test run's included), so only adjust its own logger's level, incrementally.
_QUIET_LOGGING: dict[str, Any] = {"version": 1, "incremental": True, "handlers": {}, "formatters": {}, "loggers": {}}


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the server binds it a moment later; a lost race is retried)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class LoopbackServer:
    """``await start()`` / ``await stop()``: ``app`` served by granian on a loopback port of this event loop.

    Requests still running at ``stop`` (a handler that hangs on purpose) are cancelled, so stopping is quick.
    """

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        assert host in LOOPBACK, "development servers listen on loopback only"
        self.app, self.host, self.port = app, host, port
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[Any]] = set()

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def _tracked(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            await self.app(scope, receive, send)
        finally:
            if task is not None:
                self._inflight.discard(task)

    async def start(self) -> None:
        fixed = self.port
        for _ in range(5):  # a free port can be taken between choosing it and binding it
            self.port = fixed or free_port(self.host)
            self._server = Server(self._tracked, address=self.host, port=self.port, interface=Interfaces.ASGINL,
                                  http=HTTPModes.http1, runtime_threads=1, log_enabled=False,
                                  log_level=LogLevels.critical, log_dictconfig=_QUIET_LOGGING)
            self._task = asyncio.create_task(self._server.serve(), name=f"granian-{self.port}")
            if await self._listening():
                return
            with contextlib.suppress(BaseException):
                await self._task
            if fixed:
                break
        raise OSError(f"could not listen on {self.host}:{fixed or 'a free port'}")

    async def _listening(self, *, within: float = 10.0) -> bool:
        assert self._task is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline and not self._task.done():
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(0.01)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True
        return False

    async def stop(self) -> None:
        for task in list(self._inflight):
            task.cancel()
        if self._server is not None:
            self._server.stop()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._server = self._task = None


class FakeStripeServer(LoopbackServer):
    """A ``FakeStripe`` over real HTTP; injected faults become real network failures."""

    def __init__(self, fake: FakeStripe, *, host: str = "127.0.0.1", port: int = 0, hang_seconds: float = 5.0) -> None:
        super().__init__(FakeStripeApp(fake, hang_seconds=hang_seconds), host=host, port=port)
        self.fake = fake

    async def start(self) -> None:
        await super().start()
        self.fake.base_url = self.base_url  # the challenge pages it names are on this server


@contextlib.asynccontextmanager
async def serve(fake: FakeStripe, *, port: int = 0, hang_seconds: float = 5.0) -> AsyncIterator[FakeStripeServer]:
    """Run the fake on 127.0.0.1 for the duration of the block (``port=0``: a free port)."""
    server = FakeStripeServer(fake, port=port, hang_seconds=hang_seconds)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
