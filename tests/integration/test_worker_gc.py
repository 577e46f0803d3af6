"""A server worker's app is frozen out of the cycle collector's reach twice: once built, and again once its startup
is done (what the startup makes -- engines, caches, the catalog, the warm-up's answers -- is otherwise scanned by
every full collection while serving: 9-18 ms stalls in the check bench's half-load phase)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_WORKER = """
import asyncio, gc, json
from app.asgi import app_factory

async def main():
    app = app_factory()
    built = gc.get_freeze_count()
    queue = asyncio.Queue()
    queue.put_nowait({"type": "lifespan.startup"})
    started = asyncio.Event()
    async def send(message):
        if message["type"].startswith("lifespan.startup"):
            started.set()
    life = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, queue.get, send))
    await started.wait()
    ready = gc.get_freeze_count()
    queue.put_nowait({"type": "lifespan.shutdown"})
    await life
    print(json.dumps({"built": built, "ready": ready}))

asyncio.run(main())
"""


def test_a_worker_freezes_what_its_startup_made(database_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "COMMERCE_ENV": "test", "COMMERCE_DATA_DIR": str(tmp_path),
           "COMMERCE_TOKEN_SECRET": "worker-gc-" + "x" * 40, "COMMERCE_DISPATCHER": "off",
           "COMMERCE_SCHEDULER": "off", "COMMERCE_STRIPE": "fake", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", _WORKER], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["built"] > 100_000  # the app as built: frozen by app_factory
    assert counts["ready"] > counts["built"]  # and what the startup added, frozen before the first request
