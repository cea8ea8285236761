"""ARM cost of every zoo model: aarch64 instructions per inference, binary (LCE) vs float twin.

Each model is converted with `kbnn.converters.convert` and its float twin with TensorFlow's
converter; both run on the aarch64 runner (LCE v0.16.0's optimized ARM kernels, TFLite builtins
without XNNPACK) under qemu-aarch64, batch 1, one thread, LCE's default kernel mode, and the
plugin counts instructions per inference (`kbnn.converters.arm64`). The count is a
deterministic proxy for ARM cost, not a time. The aarch64 outputs are checked against LCE's x86
interpreter (argmax agreement and max |diff|).

MNIST models run at 28×28 with their pretrained weights on real test digits (x / 255);
CIFAR-10 models at 32×32 and ImageNet models at a reduced 64×64 input, random weights (seed 0)
and uniform [0, 1) inputs: instruction counts do not depend on the weights' values.

    python benchmarks/arm64_cost.py --runner ../shared/arm64              # every model
    python benchmarks/arm64_cost.py --models binarynet_mnist --per-op --runner ../shared/arm64
    python benchmarks/arm64_cost.py --models dorefanet_mnist --accuracy   # + all 10,000 digits

`--accuracy` (pretrained MNIST models) also compares the test accuracy of Keras and of the
flatbuffer in LCE's x86 interpreter (the aarch64 outputs equal the x86 ones; see the table's
notes) on the whole MNIST test split (TFDS_DATA_DIR).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import zoo
from kbnn.converters import arm64, convert, float_twin_flatbuffer
from kbnn.converters.errors import ConversionError
from kbnn.converters.flatbuffer import format_table
from kbnn.data import mnist_sample, normalize_mnist

import numpy as np
import tensorflow as tf

#: Input of the models that are not MNIST: ImageNet ones at a reduced resolution.
REDUCED = {"cifar10": (32, 32, 3), "imagenet": (64, 64, 3)}
#: Layer types LCE lowers that kbnn has not checked itself (ReActNet's LearnedShift).
ALLOW_UNKNOWN = {"reactnet_a"}


def build(name: str):
    """(model, inputs) for zoo model `name` as described in the module docstring."""
    spec = zoo.spec(name)
    if spec.dataset == "mnist":
        weights = "pretrained" if zoo.available_weights(name) else None
        model = zoo.get(name, weights=weights, compile=False)
        return model, normalize_mnist(mnist_sample()[0][:4]), weights or "random"
    tf.keras.utils.set_random_seed(0)
    shape = REDUCED[spec.dataset]
    model = zoo.get(name, input_shape=shape, compile=False)
    return model, np.random.default_rng(0).random((2,) + shape, dtype=np.float32), "random"


def mnist_test_accuracy(model, flatbuffer: bytes) -> dict:
    """Keras vs LCE-interpreter accuracy on the 10,000 MNIST test digits, and disagreements."""
    from kbnn.converters.verify import KERNEL_OPTIONS, keras_outputs, lce_outputs
    from kbnn.data import mnist_arrays

    images, labels = mnist_arrays("test")
    keras = keras_outputs(model, [images])[0].argmax(1)
    lce = lce_outputs(flatbuffer, [images], **KERNEL_OPTIONS)[0].argmax(1)
    return {
        "keras_accuracy": float(np.mean(keras == labels)),
        "lce_accuracy": float(np.mean(lce == labels)),
        "argmax_differences": int(np.sum(keras != lce)),
        "images": len(labels),
    }


def measure(name: str, runner: str | None, per_op: bool, accuracy: bool = False) -> dict:
    model, x, weights = build(name)
    conversion = convert(model, allow_unknown_layers=name in ALLOW_UNKNOWN)
    report = arm64.compare(
        conversion.flatbuffer,
        x,
        twin_flatbuffer=float_twin_flatbuffer(model),
        per_op=True,
        runner=runner,
        reps=2,
    )
    x86 = report.agreements[0]
    row = {
        "model": name,
        "input": "×".join(map(str, x.shape[1:])),
        "weights": weights,
        "binary": report.binary.instructions,
        "float_twin": report.twin.instructions,
        "ratio": report.ratio,
        "top3": [f"{op} {count / 1e3:,.0f} k" for op, count in report.binary.top_operators(3)],
        "x86_argmax": x86.argmax_agreement,
        "x86_max_abs_diff": x86.max_abs_diff,
    }
    if accuracy and weights == "pretrained":
        row.update(mnist_test_accuracy(model, conversion.flatbuffer))
    if per_op:
        row["operators"] = report.binary.operators
        print(f"\n{name}, per operator:\n{report.binary.operator_table()}", file=sys.stderr)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", help="zoo names (default: all)")
    parser.add_argument("--runner", help=f"runner directory (default: ${arm64.RUNNER_ENV})")
    parser.add_argument("--per-op", action="store_true", help="per-operator tables (stderr)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument(
        "--accuracy", action="store_true", help="MNIST test accuracy, Keras vs flatbuffer"
    )
    args = parser.parse_args(argv)
    names = args.models or zoo.list_models()
    rows, failed = [], []
    for name in names:
        try:
            rows.append(measure(name, args.runner, args.per_op, args.accuracy))
        except (ConversionError, ValueError) as err:
            failed.append((name, " ".join(str(err).split())[:160]))
        done = rows[-1] if rows and rows[-1]["model"] == name else None
        summary = (
            f"{done['binary']:,} vs {done['float_twin']:,}, {done['ratio']:.2f}×"
            if done
            else "failed"
        )
        print(f"done: {name}: {summary}", file=sys.stderr, flush=True)
    table = [("model", "input", "weights", "binary", "float twin", "float ÷ binary", "top 3 ops")]
    for row in rows:
        table.append(
            (
                row["model"],
                row["input"],
                row["weights"],
                f"{row['binary']:,}",
                f"{row['float_twin']:,}",
                f"{row['ratio']:.2f}×",
                ", ".join(row["top3"]),
            )
        )
    print(format_table(table))
    for row in rows:
        if row["x86_argmax"] < 1.0 or row["x86_max_abs_diff"] > 1e-4:
            print(
                f"note: {row['model']} aarch64 vs x86: argmax {row['x86_argmax']:.3f}, "
                f"max |diff| {row['x86_max_abs_diff']:.2g}"
            )
    for row in rows:
        if "lce_accuracy" in row:
            print(
                f"{row['model']}: MNIST test accuracy over {row['images']:,} digits: Keras "
                f"{100 * row['keras_accuracy']:.2f}%, flatbuffer {100 * row['lce_accuracy']:.2f}%, "
                f"{row['argmax_differences']} argmax differences"
            )
    for name, reason in failed:
        print(f"not converted: {name}: {reason}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    raise SystemExit(main())
