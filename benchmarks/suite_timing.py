"""Wall time of the test suite's lanes, serial and with pytest-xdist, side by side in one run.

    nice -n 10 python benchmarks/suite_timing.py                      # fast lane, serial vs -n 2
    nice -n 10 python benchmarks/suite_timing.py --lanes fast --workers 0
    python benchmarks/suite_timing.py --slowest 25 --lanes fast       # + the slowest tests
    python benchmarks/suite_timing.py tests/test_optimizers.py        # one file, serial vs -n 2

Prints one row per (lane, workers): wall and CPU seconds (user + system of pytest and its
workers), passed/failed/skipped counts, and the load
average before and after (the machine may be shared: the figures are only comparable within
one run). `--slowest N` adds pytest's N slowest setup/call/teardown phases of the first run.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

LANES = {"fast": ["-m", "not slow"], "slow": ["-m", "slow"], "all": []}
SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)")


def run_lane(lane: str, workers: int, slowest: int, paths: list[str]) -> dict:
    """Run one lane of `pytest -q`; return its wall and CPU seconds and outcome counts."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *LANES[lane], *paths]
    if workers:
        command += ["-n", str(workers)]
    if slowest:
        command += [f"--durations={slowest}"]
    load_before = os.getloadavg()[0]
    cpu_before = _children_cpu()
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    cpu = _children_cpu() - cpu_before
    tail = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    counts = {kind.rstrip("s"): int(n) for n, kind in SUMMARY.findall(tail)}
    return {
        "lane": lane,
        "workers": workers,
        "wall": wall,
        "cpu": cpu,
        "counts": counts,
        "load": (load_before, os.getloadavg()[0]),
        "output": result.stdout,
    }


def _children_cpu() -> float:
    """User + system CPU seconds of this process's finished children (pytest and its workers)."""
    usage = os.times()
    return usage.children_user + usage.children_system


def slowest_section(output: str) -> str:
    """pytest's `slowest durations` block from a run's output."""
    lines = output.splitlines()
    start = next(
        (i for i, line in enumerate(lines) if "slowest" in line and "durations" in line), None
    )
    if start is None:
        return ""
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("=")), len(lines))
    return "\n".join(lines[start:end])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", nargs="+", default=["fast"], choices=sorted(LANES))
    parser.add_argument(
        "--workers",
        nargs="+",
        type=int,
        default=[0, 2],
        help="0 = serial; N = pytest-xdist with N workers (needs pytest-xdist)",
    )
    parser.add_argument("--slowest", type=int, default=0, metavar="N")
    parser.add_argument("paths", nargs="*", help="test files or folders (default: tests/)")
    args = parser.parse_args(argv)

    rows = [
        run_lane(lane, workers, args.slowest if not index else 0, args.paths)
        for index, (lane, workers) in enumerate(
            (lane, workers) for lane in args.lanes for workers in args.workers
        )
    ]
    print(
        f"{'lane':<6} {'workers':>7} {'wall s':>8} {'CPU s':>8} {'passed':>7} {'failed':>7} "
        f"{'skipped':>8} {'load 1-min before/after':>24}"
    )
    for row in rows:
        counts = row["counts"]
        print(
            f"{row['lane']:<6} {row['workers'] or 'serial':>7} {row['wall']:>8.1f} "
            f"{row['cpu']:>8.1f} "
            f"{counts.get('passed', 0):>7} {counts.get('failed', 0) + counts.get('error', 0):>7} "
            f"{counts.get('skipped', 0):>8} {row['load'][0]:>11.1f} / {row['load'][1]:<10.1f}"
        )
    print(f"\n{os.cpu_count()} CPUs visible; python {sys.version.split()[0]}")
    if args.slowest:
        print("\n" + slowest_section(rows[0]["output"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
