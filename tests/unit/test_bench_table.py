"""make bench's one table: ratios and targeted figures gathered from what each benchmark prints."""

from __future__ import annotations

import json

from bench.run_all import figures, table


def test_the_table_gathers_ratios_and_targeted_figures_once_each() -> None:
    printed = "\n".join([
        "== warming up", json.dumps({"bytes_per_snapshot": 964.0, "rps": 10.0}),
        json.dumps({"check_vs_bare": 0.64, "bare": {"rps": 2000.0}}),
        "summary: " + json.dumps({"in_process": {"bytes_per_snapshot": 964.0}, "ingestion": {"ratio": 0.48}}),
        json.dumps({"results": {"many budgets": {"ratio": 0.02, "p95_ms": 3500.0, "purchases_per_s": 6.2}}}),
    ])
    found = figures(printed)
    assert found == {"check_vs_bare": 0.64, "in_process.bytes_per_snapshot": 964.0, "ingestion.ratio": 0.48,
                     "results.many budgets.ratio": 0.02, "results.many budgets.p95_ms": 3500.0}
    shown = table([("b", path, value) for path, value in found.items()])
    assert ">= 0.40" in shown and ">= 0.80" in shown and "<= 1024" in shown and "rps" not in shown
