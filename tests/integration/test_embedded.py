"""The embedded PostgreSQL server starts from the wheel, persists its data, is shared and stops cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from app.embedded import start_embedded


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
