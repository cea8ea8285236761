"""Conversion benchmark: flatbuffer bytes and x86 latency, LCE (kbnn.converters) vs float twin.

For every model: the float TFLite twin's bytes (TensorFlow's converter, quantizers removed),
the LCE flatbuffer's bytes (kbnn.converters.convert), their ratio, agreement with Keras on
random inputs, and single-sample latency (median / p90) in LCE's interpreter with the
kernel options kbnn uses, against the float twin on LiteRT (`ai_edge_litert`, through
`kbnn.converters.interpreters`; `tf.lite.Interpreter` only where LiteRT is missing; XNNPACK, its
default). `--kernels` adds a sweep over LCE's interpreter options.

Weights are random (seeded): sizes and latencies do not depend on training. On x86 LCE's
binary kernels are reference implementations; ARM (the target) is much faster.

    python benchmarks/conversion.py                       # every model, markdown to stdout
    python benchmarks/conversion.py --models binarynet_mnist --kernels --runs 200
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import converters
from kbnn import layers as kl
from kbnn.converters.flatbuffer import format_table

import numpy as np
import tensorflow as tf

L = tf.keras.layers


def _bn(name=None):
    return L.BatchNormalization(momentum=0.9, epsilon=1e-4, name=name)


def binarynet_mnist():
    """The seed MNIST BinaryNet (TensorLayer recipe; kbnn.zoo's definition when available)."""
    try:
        from kbnn import zoo

        return zoo.get("binarynet_mnist")
    except Exception:  # the zoo is optional here; same topology below
        inputs = tf.keras.Input((28, 28, 1))
        x = kl.BinaryConv2D(32, 5, padding="same", input_quantizer=None, name="conv1")(inputs)
        x = L.MaxPool2D(2)(x)
        x = _bn()(x)
        x = kl.BinaryConv2D(64, 5, padding="same", name="conv2")(x)
        x = L.MaxPool2D(2)(x)
        x = _bn()(x)
        x = L.Flatten()(x)
        x = kl.BinaryDense(256, name="dense1")(x)
        x = _bn()(x)
        x = kl.BinaryDense(10, name="dense2")(x)
        x = _bn()(x)
        return tf.keras.Model(inputs, L.Activation("softmax")(x), name="binarynet_mnist")


def _cifar_stack(name, block, widths=(64, 128, 256)):
    """Float first conv, then per width two quantized 3×3 convs (the first with stride 2)."""
    inputs = tf.keras.Input((32, 32, 3))
    x = L.Conv2D(widths[0], 3, padding="same", use_bias=False, name="stem")(inputs)
    x = _bn()(x)
    for stage, width in enumerate(widths):
        for index in range(2):
            strides = 2 if index == 0 and stage > 0 else 1
            x = block(width, strides, f"s{stage}c{index}")(x)
            x = _bn()(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(10, name="logits")(x)
    return tf.keras.Model(inputs, x, name=name)


def binary_cnn_cifar():
    """Binary 3×3 convolutions (BinaryNet style) on 32×32×3: where LCE's kernels matter."""
    return _cifar_stack(
        "binary_cnn_cifar",
        lambda width, strides, name: kl.BinaryConv2D(width, 3, strides, padding="same", name=name),
    )


def xnor_cnn_cifar():
    """XNOR-Net weights (per-channel α) with binary inputs."""
    return _cifar_stack(
        "xnor_cnn_cifar",
        lambda width, strides, name: kl.BinaryConv2D(
            width, 3, strides, padding="same", kernel_quantizer="xnor_weight", name=name
        ),
    )


def ternary_cnn_cifar():
    """TWN weights with binary inputs: two binary planes per layer."""
    return _cifar_stack(
        "ternary_cnn_cifar",
        lambda width, strides, name: kl.TernaryConv2D(
            width, 3, strides, padding="same", input_quantizer="ste_sign", name=name
        ),
    )


def dorefa_w2a2_cifar():
    """DoReFa 2-bit weights and activations: 2 weight planes × 2 activation bit planes."""
    return _cifar_stack(
        "dorefa_w2a2_cifar",
        lambda width, strides, name: kl.DorefaConv2D(
            width, 3, strides, padding="same", bit_w=2, bit_a=2, name=name
        ),
    )


MODELS = {
    "binarynet_mnist": binarynet_mnist,
    "binary_cnn_cifar": binary_cnn_cifar,
    "xnor_cnn_cifar": xnor_cnn_cifar,
    "ternary_cnn_cifar": ternary_cnn_cifar,
    "dorefa_w2a2_cifar": dorefa_w2a2_cifar,
}

KERNEL_SWEEP = {
    "default": {"use_indirect_bgemm": False},
    "indirect_bgemm": {"use_indirect_bgemm": True},
    "reference_bconv": {"use_indirect_bgemm": False, "use_reference_bconv": True},
    "xnnpack": {"use_indirect_bgemm": False, "use_xnnpack": True},
    "indirect_bgemm+xnnpack": {"use_indirect_bgemm": True, "use_xnnpack": True},
}


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for variable in layer.weights:
            name = variable.name.split("/")[-1]
            if name.startswith("kernel"):
                variable.assign(rng.uniform(-1, 1, variable.shape))
            elif name.startswith("moving_variance"):
                variable.assign(rng.uniform(0.5, 2.0, variable.shape))
            elif name.startswith("moving_mean"):
                variable.assign(rng.normal(size=variable.shape))
    return model


def measure(name, runs, threads, kernels):
    model = _randomize(MODELS[name]())
    start = time.perf_counter()
    conversion = converters.convert(model)
    convert_s = time.perf_counter() - start
    twin = converters.float_twin_flatbuffer(model)
    shape = tuple(model.inputs[0].shape[1:])
    x = np.random.default_rng(1).uniform(0, 1, (200,) + shape).astype(np.float32)
    agreement = converters.verify(model, conversion.flatbuffer, x)
    sample = x[:1]
    row = {
        "model": name,
        "float_bytes": len(twin),
        "lce_bytes": conversion.size,
        "ratio": len(twin) / conversion.size,
        "convert_s": convert_s,
        "lce_ops": conversion.ops,
        "max_abs_diff": agreement.max_abs_diff,
        "within_tolerance": min(o.within_tolerance for o in agreement.outputs),
        "argmax_agreement": agreement.argmax_agreement,
        "fallbacks": [r.layer for r in conversion.report.fallbacks],
        "latency": {},
    }
    for count in sorted({1, threads}):
        row["latency"][f"lce_{count}"] = converters.benchmark(
            conversion.flatbuffer, sample, num_threads=count, runs=runs
        )
        row["latency"][f"float_{count}"] = converters.benchmark(
            twin, sample, num_threads=count, runs=runs, runtime="tflite"
        )
    if kernels:
        row["kernels"] = {
            label: converters.benchmark(conversion.flatbuffer, sample, runs=runs, **options)
            for label, options in KERNEL_SWEEP.items()
        }
        row["kernel_agreement"] = {
            label: converters.verify(model, conversion.flatbuffer, x[:50], **options).max_abs_diff
            for label, options in KERNEL_SWEEP.items()
        }
    return row


def markdown(rows, threads):
    header = [
        "model",
        "float TFLite B",
        "LCE B",
        "ratio",
        "argmax agree",
        "within tol",
        "max |diff|",
    ]
    for count in sorted({1, threads}):
        header += [f"LCE {count}T median/p90 ms", f"float {count}T median/p90 ms"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [
            row["model"],
            f"{row['float_bytes']:,}",
            f"{row['lce_bytes']:,}",
            f"{row['ratio']:.1f}x",
            f"{100 * row['argmax_agreement']:.1f}%",
            f"{100 * row['within_tolerance']:.1f}%",
            f"{row['max_abs_diff']:.1e}",
        ]
        for count in sorted({1, threads}):
            for kind in ("lce", "float"):
                result = row["latency"][f"{kind}_{count}"]
                cells.append(f"{result['median_ms']:.3f} / {result['p90_ms']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    kernel_rows = [row for row in rows if "kernels" in row]
    if kernel_rows:
        lines += ["", "LCE interpreter options, 1 thread, median ms (max |diff| vs Keras):", ""]
        labels = list(KERNEL_SWEEP)
        lines.append("| model | " + " | ".join(labels) + " |")
        lines.append("|" + "---|" * (len(labels) + 1))
        for row in kernel_rows:
            cells = [
                f"{row['kernels'][label]['median_ms']:.3f} ({row['kernel_agreement'][label]:.1e})"
                for label in labels
            ]
            lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--kernels", action="store_true", help="sweep LCE interpreter options")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    args = parser.parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {sorted(MODELS)}")
    rows = []
    for name in names:
        print(f"measuring {name} ...", file=sys.stderr)
        rows.append(measure(name, args.runs, args.threads, args.kernels))
    print(
        f"<!-- {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}, tf {tf.__version__} -->"
    )
    print(markdown(rows, args.threads))
    summary = [
        (
            r["model"],
            ", ".join(f"{k} x{v}" for k, v in r["lce_ops"].items()),
            ", ".join(r["fallbacks"]) or "-",
        )
        for r in rows
    ]
    print()
    print(format_table([("model", "LCE ops", "float fallbacks")] + summary))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
