"""CPU seconds of processes, for the benchmarks' CPU-per-operation figures (a loaded machine inflates them far
less than wall time)."""

from __future__ import annotations

import psutil


def process_cpu(pid: int) -> float:
    """User + system CPU seconds the process has used so far; 0 when it is gone."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


def tree_cpu(root: int) -> float:
    """User + system CPU seconds of ``root`` and its live descendants, plus those of children each of them has
    reaped (a closed PostgreSQL connection's backend is counted by the postmaster that waited for it)."""
    try:
        process = psutil.Process(root)
        tree = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for p in tree:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue  # exited meanwhile: its parent's reaped-children figures count it
        total += t.user + t.system + t.children_user + t.children_system
    return total
