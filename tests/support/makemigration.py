"""Generate an Alembic migration by autogenerate against a throwaway embedded PostgreSQL.

Usage: python -m tests.support.makemigration "catalog tables" 0002
Then read and tidy the generated file: autogenerate is a draft, not a verdict.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from alembic import command

from app.db import create_engine
from app.embedded import embedded_url, start_embedded
from app.migrate import alembic_config


async def _generate(url: str, message: str, rev_id: str) -> None:
    engine = create_engine(url)

    def run(sync_conn: Any) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, "head")
        command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)

    async with engine.begin() as conn:
        await conn.run_sync(run)
    await engine.dispose()


def main() -> None:
    message, rev_id = sys.argv[1], sys.argv[2]
    warnings.simplefilter("ignore")
    server = start_embedded(Path(tempfile.mkdtemp()))
    try:
        asyncio.run(_generate(embedded_url(server), message, rev_id))
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
