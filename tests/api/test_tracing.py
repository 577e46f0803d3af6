"""COMMERCE_TRACING=on: spans for requests, SQL, webhook deliveries (outgoing HTTP) and jobs; off by default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient


def test_a_traced_journey_has_request_sql_delivery_and_job_spans(database_url: str, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "tests.support.traced_journey", database_url, str(tmp_path)],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"},
                         check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    spans = json.loads(out.stdout.strip().splitlines()[-1])
    names = [s["name"] for s in spans]
    assert "GET /v1/accounts" in names, names
    sql = [s for s in spans if s["attributes"].get("db.system") == "postgresql"]
    assert sql and all("db.statement.parameters" not in s["attributes"] for s in sql)
    posts = [s for s in spans if s["kind"] == "CLIENT" and s["name"].startswith("POST")]
    assert posts, "no span for the webhook delivery"
    assert "job idempotency_purge" in names


async def test_tracing_is_off_by_default(client: AsyncTestClient[Any]) -> None:
    assert "OpenTelemetryPlugin" not in {type(p).__name__ for p in client.app.plugins}
