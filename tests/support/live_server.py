"""The app served for real by granian on a free loopback port, against one test database."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def live_server(database_url: str, data_dir: Path, token_secret: str, workers: int = 1,
                extra_env: dict[str, str] | None = None, target: str = "app.asgi:app_factory",
                log_path: Path | None = None, port: int | None = None) -> Iterator[str]:
    """Run ``commerce``'s ASGI app under granian; yields the base URL; stops the server afterwards.

    The server's log (granian's and the app's, both on stderr) goes to ``log_path`` (default: server.log in
    ``data_dir``), never to a pipe that nobody reads and a chatty server could fill until it blocks.
    ``port``: serve there (a restart on the same address); a free port by default.
    """
    with live_process(database_url, data_dir, token_secret, workers, extra_env, target, log_path,
                      port) as (base, _proc):
        yield base


@contextlib.contextmanager
def live_process(database_url: str, data_dir: Path, token_secret: str, workers: int = 1,
                 extra_env: dict[str, str] | None = None, target: str = "app.asgi:app_factory",
                 log_path: Path | None = None, port: int | None = None, kill_timeout: int = 1,
                 ) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``live_server`` that also yields the granian process, leader of its own process group (kill it whole).
    ``kill_timeout``: seconds granian gives a stopping worker before it kills it."""
    port = port or free_port()
    env = {
        **os.environ, "DATABASE_URL": database_url, "COMMERCE_ENV": "test", "COMMERCE_DATA_DIR": str(data_dir),
        "COMMERCE_TOKEN_SECRET": token_secret, "COMMERCE_DISPATCHER": "off", "COMMERCE_SCHEDULER": "off",
        "PYTHONWARNINGS": "ignore",
        **({} if "STRIPE_SECRET_KEY" in (extra_env or {}) else {"COMMERCE_STRIPE": "fake"}),
        **(extra_env or {}),
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_path or data_dir / "server.log"
    log_file = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(workers), "--log-level", "warning",
         # a worker still holding a client's change stream at a stop is killed after a second, not waited for
         "--workers-kill-timeout", str(kill_timeout), target],
        env=env, stdout=subprocess.DEVNULL, stderr=log_file, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"live server did not start: {log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # granian workers left behind by a killed leader
        log_file.close()
