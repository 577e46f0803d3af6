"""The embedded PostgreSQL server starts from the wheel, persists its data, is shared and stops cleanly."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from app.embedded import HANDLES, forget_dead_users, start_embedded
from tests.support.live_server import free_port


@pytest.mark.slow
async def test_embedded_server_persists_data_across_restarts(tmp_path: Path) -> None:
    server = start_embedded(tmp_path)
    conn = await asyncpg.connect(server.get_uri("postgres"))
    await conn.execute("CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
    await conn.close()
    pid_file = tmp_path / "pg" / "postmaster.pid"
    assert pid_file.exists()
    server.cleanup()
    assert _gone(pid_file), "server did not stop"
    server = start_embedded(tmp_path)
    try:
        conn = await asyncpg.connect(server.get_uri("postgres"))
        assert await conn.fetchval("SELECT v FROM kept") == 42
        await conn.close()
    finally:
        server.cleanup()


def _gone(path: Path, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return not path.exists()


@pytest.mark.slow
def test_two_processes_share_one_server(tmp_path: Path) -> None:
    # Each process prints the postmaster pid it is using, then holds the server until a marker file appears.
    script = (
        "import sys, time; from pathlib import Path; from app.embedded import start_embedded;"
        "d = Path(sys.argv[1]); s = start_embedded(d);"
        "print(open(d/'pg'/'postmaster.pid').readline().strip(), flush=True);"
        "marker = Path(sys.argv[2]); t = time.monotonic();"
        "[time.sleep(0.05) for _ in iter(lambda: marker.exists() or time.monotonic() - t > 60, True)];"
        "s.cleanup()"
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    hold_first, release_second = tmp_path / "release-first", tmp_path / "release-second"
    data = tmp_path / "data"
    first = subprocess.Popen([sys.executable, "-c", script, str(data), str(hold_first)], stdout=subprocess.PIPE,
                             text=True, env=env)
    assert first.stdout is not None
    pid_a = first.stdout.readline().strip()
    second = subprocess.Popen([sys.executable, "-c", script, str(data), str(release_second)],
                              stdout=subprocess.PIPE, text=True, env=env)
    assert second.stdout is not None
    pid_b = second.stdout.readline().strip()
    assert pid_a and pid_a == pid_b, "the second process started its own server instead of joining"
    release_second.touch()
    second.wait(timeout=60)
    assert (data / "pg" / "postmaster.pid").exists(), "the server stopped while the first process still used it"
    hold_first.touch()
    first.wait(timeout=60)
    assert _gone(data / "pg" / "postmaster.pid"), "the server outlived its last user"


# --- crash recovery: real `commerce serve` processes ---------------------------------------------------------

def _serve(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "STRIPE_SECRET_KEY")}
    env.update({"COMMERCE_DATA_DIR": str(data_dir), "COMMERCE_PORT": str(port), "COMMERCE_STRIPE": "fake",
                "COMMERCE_DISPATCHER": "off", "COMMERCE_ENV": "test", "PYTHONWARNINGS": "ignore"})
    return subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)


def _ready(proc: subprocess.Popen[bytes], port: int, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, (proc.stderr.read().decode() if proc.stderr else "")[-2000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("commerce serve did not become ready")


def _postmaster(data: Path) -> int:
    return int((data / "pg" / "postmaster.pid").read_text().splitlines()[0])


def _users(data: Path) -> list[int]:
    return [int(p) for p in json.loads((data / "pg" / HANDLES).read_text())]


def _dead(pids: list[int], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.slow
def test_a_killed_serve_is_recovered_on_start_and_a_clean_stop_leaves_no_postmaster(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    first = _serve(data, port)
    try:
        _ready(first, port)
        postmaster = _postmaster(data)
        workers = [c.pid for c in psutil.Process(first.pid).children(recursive=True)]
        assert workers and _users(data) == [first.pid]
        os.kill(first.pid, signal.SIGKILL)  # kill -9 the serve process alone, as an operator would
        first.wait(timeout=10)
        assert _dead(workers), "granian workers outlived their killed parent (still serving, holding locks)"
        assert psutil.pid_exists(postmaster) and _users(data) == [first.pid]  # the dead pid stays in the list
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)

    second = _serve(data, port)
    try:
        _ready(second, port)
        assert _postmaster(data) == postmaster, "the running postmaster was not reused"
        assert _users(data) == [second.pid], "the dead user was not forgotten"
        second.send_signal(signal.SIGTERM)  # a clean stop
        assert second.wait(timeout=60) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(second.pid, signal.SIGKILL)
    assert _dead([postmaster]), "the postmaster outlived the last clean shutdown"
    assert not (data / "pg" / "postmaster.pid").exists()


@pytest.mark.slow
def test_a_postmaster_pid_file_naming_another_process_is_stale(tmp_path: Path) -> None:
    server = start_embedded(tmp_path)
    server.cleanup()
    pid_file = tmp_path / "pg" / "postmaster.pid"
    assert _gone(pid_file)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # after a crash and a reboot, the recorded pid may belong to anything
        pid_file.write_text(f"{sleeper.pid}\n{tmp_path / 'pg'}\n1700000000\n5432\n{tmp_path / 'pg'}\n\n"
                            "  1 2\nready   \n")
        server = start_embedded(tmp_path)
        try:
            assert _postmaster(tmp_path) != sleeper.pid
        finally:
            server.cleanup()
        assert _gone(pid_file)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_only_dead_users_are_forgotten(tmp_path: Path) -> None:
    (tmp_path / HANDLES).write_text(json.dumps([os.getpid(), 999_999_999, os.getppid()]))
    assert forget_dead_users(tmp_path) == [999_999_999]
    assert json.loads((tmp_path / HANDLES).read_text()) == [os.getpid(), os.getppid()]
    assert forget_dead_users(tmp_path) == []


