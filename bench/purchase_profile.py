"""One purchase at a time, in process: statements and CPU time per quote and per order (medians).

    python -m bench.purchase_profile [--purchases 45] [--warmup 5]

The app runs in this process behind Litestar's test client (no HTTP server, no concurrency), on an embedded
PostgreSQL in a temporary folder seeded like ``bench.purchase_bench``; each buyer quotes one module and orders
it with an Idempotency-Key. Statements are counted by a SQLAlchemy event (the rate limiter's and the API key's
bookkeeping left out); CPU is this process's time (app and client). Run it under ``py-spy record`` to see where
an order's time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from app.embedded import embedded_url, start_embedded
from bench.purchase_bench import seed


async def main_async(purchases: int, warmup: int) -> dict[str, float]:
    from litestar.testing import AsyncTestClient
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    tmp = Path(tempfile.mkdtemp(prefix="purchase-profile-"))
    server = start_embedded(tmp)
    url = embedded_url(server)
    try:
        key = await seed(url, purchases + warmup)
        os.environ.update({"DATABASE_URL": url, "COMMERCE_ENV": "test", "COMMERCE_DATA_DIR": str(tmp / "data"),
                           "COMMERCE_TOKEN_SECRET": "bench-secret-" + "b" * 40, "COMMERCE_DISPATCHER": "off",
                           "COMMERCE_SCHEDULER": "off", "COMMERCE_STRIPE": "fake"})
        from app.asgi import app_factory

        count = [0]

        def counted(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if "rate_limit" not in statement and "api_keys" not in statement:
                count[0] += 1

        event.listen(Engine, "before_cursor_execute", counted)
        out: dict[str, list[float]] = {k: [] for k in ("quote_statements", "quote_cpu_ms", "quote_wall_ms",
                                                       "order_statements", "order_cpu_ms", "order_wall_ms")}
        auth = {"Authorization": f"Bearer {key}"}
        async with AsyncTestClient(app_factory()) as client:
            for i in range(purchases + warmup):
                count[0], c0, w0 = 0, time.process_time(), time.perf_counter()
                q = await client.post("/v1/quotes", json={"user": f"m-{i}", "items": [{"module": "reports_basic"}]},
                                      headers=auth)
                quote_statements, c1, w1 = count[0], time.process_time(), time.perf_counter()
                count[0] = 0
                o = await client.post("/v1/orders", json={"quote_id": q.json()["id"]},
                                      headers={**auth, "Idempotency-Key": f"profile-{i}"})
                c2, w2 = time.process_time(), time.perf_counter()
                assert o.status_code == 201 and o.json()["state"] == "fulfilled", o.text
                if i >= warmup:
                    for name, value in (("quote_statements", quote_statements), ("quote_cpu_ms", (c1 - c0) * 1000),
                                        ("quote_wall_ms", (w1 - w0) * 1000), ("order_statements", count[0]),
                                        ("order_cpu_ms", (c2 - c1) * 1000), ("order_wall_ms", (w2 - w1) * 1000)):
                        out[name].append(value)
        event.remove(Engine, "before_cursor_execute", counted)
        return {k: round(statistics.median(v), 1) for k, v in out.items()}
    finally:
        server.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--purchases", type=int, default=45)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(json.dumps(asyncio.run(main_async(args.purchases, args.warmup))))


if __name__ == "__main__":
    main()
