"""The embedded PostgreSQL server starts from the wheel, persists its data, is shared and stops cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
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
    assert not pid_file.exists(), "server did not stop"
    server = start_embedded(tmp_path)
    try:
        conn = await asyncpg.connect(server.get_uri("postgres"))
        assert await conn.fetchval("SELECT v FROM kept") == 42
        await conn.close()
    finally:
        server.cleanup()


@pytest.mark.slow
def test_two_processes_share_one_server(tmp_path: Path) -> None:
    script = (
        "import sys, time; from pathlib import Path; from app.embedded import start_embedded;"
        "s = start_embedded(Path(sys.argv[1])); print(open(Path(sys.argv[1])/'pg'/'postmaster.pid').readline().strip(),"
        " flush=True); time.sleep(float(sys.argv[2])); s.cleanup()"
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    first = subprocess.Popen([sys.executable, "-c", script, str(tmp_path), "4"], stdout=subprocess.PIPE, text=True,
                             env=env)
    assert first.stdout is not None
    pid_a = first.stdout.readline().strip()
    second = subprocess.run([sys.executable, "-c", script, str(tmp_path), "0"], capture_output=True, text=True,
                            env=env, timeout=60)
    pid_b = second.stdout.strip().splitlines()[0]
    assert pid_a == pid_b, "the second process started its own server instead of joining"
    first.wait(timeout=60)
    assert not (tmp_path / "pg" / "postmaster.pid").exists()
