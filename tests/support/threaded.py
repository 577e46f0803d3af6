"""ASGI apps served for real on loopback (granian's embedded server) from a thread of the test process.

A browser journey needs the app and the demo host page served over HTTP on their own origins. Starting a
granian process for each costs a Python start-up and an import of the whole app (about 2.5 s of CPU a journey,
two processes each); serving them from a thread of the test worker, with the app's routes built once per
worker (`tests/support/apps.py`), costs a few milliseconds and serves the same bytes: the same app, the same server,
real sockets. The thread has its own event loop, so a test may still call the service synchronously (httpx)
from its own loop while the browser talks to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from litestar import Litestar

from stripe_fake.server import LoopbackServer


@contextlib.contextmanager
def served(apps: Sequence[tuple[Any, int]], *, start_timeout: float = 60.0) -> Iterator[list[str]]:
    """Serve each ``(asgi_app, port)`` on 127.0.0.1 from one thread with its own event loop; a Litestar app's
    lifespan runs around its serving (as a server's lifespan messages would). Yields the base URLs; stops the
    servers (requests still running are cancelled), then the lifespans, when the block ends."""
    ready = threading.Event()
    failure: list[BaseException] = []
    urls: list[str] = []
    loop_box: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def run() -> None:
        stop = asyncio.Event()
        loop_box.append((asyncio.get_running_loop(), stop))
        async with contextlib.AsyncExitStack() as stack:
            for app, port in apps:
                if isinstance(app, Litestar):
                    await stack.enter_async_context(app.lifespan())
                server = LoopbackServer(app, port=port)
                await server.start()
                stack.push_async_callback(server.stop)
                urls.append(server.base_url)
            ready.set()
            await stop.wait()

    def main() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:  # reported to the test's thread
            failure.append(exc)
        finally:
            ready.set()

    thread = threading.Thread(target=main, name="served-apps", daemon=True)
    thread.start()
    if not ready.wait(start_timeout) or failure:
        raise RuntimeError(f"the apps did not start: {failure[0] if failure else 'timed out'}") from (
            failure[0] if failure else None)
    try:
        yield urls
    finally:
        loop, stop = loop_box[0]
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        if failure:
            raise RuntimeError("the apps did not stop cleanly") from failure[0]
