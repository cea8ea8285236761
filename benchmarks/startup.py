"""Start-up time of the `kbnn` command and of `import kbnn`, side by side in one run.

    python benchmarks/startup.py [--runs 7]

Rows (median and min wall time over --runs fresh processes, after one warm-up each):
- `python -c pass`: the interpreter alone, the floor;
- `kbnn --help` and `kbnn zoo list`: the console-script path (TensorFlow deferred);
- `--help, eager`: the same parser after the eager `import kbnn` the command used before
  (what `kbnn --help` cost when it imported TensorFlow);
- `import kbnn`: the library import (registers every Keras object; imports TensorFlow).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CLI = "import sys; sys.argv = ['kbnn', *sys.argv[1:]]; from kbnn.cli import main; sys.exit(main())"
EAGER_HELP = (
    "import kbnn; kbnn.register_keras_objects(); from kbnn.cli import build_parser; "
    "build_parser().format_help()"
)
CASES = (
    ("python -c pass", ["-c", "pass"]),
    ("kbnn --help", ["-c", CLI, "--help"]),
    ("kbnn zoo list", ["-c", CLI, "zoo", "list"]),
    ("--help, eager (before)", ["-c", EAGER_HELP]),
    ("import kbnn", ["-c", "import kbnn"]),
)


def _time(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, *argv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    rows = []
    for label, argv in CASES:
        _time(argv)  # warm the page cache
        times = [_time(argv) for _ in range(args.runs)]
        rows.append((label, statistics.median(times), min(times)))
    floor = rows[0][1]
    print(f"| command | median s | min s | x `python -c pass` |  ({args.runs} runs)")
    print("|---|---:|---:|---:|")
    for label, median, best in rows:
        print(f"| {label} | {median:.3f} | {best:.3f} | {median / floor:.1f} |")


if __name__ == "__main__":
    main()
