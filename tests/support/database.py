"""One embedded PostgreSQL per test session; each test gets a fresh database cloned from a migrated template."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from app.db import create_engine
from app.embedded import EmbeddedServer, start_embedded
from app.migrate import upgrade

TEMPLATE = "commerce_template"
_counter = itertools.count()
RAM = Path("/dev/shm")
RAM_NEEDED = 2 * 1024**3  # a worker's server holds its template and a few live clones of about 10 MB each
RAM_PREFIX = "commerce-test-pg-"


@contextlib.contextmanager
def server_dir(fallback: Path) -> Iterator[Path]:
    """Where a test server keeps its data: in memory (tmpfs) when the machine has room, else ``fallback``.

    Every test clones a database and drops it; on a disk those are file copies and deletions (on this kind of
    machine, a virtual disk mounted with ``discard``: 300-900 ms of mostly kernel time per clone), in memory they
    take 25-50 ms. The server's data is thrown away after the run either way. Directories left by a run that was
    killed are removed by the next one (their process is gone)."""
    if not _roomy(RAM):
        yield fallback
        return
    for stale in RAM.glob(f"{RAM_PREFIX}*"):
        pid = stale.name.removeprefix(RAM_PREFIX).partition("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    path = Path(tempfile.mkdtemp(prefix=f"{RAM_PREFIX}{os.getpid()}-", dir=RAM))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _roomy(path: Path) -> bool:
    try:
        stat = os.statvfs(path)
    except OSError:
        return False
    return os.access(path, os.W_OK) and stat.f_bavail * stat.f_frsize >= RAM_NEEDED


class TestDatabases:
    """Creates per-test databases from a template migrated once with Alembic (not create_all)."""

    __test__ = False  # a helper, not a test class (pytest warned about it in every module importing it)

    def __init__(self, data_dir: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.server: EmbeddedServer = start_embedded(data_dir)

    def url(self, database: str) -> str:
        return self.server.get_uri(database).replace("postgresql://", "postgresql+asyncpg://", 1)

    def dsn(self, database: str) -> str:
        return self.server.get_uri(database)

    async def _admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn("postgres"))

    async def prepare_template(self) -> None:
        conn = await self._admin()
        try:
            # a test server's data is thrown away: no fsync. CREATE DATABASE ... FILE_COPY checkpoints twice, and
            # every test clones one (100 ms -> 15 ms each; DROP 45 -> 8 ms). Crash tests kill our processes, never
            # the machine, so what PostgreSQL guarantees them is unchanged.
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                await conn.execute(f"ALTER SYSTEM SET {setting} = off")
            await conn.execute("SELECT pg_reload_conf()")
            await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
            await conn.execute(f"CREATE DATABASE {TEMPLATE}")
        finally:
            await conn.close()
        engine = create_engine(self.url(TEMPLATE), pool_size=1, max_overflow=0)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    async def create(self, template: str = TEMPLATE) -> str:
        name = f"t{next(_counter)}"
        conn = await self._admin()
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            await conn.execute(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")
        finally:
            await conn.close()
        return name

    async def drop(self, name: str) -> None:
        conn = await self._admin()
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await conn.close()

    def stop(self) -> None:
        self.server.cleanup()


async def wait_for(predicate, *, timeout: float = 2.0, interval: float = 0.01) -> bool:  # type: ignore[no-untyped-def]
    """Poll an async predicate until true or timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if await predicate():
            return True
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(interval)
