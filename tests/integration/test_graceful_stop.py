"""A stopping server lets its workers go at once, even with SDK clients holding change streams open.

granian waits for every open connection before a worker may finish; a change stream stays open for up to an hour,
so each stop (a deploy, Ctrl-C on ``make demo``) waited out the kill timeout and then killed the worker. The
worker now ends its streams when it is told to stop; each client resumes from its cursor on another process.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.clock import SystemClock
from app.settings import Settings
from entitlements.runtime import Runtime
from tests.factories import bearer, make_key
from tests.support.live_server import live_process

pytestmark = pytest.mark.slow
KILL_TIMEOUT = 30  # far longer than a graceful stop takes: a worker killed at its timeout shows as a slow stop


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_open_change_streams_end_when_the_server_stops(settings: Settings, sessionmaker: Any,
                                                             tmp_path: Path, sig: signal.Signals) -> None:
    key = await make_key(sessionmaker, SystemClock())
    assert settings.database_url is not None
    log_path = tmp_path / "server.log"
    with live_process(settings.database_url, tmp_path / "data", settings.token_secret, workers=2,
                      log_path=log_path, kill_timeout=KILL_TIMEOUT) as (base, proc):
        ready = asyncio.Event()
        ends: list[str] = []

        async def listen(client: httpx.AsyncClient) -> None:
            async with client.stream("GET", "/v1/entitlements/changes",
                                     headers={"Accept": "text/event-stream"}) as r:
                assert r.status_code == 200
                async for line in r.aiter_lines():
                    if line == "event: ready":
                        ready.set()
            ends.append("ended")  # the server finished the answer: no reset, no read timeout

        async with httpx.AsyncClient(base_url=base, headers=bearer(key), timeout=60) as client:
            streams = [asyncio.create_task(listen(client)) for _ in range(4)]  # over both workers, most likely
            await asyncio.wait_for(ready.wait(), timeout=10)
            await asyncio.sleep(0.5)  # every stream is open and waiting for changes
            started = time.monotonic()
            proc.send_signal(sig)
            await asyncio.to_thread(proc.wait, KILL_TIMEOUT + 10)
            stopped_in = time.monotonic() - started
            await asyncio.wait_for(asyncio.gather(*streams), timeout=5)
    log = log_path.read_text(errors="replace")
    assert "Killing" not in log, log[-2000:]
    assert stopped_in < 10, f"the server took {stopped_in:.1f} s to stop"
    assert ends == ["ended"] * 4


async def test_a_runtime_started_again_after_a_stop_serves_streams_again(settings: Settings, sessionmaker: Any) -> None:
    runtime = Runtime(settings, SystemClock())
    runtime.changes.close()  # what a stop does
    await runtime.start(sessionmaker)
    try:
        assert not runtime.changes.closed
        assert await runtime.changes.drained(seconds=0.1)  # none open
    finally:
        await runtime.stop()
