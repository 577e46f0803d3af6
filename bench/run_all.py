"""Run every benchmark once with bounded settings (``make bench``, under 10 minutes on 2 cores) and print one
table of their ratios against the floors they measure in the same run, with the targets beside them.

Each benchmark still prints its own figures as it goes; the table at the end gathers every figure whose name
says it is a ratio (``ratio``, ``*_vs_*``) plus the latency and memory figures that have a target, from the
JSON the benchmarks print. Run one alone (``python -m bench.<name>``) to repeat a section with its defaults.
``bench.usage_scale_bench`` (10 million stored events, about 5 GB and a quarter of an hour) runs alone only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Bench:
    module: str
    args: tuple[str, ...] = ()


BENCHES = [
    Bench("bench.purchase_bench", ("--purchases", "400")),  # 100 swung too much (p95 53-175 ms)
    Bench("bench.entitlements_bench", ("--seconds", "3", "--rounds", "3", "--batches", "20", "--users", "20000")),
    Bench("bench.ingest_bench", ("--rounds", "3", "--batches", "20")),
    Bench("bench.suggest_speed", ("--users", "5000", "--requests", "100")),
    Bench("bench.webhooks_bench", ("--events", "1000")),
    Bench("bench.ratelimit_bench", ("--blocks", "20", "--rounds", "2", "--seconds", "3")),
    Bench("bench.sdk_bench", ("--checks", "100000", "--rounds", "10")),
]

# figure (the end of its dotted path) -> the target it is held to (docs/performance.md)
TARGETS = {
    "one shared budget.ratio": ">= 0.40", "many budgets.ratio": ">= 0.40",
    "one shared budget.p95_ms": "<= 100", "many budgets.p95_ms": "<= 100",
    "check_vs_bare": ">= 0.80", "check_half_load.p99_ms": "<= 5", "bytes_per_snapshot": "<= 1024",
    "in_process.suggest.p95_ms": "<= 20", "http.suggest.p95_ms": "<= 20",
    "median_ratio": ">= 0.50", "ingestion.ratio": ">= 0.50",  # usage batches of 500 against COPY
    # shown beside the targeted figures, held to nothing: the floor's own p95 on the same budget(s), the very first
    # suggestion request of a fresh server process, the bare endpoint's p99 at half its own peak
    "floor_p95_ms": "(floor)", "first_request_ms": "(shown)", "bare_half_load.p99_ms": "(floor)",
}


def json_objects(text: str) -> Iterator[dict[str, Any]]:
    """Every JSON object a benchmark printed (whole documents or ``summary: {...}`` lines), in order."""
    decoder = json.JSONDecoder()
    i = 0
    while (i := text.find("{", i)) != -1:
        try:
            value, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            i += 1
            continue
        if isinstance(value, dict):
            yield value
        i = end


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield prefix, value


def figures(stdout: str) -> dict[str, float]:
    """The ratios and targeted figures of one benchmark's output (a later object overrides an earlier one)."""
    out: dict[str, float] = {}
    for obj in json_objects(stdout):
        for path, value in flatten(obj):
            name = path.rsplit(".", 1)[-1]
            if "ratio" in name or "_vs_" in name or target_of(path) is not None:
                out[path] = value
    # a figure printed alone and again inside a summary is shown once, under its longer (summary) name
    return {p: v for p, v in out.items() if not any(q != p and q.endswith("." + p) for q in out)}


def target_of(path: str) -> str | None:
    return next((t for suffix, t in TARGETS.items() if path == suffix or path.endswith("." + suffix)), None)


def table(rows: list[tuple[str, str, float]]) -> str:
    lines = [f"{'benchmark':<26} {'figure':<52} {'value':>12}  target", "-" * 102]
    for bench, path, value in rows:
        shown = f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
        lines.append(f"{bench:<26} {path[:52]:<52} {shown:>12}  {target_of(path) or ''}")
    return "\n".join(lines)


def main() -> int:
    failed: list[str] = []
    rows: list[tuple[str, str, float]] = []
    start = time.monotonic()
    for bench in BENCHES:
        print(f"== {bench.module} {' '.join(bench.args)}", flush=True)
        done = subprocess.run([sys.executable, "-m", bench.module, *bench.args], stdout=subprocess.PIPE, text=True)
        sys.stdout.write(done.stdout)
        if done.returncode != 0:
            failed.append(bench.module)
        rows += [(bench.module.removeprefix("bench."), path, value) for path, value in figures(done.stdout).items()]
        print(f"   ({time.monotonic() - start:.0f} s so far)", flush=True)
    print()
    print(table(rows))
    print(f"\n{len(BENCHES)} benchmarks in {time.monotonic() - start:.0f} s" +
          (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
