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


def test_every_target_of_issue_18_finds_its_figure_in_what_the_benchmarks_print() -> None:
    """The suggestion bench's p95 once went missing from the table: its target was keyed by a path it never
    printed. Each target here is matched against the shape its benchmark prints today."""
    printed = "\n".join([
        "summary: " + json.dumps({"http": {"suggest": {"p95_ms": 15.3}, "first_request_ms": 30.1},
                                  "in_process": {"suggest": {"p95_ms": 11.5}}}),
        json.dumps({"check_half_load": {"p99_ms": 6.5}, "bare_half_load": {"p99_ms": 5.4}}),
        "summary: " + json.dumps({"median_ratio": 0.47, "ratios": [0.45, 0.47]}),
        json.dumps({"results": {"one shared budget": {"floor_p95_ms": 115.8}}}),
    ])
    shown = table([("b", path, value) for path, value in figures(printed).items()])
    rows = {line.split()[1]: line for line in shown.splitlines()[2:]}
    assert rows["http.suggest.p95_ms"].endswith("<= 20") and rows["in_process.suggest.p95_ms"].endswith("<= 20")
    assert rows["check_half_load.p99_ms"].endswith("<= 5") and rows["median_ratio"].endswith(">= 0.50")
    assert rows["bare_half_load.p99_ms"].endswith("(floor)") and rows["http.first_request_ms"].endswith("(shown)")
    assert "results.one" in shown  # "one shared budget" is split by spaces; the row is there
