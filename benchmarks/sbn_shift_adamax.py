"""BinaryNet's shift-based training vs. the float-multiply baseline on real MNIST.

Trains the seed BinaryNet CNN twice, with the same epochs, batch size, data order and seed:

- `bn_adam`:          BatchNormalization + Adam
- `sbn_shift_adamax`: ShiftBatchNormalization + ShiftAdaMax (BinaryNet Algorithms 3 and 4)

and prints the test accuracy after every epoch as a Markdown table (optionally JSON).

    TFDS_DATA_DIR=/work/shared/tensorflow_datasets \\
        nice -n 10 python benchmarks/sbn_shift_adamax.py --epochs 3

Network (the seed's TensorLayer BinaryNet, built from larq layers): conv 5x5x32 (float input,
binary kernel) → maxpool 2 → BN → [sign] conv 5x5x64 → maxpool 2 → BN → flatten → [sign]
dense 256 → BN → [sign] dense 10 → BN → softmax. Binary kernels are `ste_sign` of latent
weights clipped to [-1, 1] by larq's `weight_clip` constraint; binary activations are
`ste_sign`, whose gradient mask |x| <= 1 is hard-tanh's, so the seed's htanh before each sign
is implied.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import normalization, optimizers
from kbnn.data import mnist_arrays

import larq as lq
import numpy as np
import tensorflow as tf

CONFIGS = {
    "bn_adam": ("batchnorm", "adam"),
    "sbn_shift_adamax": ("shift", "shift_adamax"),
}
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-4


def seed_binarynet(bn: str) -> tf.keras.Model:
    """The seed BinaryNet CNN with float (`"batchnorm"`) or shift-based (`"shift"`) BN."""
    binary = dict(
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
    )

    def norm(name):
        return normalization.get(bn, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)

    inputs = tf.keras.Input((28, 28, 1), name="image")
    x = lq.layers.QuantConv2D(
        32,
        5,
        padding="same",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
        name="conv1",
    )(inputs)
    x = tf.keras.layers.MaxPool2D(2, name="pool1")(x)
    x = norm("bn1")(x)
    x = lq.layers.QuantConv2D(64, 5, padding="same", pad_values=1.0, name="conv2", **binary)(x)
    x = tf.keras.layers.MaxPool2D(2, name="pool2")(x)
    x = norm("bn2")(x)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    x = lq.layers.QuantDense(256, name="dense1", **binary)(x)
    x = norm("bn3")(x)
    x = lq.layers.QuantDense(10, name="dense2", **binary)(x)
    x = norm("bn4")(x)
    outputs = tf.keras.layers.Activation("softmax", name="softmax")(x)
    return tf.keras.Model(inputs, outputs, name=f"binarynet_mnist_{bn}")


def run_config(name, data, args) -> dict:
    bn, optimizer_name = CONFIGS[name]
    (x_train, y_train), (x_test, y_test) = data
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(args.seed)
    lr = args.adam_lr if optimizer_name == "adam" else args.shift_lr
    model = seed_binarynet(bn)
    model.compile(
        optimizer=optimizers.get(optimizer_name, learning_rate=lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    accuracies, seconds = [], []
    for epoch in range(args.epochs):
        start = time.perf_counter()
        model.fit(
            x_train,
            y_train,
            batch_size=args.batch_size,
            epochs=epoch + 1,
            initial_epoch=epoch,
            steps_per_epoch=args.steps_per_epoch,
            shuffle=True,
            verbose=0,
        )
        seconds.append(time.perf_counter() - start)
        _, accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
        accuracies.append(float(accuracy))
        print(
            f"{name}: epoch {epoch + 1}: test accuracy {100 * accuracy:.2f}% ({seconds[-1]:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    return {
        "config": name,
        "bn": bn,
        "optimizer": optimizer_name,
        "learning_rate": lr,
        "test_accuracy": accuracies,
        "train_seconds": seconds,
    }


def markdown(results, args) -> str:
    header = "| epoch | " + " | ".join(r["config"] for r in results) + " | difference (pp) |"
    lines = [header, "|---" * (len(results) + 2) + "|"]
    for epoch in range(args.epochs):
        accs = [100 * r["test_accuracy"][epoch] for r in results]
        diff = f"{accs[-1] - accs[0]:+.2f}" if len(accs) > 1 else ""
        lines.append(f"| {epoch + 1} | " + " | ".join(f"{a:.2f}%" for a in accs) + f" | {diff} |")
    lines.append(
        "| train s/epoch | "
        + " | ".join(f"{np.mean(r['train_seconds']):.0f}" for r in results)
        + " | |"
    )
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument(
        "--steps-per-epoch", type=int, default=None, help="default: the whole training split"
    )
    parser.add_argument("--adam-lr", type=float, default=1e-3)
    parser.add_argument("--shift-lr", type=float, default=2.0**-8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown --configs {unknown}; choose from {list(CONFIGS)}")
    for flag in ("epochs", "batch_size"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if not os.environ.get("TFDS_DATA_DIR"):
        print("set TFDS_DATA_DIR to a tfds data dir that holds mnist", file=sys.stderr)
        return 2
    data = (mnist_arrays("train"), mnist_arrays("test"))
    results = [run_config(name, data, args) for name in args.configs]
    print(markdown(results, args))
    if args.json:
        payload = {"args": {k: v for k, v in vars(args).items() if k != "json"}, "results": results}
        directory = os.path.dirname(os.path.abspath(args.json))
        with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as f:
            json.dump(payload, f, indent=2)
        os.replace(f.name, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
