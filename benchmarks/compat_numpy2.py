"""numpy 2 readiness: what blocks it (LCE's Python interpreter) and a measured way around it.

Run with kbnn's normal (numpy 1) environment and a second interpreter that sees the same
packages but numpy 2 (see docs/stack.md for the two-line overlay venv):

    python benchmarks/compat_numpy2.py --numpy2-python /tmp/np2/bin/python [--runner DIR]

1. (numpy 1) the pretrained binarynet_mnist is converted with kbnn.converters and run on N
   MNIST sample images in LCE's x86 interpreter: the reference outputs.
2. (numpy 2, child process) the same flatbuffer in LCE's interpreter: the failure is printed.
3. (numpy 2) the same flatbuffer on LCE's kernels without the pybind module: the static aarch64
   runner (`lce_run_full.aarch64`, $KBNN_ARM64_RUNNER) under qemu-aarch64, inputs and outputs
   through files, in each of its kernel modes; compared with the reference.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

RUNNER_BINARY = "lce_run_full.aarch64"
KERNEL_MODES = {"optimized": 0, "indirect": 1, "reference": 2}


def _child(work: pathlib.Path, runner: pathlib.Path) -> None:
    """Steps 2 and 3 under numpy 2: prints one JSON object."""
    import numpy as np

    flatbuffer = (work / "model.tflite").read_bytes()
    x = np.load(work / "x.npy")
    result = {"numpy": np.__version__, "modes": {}}
    try:
        from larq_compute_engine.tflite.python.interpreter import Interpreter

        Interpreter(flatbuffer).predict(x)
        result["lce_interpreter"] = "ran"
    except Exception as err:  # the failure itself is the measurement
        result["lce_interpreter"] = f"{type(err).__name__}: {str(err).strip()}"
    x.astype("<f4").tofile(work / "x.f32")
    for mode, code in KERNEL_MODES.items():
        out = work / f"y_{mode}.f32"
        command = [
            shutil.which("qemu-aarch64") or "qemu-aarch64",
            str(runner / RUNNER_BINARY),
            str(work / "model.tflite"),
            str(work / "x.f32"),
            str(len(x)),
            "0",
            "1",
            "1",
            str(out),
            str(code),
        ]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        seconds = time.perf_counter() - start
        outputs = np.fromfile(out, "<f4").reshape(len(x), -1)
        np.save(work / f"y_{mode}.npy", outputs)
        result["modes"][mode] = {"seconds": seconds}
    print(json.dumps(result))


def _reference(work: pathlib.Path, samples: int) -> None:
    """Step 1 under numpy 1: flatbuffer, inputs and LCE-interpreter outputs into `work`."""
    import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
    from kbnn import converters, zoo
    from kbnn.converters.verify import interpreter
    from kbnn.data import mnist_sample, normalize_mnist

    import numpy as np

    model = zoo.get("binarynet_mnist", weights="pretrained")
    images, _ = mnist_sample()
    x = normalize_mnist(images[:samples]).astype(np.float32)
    flatbuffer = converters.convert(model).flatbuffer
    (work / "model.tflite").write_bytes(flatbuffer)
    np.save(work / "x.npy", x)
    np.save(work / "y_lce.npy", interpreter(flatbuffer).predict(x))
    np.save(work / "y_keras.npy", model.predict(x, verbose=0))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--numpy2-python", required=True, help="interpreter that has numpy 2")
    parser.add_argument("--runner", default=os.environ.get("KBNN_ARM64_RUNNER"))
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.runner:
        sys.exit("no aarch64 runner: pass --runner DIR or set KBNN_ARM64_RUNNER")
    runner = pathlib.Path(args.runner)
    if args.child:
        _child(pathlib.Path(args.child), runner)
        return
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="kbnn-numpy2-") as tmp:
        work = pathlib.Path(tmp)
        _reference(work, args.samples)
        command = [args.numpy2_python, __file__, "--numpy2-python", args.numpy2_python]
        child = subprocess.run(
            [*command, "--runner", str(runner), "--child", tmp],
            capture_output=True,
            text=True,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        )
        if child.returncode:
            sys.exit(f"numpy-2 child failed:\n{child.stderr[-3000:]}")
        result = json.loads(child.stdout.strip().splitlines()[-1])
        reference, keras = np.load(work / "y_lce.npy"), np.load(work / "y_keras.npy")
        print(f"numpy 1: {np.__version__}   numpy 2 child: {result['numpy']}")
        print(f"LCE 0.16 Python interpreter under numpy 2: {result['lce_interpreter']}\n")
        print(f"binarynet_mnist (pretrained), {len(reference)} MNIST sample images, batch 1:\n")
        print(
            "| path (numpy 2) | kernel mode | s per image (qemu) | max abs diff vs LCE x86 "
            "interpreter (numpy 1) | bit-identical outputs | argmax agreement |"
        )
        print("|---|---|---:|---:|---:|---:|")
        for mode, timing in result["modes"].items():
            outputs = np.load(work / f"y_{mode}.npy")
            diff = float(np.abs(outputs - reference).max())
            identical = float(np.mean(np.all(outputs == reference, axis=1)))
            agree = float(np.mean(outputs.argmax(1) == reference.argmax(1)))
            per_image = timing["seconds"] / len(reference)
            print(
                f"| aarch64 runner under qemu | {mode} | {per_image:.3f} | {diff:.3g} | "
                f"{identical:.1%} | {agree:.1%} |"
            )
        keras_diff = float(np.abs(keras - reference).max())
        print(
            f"\n(for scale: Keras vs LCE x86 interpreter, numpy 1: max abs diff {keras_diff:.3g})"
        )


if __name__ == "__main__":
    main()
