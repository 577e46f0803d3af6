"""Run every benchmark once with its default, bounded settings (``make bench``); each prints its figures.

The figures recorded in docs/performance.md come from these scripts; run one alone to repeat a section.
"""

from __future__ import annotations

import subprocess
import sys

BENCHES = ["bench.entitlements_bench", "bench.purchase_bench", "bench.webhooks_bench", "bench.ratelimit_bench"]


def main() -> int:
    failed = 0
    for module in BENCHES:
        print(f"== {module}", flush=True)
        failed += subprocess.call([sys.executable, "-m", module]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
