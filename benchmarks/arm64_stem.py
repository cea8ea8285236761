"""A stride-2 stem for the MNIST CNNs on ARM: conv1 at stride 2 instead of conv1 + 2×2 max-pool.

binarynet_mnist and dorefanet_mnist start with a float 5×5 convolution (1 → 32 channels, 'same')
on the 28×28 image, then a 2×2 max-pool. On LCE's aarch64 kernels that first CONV_2D costs
469,213 instructions, about half of binarynet_mnist (docs/arm64.md), and no exact cheaper
lowering exists. Computing conv1 at stride 2 and dropping pool1 gives the same 14×14×32 map
from 4× fewer convolution outputs; it replaces the max over each 2×2 window by one sample of it,
which changes the model, so its accuracy must be measured (and recovered by fine-tuning:
`binarynet_s2_mnist`, trained with `kbnn train binarynet_s2_mnist --init-from binarynet_mnist`).

Rows, each with its float32 twin on the same runner (LCE's default kernel mode, batch 1, one
thread, real test digits), and its accuracy on all 10,000 MNIST test digits (Keras, and the
flatbuffer in LCE's x86 interpreter with its argmax differences from Keras):

- `as shipped`: the zoo model with its pretrained weights;
- `stride-2 stem, same weights`: the same weights in the stride-2 graph, no training;
- `binarynet_s2_mnist` (when its weights are shipped): the fine-tuned zoo model.

    python benchmarks/arm64_stem.py --runner ../shared/arm64
    python benchmarks/arm64_stem.py --models binarynet_mnist --runner ../shared/arm64
"""

from __future__ import annotations

import argparse
import os

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import zoo
from kbnn.converters import arm64, convert, float_twin_flatbuffer
from kbnn.converters.flatbuffer import format_table
from kbnn.converters.graph import rebuild
from kbnn.data import mnist_sample, normalize_mnist

from arm64_cost import mnist_test_accuracy

#: The fine-tuned stride-2 sibling of a zoo model, where one is shipped.
FINE_TUNED = {"binarynet_mnist": "binarynet_s2_mnist"}


def stride2_stem(model):
    """`model` with `conv1` at stride 2 and `pool1` removed, the same weights."""

    def replace(layer, args, kwargs):
        if layer.name == "pool1":
            return args[0]
        if layer.name != "conv1":
            return None
        conv = type(layer).from_config({**layer.get_config(), "strides": (2, 2)})
        outputs = conv(args[0])
        conv.set_weights(layer.get_weights())
        return outputs

    return rebuild(model, replace, name=f"{model.name}_stride2_stem")


def measure(label: str, model, runner) -> tuple:
    """One table row: instructions (first convolution, total), float twin, ratio, accuracies."""
    sample = normalize_mnist(mnist_sample()[0][:4])
    conversion = convert(model)
    report = arm64.compare(
        conversion.flatbuffer,
        sample,
        twin_flatbuffer=float_twin_flatbuffer(model),
        per_op=True,
        runner=runner,
        reps=2,
    )
    first_op, first_count = next((op, n) for op, n in report.binary.operators if "CONV" in op)
    accuracy = mnist_test_accuracy(model, conversion.flatbuffer)
    return (
        label,
        f"{first_op} {first_count:,}",
        f"{report.binary.instructions:,}",
        f"{report.twin.instructions:,}",
        f"{report.ratio:.2f}×",
        f"{100 * accuracy['keras_accuracy']:.2f}%",
        f"{100 * accuracy['lce_accuracy']:.2f}%",
        str(accuracy["argmax_differences"]),
        f"{report.agreements[0].max_abs_diff:.1e}",
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=["binarynet_mnist", "dorefanet_mnist"])
    parser.add_argument("--runner", help=f"runner directory (default: ${arm64.RUNNER_ENV})")
    args = parser.parse_args(argv)
    header = (
        "model",
        "first conv",
        "binary",
        "float twin",
        "float ÷ binary",
        "Keras",
        "flatbuffer",
        "argmax ≠ Keras",
        "aarch64 vs x86",
    )
    rows = [header]
    for name in args.models:
        model = zoo.get(name, weights="pretrained", compile=False)
        rows.append(measure(f"{name}, as shipped", model, args.runner))
        rows.append(
            measure(f"{name}, stride-2 stem, same weights", stride2_stem(model), args.runner)
        )
        tuned = FINE_TUNED.get(name)
        if tuned and zoo.available_weights(tuned):
            rows.append(measure(tuned, zoo.get(tuned, weights="pretrained"), args.runner))
        print(f"done: {name}", flush=True)
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    raise SystemExit(main())
