"""Run N worker processes of one command on this machine, as a `MultiWorkerMirroredStrategy`
cluster on 127.0.0.1: to try multi-worker training (and its restarts) without a cluster.

    python -m kbnn.distribute.local_cluster --workers 2 --timeout 600 -- \
        kbnn train binarynet_mnist --strategy multiworker --epochs 2

Each worker gets its own `TF_CONFIG` (free ports found by binding port 0), its output goes to
`<log_dir>/worker<i>.log`. If one worker fails, the others are stopped — in all-reduce training
they would wait for it forever — as they are when the time limit is reached; no process outlives
`run` (each worker runs in its own process group, killed as a group).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

from kbnn._validation import check_positive_int, check_positive_number
from kbnn.distribute.strategies import tf_config
from kbnn.errors import UsageError

__all__ = ["WorkerResult", "free_ports", "run"]

LOCALHOST = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 right now (bound together, then released)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOCALHOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclasses.dataclass
class WorkerResult:
    """How one worker ended: its exit code (None: killed by `run`) and its log file."""

    index: int
    pid: int
    returncode: int | None
    log: pathlib.Path
    stopped: bool  # True when `run` killed it (another worker failed, or the time limit)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def run(
    argv: Sequence[str],
    num_workers: int,
    *,
    timeout: float,
    log_dir=None,
    env=None,
    cwd=None,
    stop_on_failure: bool = True,
    poll_interval: float = 0.2,
) -> list[WorkerResult]:
    """Start `argv` `num_workers` times with the TF_CONFIG of worker 0..N-1 on 127.0.0.1, wait
    for all (at most `timeout` seconds), return one `WorkerResult` per worker.

    With `stop_on_failure` the remaining workers are killed as soon as one exits non-zero.
    Workers still running at the deadline are killed (`stopped=True`, `returncode=None`).
    """
    check_positive_int(num_workers, "num_workers")
    if not argv:
        raise UsageError("argv must name the command each worker runs")
    check_positive_number(timeout, "timeout (seconds)")
    log_dir = pathlib.Path(log_dir or tempfile.mkdtemp(prefix="kbnn-cluster-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    workers = [f"{LOCALHOST}:{port}" for port in free_ports(num_workers)]
    local = f"{LOCALHOST},localhost"
    base_env = {**os.environ, **(env or {})}
    for key in ("no_proxy", "NO_PROXY", "no_grpc_proxy"):  # gRPC must not go through a proxy
        base_env[key] = ",".join(v for v in (base_env.get(key), local) if v)

    processes, logs = [], []
    try:
        for index in range(num_workers):
            log = log_dir / f"worker{index}.log"
            logs.append(log)
            with open(log, "wb") as handle:
                processes.append(
                    subprocess.Popen(
                        list(argv),
                        env={**base_env, "TF_CONFIG": tf_config(workers, index)},
                        cwd=cwd,
                        stdout=handle,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
        deadline = time.monotonic() + timeout
        stopped = set()
        while time.monotonic() < deadline:
            codes = [p.poll() for p in processes]
            if all(c is not None for c in codes):
                break
            if stop_on_failure and any(c not in (None, 0) for c in codes):
                break
            time.sleep(poll_interval)
        for index, process in enumerate(processes):
            if process.poll() is None:
                stopped.add(index)
    finally:
        for process in processes:  # nothing outlives run(), whatever happened
            if process.poll() is None:
                _kill_group(process)
    return [
        WorkerResult(i, p.pid, None if i in stopped else p.returncode, logs[i], i in stopped)
        for i, p in enumerate(processes)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kbnn.distribute.local_cluster",
        description="Run a command as N MultiWorkerMirroredStrategy workers on 127.0.0.1.",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds (default 3600)")
    parser.add_argument("--log-dir", default=None, help="default: a new temporary folder")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    results = run(command, args.workers, timeout=args.timeout, log_dir=args.log_dir)
    for result in results:
        state = "stopped" if result.stopped else f"exit {result.returncode}"
        print(f"worker {result.index}: {state}, log {result.log}")
    return 0 if all(r.returncode == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
