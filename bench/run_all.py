"""Run every benchmark once with its default, bounded settings (``make bench``); each prints its figures.

The figures recorded in docs/performance.md come from these scripts; run one alone to repeat a section.
``bench.usage_scale_bench`` (10 million stored events, about 5 GB and a quarter of an hour) runs alone only.
A progress bar on a terminal says which benchmark runs and how long the whole has taken.
"""

from __future__ import annotations

import subprocess
import sys

BENCHES = [
    "bench.entitlements_bench",
    "bench.ingest_bench",
    "bench.purchase_bench",
    "bench.webhooks_bench",
    "bench.ratelimit_bench",
    "bench.sdk_bench",
]


def main() -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    failed = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("benchmarks", total=len(BENCHES))
        for module in BENCHES:
            progress.update(task, description=module)
            print(f"== {module}", flush=True)
            failed += subprocess.call([sys.executable, "-m", module]) != 0
            progress.advance(task)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
