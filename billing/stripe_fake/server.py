"""The fake over real HTTP on 127.0.0.1 (asyncio streams; HTTP/1.1, one request per connection)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from billing.stripe_fake.core import FakeStripe, FaultKind

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 402: "Request Failed", 404: "Not Found",
            409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error"}
MAX_BODY = 1_048_576


class FakeStripeServer:
    """Serves a ``FakeStripe`` on a loopback port; faults become real network failures."""

    def __init__(self, fake: FakeStripe, *, host: str = "127.0.0.1", port: int = 0, hang_seconds: float = 5.0) -> None:
        assert host in ("127.0.0.1", "::1", "localhost"), "the fake listens on loopback only"
        self.fake, self.host, self.port, self.hang_seconds = fake, host, port, hang_seconds
        self._server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            length = min(int(headers.get("content-length", "0") or 0), MAX_BODY)
            body = (await reader.readexactly(length)).decode() if length else ""
            parts = urlsplit(target)
            reply = self.fake.handle(method, parts.path, parts.query, headers, body)
            self.fake.after_request()
            if reply.fault is FaultKind.TIMEOUT:
                await asyncio.sleep(self.hang_seconds)
                return
            if reply.fault is not None:
                return  # connection error or lost response: close without an answer
            out = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Error')}",
                   f"Content-Length: {len(reply.body)}", "Connection: close"]
            out += [f"{k}: {v}" for k, v in reply.headers.items()]
            writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + reply.body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def serve(fake: FakeStripe, *, port: int = 0, hang_seconds: float = 5.0) -> AsyncIterator[FakeStripeServer]:
    """Run the fake on 127.0.0.1 for the duration of the block (``port=0``: a free port)."""
    server = FakeStripeServer(fake, port=port, hang_seconds=hang_seconds)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
