"""DeepCompression (Han et al., ICLR 2016) on real MNIST: LeNet-300-100 and LeNet-5.

For each network: train the float baseline, scan per-layer pruning sensitivity (one-shot, on a
held-out part of the training set), then run `kbnn.compression.compress`: iterative pruning
with retraining → k-means weight sharing with centroid fine-tuning → Huffman coding, write the
`.kbz` file and measure the last row's accuracy on the model loaded back from it.

Per-layer sparsities and bits are the paper's (Tables 2 and 3): LeNet-300-100 keeps
8% / 9% / 26% of fc1 / fc2 / fc3 with 6-bit codebooks; LeNet-5 keeps 66% / 12% / 8% / 19% of
conv1 / conv2 / fc1 / fc2 with 8-bit conv and 5-bit fc codebooks. Also: ternary (TWN) and
five-level MLPs, whose kernels are entropy coded by their integer levels (bits per weight).

    TFDS_DATA_DIR=/work/shared/tensorflow_datasets \\
        nice -n 10 python benchmarks/deep_compression.py --json /tmp/deep_compression.json

Paper: LeNet-300-100 40x (error 1.64% → 1.58%), LeNet-5 39x (0.80% → 0.74%).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import compression, layers
from kbnn.compression import pipeline
from kbnn.data import mnist

import tensorflow as tf

SETUPS = {
    "lenet300": {
        "sparsity": {"fc1": 0.92, "fc2": 0.91, "fc3": 0.74},
        "bits": 6,
        "conv_bits": None,
    },
    "lenet5": {
        "sparsity": {"conv1": 0.34, "conv2": 0.88, "fc1": 0.92, "fc2": 0.81},
        "bits": 5,
        "conv_bits": 8,
    },
    "ternary": {"sparsity": {"fc1": 0.8, "fc2": 0.7, "fc3": 0.5}, "bits": 6, "conv_bits": None},
    "fivelevel": {"sparsity": {"fc1": 0.8, "fc2": 0.7, "fc3": 0.5}, "bits": 6, "conv_bits": None},
}


def lenet_300_100() -> tf.keras.Model:
    """LeCun et al. 1998: 784-300-100-10 fully connected, ReLU (as in the paper's Caffe model)."""
    return tf.keras.Sequential(
        [
            tf.keras.layers.Flatten(input_shape=(28, 28, 1)),
            tf.keras.layers.Dense(300, activation="relu", name="fc1"),
            tf.keras.layers.Dense(100, activation="relu", name="fc2"),
            tf.keras.layers.Dense(10, name="fc3"),
        ],
        name="lenet_300_100",
    )


def lenet_5() -> tf.keras.Model:
    """Caffe's LeNet-5: conv 5x5x20 → pool → conv 5x5x50 → pool → fc 500 → fc 10."""
    return tf.keras.Sequential(
        [
            tf.keras.layers.Conv2D(20, 5, input_shape=(28, 28, 1), name="conv1"),
            tf.keras.layers.MaxPool2D(2),
            tf.keras.layers.Conv2D(50, 5, name="conv2"),
            tf.keras.layers.MaxPool2D(2),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(500, activation="relu", name="fc1"),
            tf.keras.layers.Dense(10, name="fc2"),
        ],
        name="lenet_5",
    )


def quantized_mlp(layer_cls, name: str) -> tf.keras.Model:
    """784-300-100-10 with quantized hidden kernels (float activations, as TernaryNet) + BN."""
    return tf.keras.Sequential(
        [
            tf.keras.layers.Flatten(input_shape=(28, 28, 1)),
            layer_cls(300, name="fc1"),
            tf.keras.layers.BatchNormalization(),
            tf.keras.layers.ReLU(),
            layer_cls(100, name="fc2"),
            tf.keras.layers.BatchNormalization(),
            tf.keras.layers.ReLU(),
            tf.keras.layers.Dense(10, name="fc3"),
        ],
        name=name,
    )


HUFFMAN_TAG, HUFFMAN_TAG_BYTE = "huffman", b"\x01"  # first byte of a Huffman-coded stream

BUILDERS = {
    "lenet300": lenet_300_100,
    "lenet5": lenet_5,
    "ternary": lambda: quantized_mlp(layers.TernaryDense, "ternary_mlp"),
    "fivelevel": lambda: quantized_mlp(layers.FiveLevelDense, "five_level_mlp"),
}


def _print_scan(points) -> None:
    by_layer: dict[str, list] = {}
    for point in points:
        by_layer.setdefault(point.layer, []).append(point)
    sparsities = [p.sparsity for p in next(iter(by_layer.values()))]
    print("| layer | " + " | ".join(f"{100 * s:.0f}% pruned" for s in sparsities) + " |")
    print("|---|" + "---|" * len(sparsities))
    for layer, row in by_layer.items():
        print(f"| {layer} | " + " | ".join(f"{100 * p.metric:.2f}%" for p in row) + " |")


def print_breakdown(tensors) -> None:
    """Where the bytes go: one row per weight tensor of the compressed model."""
    print("| tensor | shape | nonzeros | encoding | bytes | bits/nonzero |")
    print("|---|---|---|---|---|---|")
    for t in tensors:
        chosen = t.encoding.chosen
        coded = "+".join(
            f"{k}:{HUFFMAN_TAG if v[:1] == HUFFMAN_TAG_BYTE else 'fixed'}"
            for k, v in chosen.sections.items()
            if k in ("gaps", "values")
        )
        per_nonzero = 8 * t.nbytes / max(t.nonzeros, 1)
        print(
            f"| {t.name} | {'x'.join(map(str, t.shape))} | {t.nonzeros:,} | {chosen.name}"
            f"{' (' + coded + ')' if coded else ''} | {t.nbytes:,} | {per_nonzero:.2f} |"
        )


def run(name: str, args, train, validation, test) -> dict:
    setup = SETUPS[name]
    tf.keras.utils.set_random_seed(args.seed)
    model = BUILDERS[name]()
    pipeline.default_compile(args.baseline_lr)(model)
    start = time.time()
    epochs = args.baseline_epochs if name != "lenet5" else args.lenet5_baseline_epochs
    model.fit(train, epochs=epochs, verbose=args.verbose)
    baseline_seconds = time.time() - start

    print(
        f"\n## {model.name}: per-layer sensitivity (one-shot pruning, accuracy on train[55000:])\n"
    )
    scan = compression.sensitivity_scan(
        model, lambda m: pipeline.accuracy(m, validation), sparsities=(0.5, 0.7, 0.8, 0.9, 0.95)
    )
    _print_scan(scan)

    output = os.path.join(args.out, f"{model.name}.kbz")
    start = time.time()
    config = compression.CompressionConfig(
        sparsity=setup["sparsity"],
        bits=setup["bits"],
        conv_bits=setup["conv_bits"],
        huffman=True,
        rounds=args.rounds,
        epochs_per_round=args.epochs_per_round,
        finetune_epochs=args.finetune_epochs,
        compile_fn=pipeline.default_compile(args.prune_lr),
        finetune_compile_fn=pipeline.default_compile(args.finetune_lr),
        verbose=args.verbose,
    )
    result = compression.compress(model, config, train_data=train, test_data=test, output=output)
    compress_seconds = time.time() - start
    print(
        f"\n## {model.name}: DeepCompression stages (test accuracy on the 10,000 MNIST "
        "test images)\n"
    )
    print(result.format())
    loss = 100 * (result.stages[0].accuracy - result.stages[-1].accuracy)
    print()
    print_breakdown(result.saved.tensors)
    print(
        f"\nratio {result.ratio:.1f}x, accuracy {100 * result.stages[0].accuracy:.2f}% → "
        f"{100 * result.stages[-1].accuracy:.2f}% ({loss:.2f} points lost); baseline "
        f"{baseline_seconds:.0f} s, compression {compress_seconds:.0f} s"
    )
    record = {
        "model": model.name,
        "setup": setup,
        "ratio": result.ratio,
        "file_bytes": result.saved.file_bytes,
        "baseline_seconds": baseline_seconds,
        "compress_seconds": compress_seconds,
        "stages": [
            {
                "stage": s.stage,
                "params": s.params,
                "nonzeros": s.nonzeros,
                "bits_per_weight": s.bits_per_weight,
                "bytes": s.bytes,
                "ratio": result.baseline_bytes / s.bytes,
                "accuracy": s.accuracy,
                "notes": s.notes,
            }
            for s in result.stages
        ],
        "sensitivity": [vars(p) for p in scan],
    }
    levels = compression.level_statistics(result.model)
    if levels:
        print(f"\n## {model.name}: entropy coding of the quantized kernels\n")
        print(
            "| layer | weights | zeros | entropy bits/w | Huffman bits/w | stored bits/w "
            "(encoding) |"
        )
        print("|---|---|---|---|---|---|")
        for s in levels:
            print(
                f"| {s.layer} | {s.weights:,} | {100 * s.sparsity:.1f}% | "
                f"{s.entropy_bits_per_weight:.3f} | {s.huffman_bits_per_weight:.3f} | "
                f"{s.stored_bits_per_weight:.3f} ({s.stored_encoding}) |"
            )
        record["levels"] = [{**vars(s), "sparsity": s.sparsity} for s in levels]
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models",
        nargs="+",
        choices=sorted(BUILDERS),
        default=["lenet300", "lenet5", "ternary", "fivelevel"],
    )
    parser.add_argument("--baseline-epochs", type=int, default=12)
    parser.add_argument("--lenet5-baseline-epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs-per-round", type=int, default=2)
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--baseline-lr", type=float, default=1e-3)
    parser.add_argument("--prune-lr", type=float, default=3e-4)
    parser.add_argument("--finetune-lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=tempfile.gettempdir(), help="where .kbz files go")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args(argv)

    train = mnist("train[:55000]", args.batch_size, shuffle=True, seed=args.seed)
    validation = mnist("train[55000:]", 1000)
    test = mnist("test", 1000)
    print(
        f"tensorflow {tf.__version__}, kbnn {kbnn.__version__}, seed {args.seed}, "
        f"command: {' '.join(sys.argv)}"
    )
    records = [run(name, args, train, validation, test) for name in args.models]
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(records, handle, indent=2, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
