"""Install kbnn's wheel under other Pythons and run it: install time, quickstart, zoo info.

For each interpreter: build the wheel once (`pip wheel --no-deps`), make a fresh venv, install
the wheel with `-c constraints.txt`, then run `kbnn quickstart` and `kbnn zoo info
binarynet_mnist` from a temp dir (no source tree on the path). Prints one table row per Python.

    python benchmarks/compat_python.py --python ~/.pyenv/versions/3.12.1/bin/python3

Needs the package registry (or a warm pip cache) for the install; results: docs/stack.md.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(command, cwd, timeout=1800) -> tuple[int, str, float]:
    start = time.perf_counter()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PIP_DISABLE_PIP_VERSION_CHECK="1")
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    return result.returncode, result.stdout + result.stderr, time.perf_counter() - start


def build_wheel(out_dir: pathlib.Path) -> pathlib.Path:
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out_dir), "."]
    code, output, _ = _run(command, REPO_ROOT)
    if code:
        sys.exit(f"pip wheel failed:\n{output[-2000:]}")
    return next(out_dir.glob("kbnn-*.whl"))


def check_python(python: str, wheel: pathlib.Path, work: pathlib.Path) -> dict:
    """Fresh venv with `python`, wheel installed with the constraints, CLI run from `work`."""
    venv = work / "venv"
    code, output, _ = _run([python, "-m", "venv", str(venv)], work)
    version = _run([str(venv / "bin" / "python"), "--version"], work)[1].strip()
    row = {"python": version, "install_s": None, "quickstart": "not run", "zoo_info": "not run"}
    if code:
        row["quickstart"] = f"venv failed: {output[-200:]}"
        return row
    pip = [str(venv / "bin" / "pip"), "install", "-q", "-c", str(REPO_ROOT / "constraints.txt")]
    code, output, seconds = _run([*pip, str(wheel)], work)
    row["install_s"] = round(seconds)
    if code:
        row["quickstart"] = "install failed: " + output.strip().splitlines()[-1][:200]
        return row
    kbnn = str(venv / "bin" / "kbnn")
    code, output, seconds = _run([kbnn, "quickstart", "-o", str(work / "q.tflite")], work)
    agreement = re.search(r"argmax agreement\s+(\S+)", output)
    deprecations = len(re.findall("deprecat", output, re.IGNORECASE))
    row["quickstart"] = (
        f"ok in {seconds:.0f} s, agreement {agreement.group(1) if agreement else '?'}, "
        f"{deprecations} deprecation lines"
        if code == 0
        else "failed: " + output.strip().splitlines()[-1][:200]
    )
    code, output, _ = _run([kbnn, "zoo", "info", "binarynet_mnist"], work)
    row["zoo_info"] = "ok" if code == 0 else "failed: " + output.strip().splitlines()[-1][:200]
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--python", action="append", default=None, help="interpreter to check (repeatable)"
    )
    args = parser.parse_args(argv)
    pythons = args.python or [sys.executable]
    with tempfile.TemporaryDirectory(prefix="kbnn-compat-") as tmp:
        wheel = build_wheel(pathlib.Path(tmp) / "dist")
        print(f"wheel: {wheel.name} ({wheel.stat().st_size:,} bytes)\n")
        print("| Python | wheel install (s) | kbnn quickstart | kbnn zoo info |")
        print("|---|---:|---|---|")
        for index, python in enumerate(pythons):
            work = pathlib.Path(tmp) / f"py{index}"
            work.mkdir()
            row = check_python(python, wheel, work)
            print(
                f"| {row['python']} | {row['install_s']} | {row['quickstart']} | {row['zoo_info']} |"
            )


if __name__ == "__main__":
    main()
