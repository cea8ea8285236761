"""Crash tests (#16): `kill -9` convert, compress, zoo export and train at several moments,
then check that every file at a final path is complete (it parses) and that a rerun works
and leaves no hidden temporary behind (a killed writer's leftovers are swept by pid).
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

from kbnn import _loading

import pytest

pytestmark = pytest.mark.slow

ENV = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}


def _valid(path: pathlib.Path) -> bool:
    """The final file parses completely as what its name says."""
    from kbnn.compression.format import load_compressed
    from kbnn.converters.flatbuffer import read_flatbuffer
    from kbnn.zoo.weights import read_compact

    suffix = path.suffix
    if suffix == ".tflite":
        read_flatbuffer(path.read_bytes())
    elif suffix == ".kbz":
        load_compressed(path)
    elif suffix == ".npz":
        read_compact(path)
    elif suffix in (".json",):
        json.loads(path.read_text())
    elif suffix == ".keras":
        _loading.load_model(path)
    elif suffix == ".h":
        assert path.read_text().rstrip().splitlines()[-1].startswith("#endif")
    elif suffix == ".cc":
        assert path.read_text().rstrip().endswith(";")
    return True


def _start(argv, cwd):
    return subprocess.Popen(
        [sys.executable, "-m", "kbnn", *map(str, argv)],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _kill_when(process, folder: pathlib.Path, moment: str, timeout: float = 600) -> None:
    """kill -9 after `moment` ('startup': 2 s in; 'writing': a temporary appears)."""
    start = time.monotonic()
    while process.poll() is None and time.monotonic() - start < timeout:
        if moment == "startup" and time.monotonic() - start > 2.0:
            break
        if moment == "writing" and any(".tmp" in p.name for p in folder.rglob(".*")):
            break
        time.sleep(0.005)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _finals(folder: pathlib.Path) -> list[pathlib.Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")]


def _hidden(folder: pathlib.Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*") if ".tmp" in p.name)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    import kbnn.zoo

    import security_inputs

    root = tmp_path_factory.mktemp("crash")
    security_inputs.small_model().save(root / "small.keras")
    kbnn.zoo.get("binarynet_mlp_mnist", weights="pretrained").save(root / "mlp.keras")
    return root


COMMANDS = {
    "convert": lambda src, out: [
        "convert",
        src / "small.keras",
        "-o",
        out / "m.tflite",
        "--float-twin",
        out / "t.tflite",
        "--c-array",
        "m_arr",
        "--quiet",
    ],
    "compress": lambda src, out: [
        "compress",
        src / "small.keras",
        "-o",
        out / "m.kbz",
        "--huffman",
        "--bits",
        "4",
    ],
    "zoo export": lambda src, out: [
        "zoo",
        "export",
        "binarynet_mlp_mnist",
        src / "mlp.keras",
        "--command",
        "kbnn train binarynet_mlp_mnist",
        "--weights-dir",
        out / "w",
        "--cards-dir",
        out / "c",
    ],
    "train": lambda src, out: [
        "train",
        "binarynet_mlp_mnist",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "3",
        "--validation-size",
        "1000",
        "--batch-size",
        "64",
        "--quiet",
        "--output",
        out / "run",
    ],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_kill_9_leaves_no_partial_file_and_a_rerun_works(
    sources, command, tmp_path, mnist_available
):
    out = tmp_path / "out"
    out.mkdir()
    argv = COMMANDS[command](sources, out)
    for moment in ("startup", "writing"):
        _kill_when(_start(argv, tmp_path), out, moment)
        for path in _finals(out):
            assert _valid(path), f"partial {path} after kill -9 at {moment}"
    rerun = _start(argv, tmp_path)
    _, stderr = rerun.communicate(timeout=900)
    assert rerun.returncode == 0, stderr[-2000:]
    assert _finals(out), "the rerun wrote nothing"
    for path in _finals(out):
        assert _valid(path)
    assert _hidden(out) == [], "temporaries of the killed runs are still there"
