"""Build the aarch64 runner that `kbnn bench --target arm64` uses (recipe, not run in CI).

The runner is a static aarch64 build of the TFLite interpreter with every builtin op and
LCE v0.16.0's optimized ARM kernels (no XNNPACK), plus `harness/lce_run_full.cc`, which runs a
flatbuffer over raw float32 inputs and marks operator boundaries for the instruction-count
plugin (`insncount.c`). This script clones the pinned sources below, lays them out as
`harness/Makefile.full` expects and cross-compiles with `aarch64-linux-gnu-g++`:

    apt-get install -y git make g++-aarch64-linux-gnu libeigen3-dev qemu-user
    python benchmarks/arm64_runner/build.py --out ~/arm64-runner     # about 35 min on 2 cores
    export KBNN_ARM64_RUNNER=~/arm64-runner

**It needs the network** (git clone from GitHub), so it cannot run on the offline CI machines,
which use the prebuilt runner in `../shared/arm64` instead; the tests check its arguments,
its source list and the commands it would run (`--dry-run`).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Source:
    """A pinned git checkout and where the Makefile finds it under the source root."""

    name: str
    url: str
    rev: str
    #: (link under the source root, path inside the checkout) pairs.
    links: tuple[tuple[str, str], ...]


#: The sources `../shared/arm64` was built from (its README), pinned.
SOURCES = (
    Source(
        "litert",
        "https://github.com/google-ai-edge/LiteRT.git",
        "f67457790c9c2ab67347d6fe53270e8d3df20868",
        (("tflite", "tflite"), ("tensorflow/lite", "tflite")),
    ),
    Source(
        "compute-engine",
        "https://github.com/larq/compute-engine.git",
        "v0.16.0",
        (("lce", "."),),
    ),
    Source("ruy", "https://github.com/google/ruy.git", "3286a34", (("ruy", "ruy"),)),
    Source("gemmlowp", "https://github.com/google/gemmlowp.git", "16e8662", (("gemmlowp", "."),)),
    Source(
        "flatbuffers",
        "https://github.com/google/flatbuffers.git",
        "v25.9.23",
        (("flatbuffers", "."),),
    ),
    Source(
        "abseil-cpp",
        "https://github.com/abseil/abseil-cpp.git",
        "20260526.rc2",
        (("absl", "absl"),),
    ),
)

TOOLS = ("git", "make", "aarch64-linux-gnu-g++", "aarch64-linux-gnu-gcc")
DEFAULT_EIGEN = "/usr/include/eigen3"  # Debian's libeigen3-dev (Eigen 3.4)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Cross-compile the aarch64 LCE runner.")
    parser.add_argument("--out", required=True, help="runner directory to create")
    parser.add_argument("--src", help="where to clone the sources (default: OUT/src)")
    parser.add_argument("--eigen", default=DEFAULT_EIGEN, help="Eigen 3.4 include directory")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="make -j")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be >= 1")
    args.out = Path(args.out).expanduser().resolve()
    args.src = Path(args.src).expanduser().resolve() if args.src else args.out / "src"
    return args


def clone_commands(source: Source, src: Path) -> list[list[str]]:
    """Commands that put `source` at `src/_checkouts/<name>` at its pinned revision."""
    target = src / "_checkouts" / source.name
    return [
        ["git", "clone", "--filter=blob:none", "--no-checkout", source.url, str(target)],
        ["git", "-C", str(target), "checkout", "--detach", source.rev],
    ]


def link_plan(src: Path) -> list[tuple[Path, Path]]:
    """(link, target) pairs giving the layout `harness/Makefile.full` compiles from."""
    plan = []
    for source in SOURCES:
        for link, inside in source.links:
            plan.append((src / link, (src / "_checkouts" / source.name / inside).resolve()))
    return plan


def make_command(args) -> list[str]:
    return [
        "make", "-C", str(args.src / "_harness"), "-f", "Makefile.full", f"-j{args.jobs}",
        f"SRC_ROOT={args.src}", f"EIGEN={args.eigen}", f"OUT={args.src / '_build'}",
    ]  # fmt: skip


def main(argv=None) -> int:
    args = parse_args(argv)
    commands = [c for source in SOURCES for c in clone_commands(source, args.src)]
    if args.dry_run:
        for command in commands + [make_command(args)]:
            print(shlex.join(command))
        for link, target in link_plan(args.src):
            print(f"ln -s {target} {link}")
        return 0
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing or not Path(args.eigen, "Eigen").is_dir():
        print(f"build.py: missing {', '.join(missing) or 'Eigen headers'}: apt-get install -y "
              "git make g++-aarch64-linux-gnu libeigen3-dev", file=sys.stderr)  # fmt: skip
        return 2
    for command in commands:
        subprocess.run(command, check=True)
    for link, target in link_plan(args.src):
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(target, target_is_directory=True)
    shutil.copytree(HERE / "harness", args.src / "_harness", dirs_exist_ok=True)
    subprocess.run(make_command(args), check=True)
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(args.src / "_build" / "lce_run_full", args.out / "lce_run_full.aarch64")
    shutil.copy2(HERE / "insncount.c", args.out / "insncount.c")
    print(f"runner ready: export KBNN_ARM64_RUNNER={args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
