"""Real Chromium for the browser tests (Debian's package, driven by Playwright) and the servers they open.

Browser downloads are impossible on these machines: Playwright launches the system Chromium through
``executable_path``. When it is missing the tests fail at once with the command to run; they never skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
INSTALL_HINT = "apt-get update && apt-get install -y chromium   (or: make test, which installs it when run as root)"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def chromium_path() -> str:
    """The system Chromium, or a failure naming the exact command that installs it."""
    for candidate in (os.environ.get("CHROMIUM"), *CHROMIUM_CANDIDATES, shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(f"Chromium is not installed; browser tests need it. Run: {INSTALL_HINT}")


@contextlib.contextmanager
def serve(target: str, *, port: int, env: dict[str, str], ready_path: str = "/") -> Iterator[str]:
    """Run an ASGI app factory under granian on a loopback port until the block ends; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1", "--log-level", "warning", "--workers-kill-timeout", "1", target],
        env={**os.environ, "PYTHONWARNINGS": "ignore", **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + ready_path, timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"{target} did not start: {err[-2000:]}")
            time.sleep(0.05)
        yield base
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
