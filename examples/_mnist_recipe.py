"""Shared command line and training loop of the MNIST examples (tfds MNIST, model.fit).

Not an example itself: `binarynet_mnist.py`, `ternarynet_mnist.py` and `dorefanet_mnist.py`
define their models and call `run(build_model, ...)`.
"""

import argparse
import os
import pathlib

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import data

import larq as lq
import tensorflow as tf

MNIST_TRAIN_SIZE = 60_000


def parse_args(
    description: str, learning_rate: float, argv=None, add_arguments=None
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    if add_arguments:
        add_arguments(parser)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="steps per epoch (default: one pass over the 60,000 images)",
    )
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument(
        "--lr",
        type=float,
        default=learning_rate,
        help="Adam learning rate, cosine-decayed to 0 over the run",
    )
    parser.add_argument(
        "--eval-steps",
        type=int,
        default=None,
        help="test batches to evaluate (default: the whole test split)",
    )
    parser.add_argument("--jit", action="store_true", help="compile the train step with XLA")
    parser.add_argument(
        "--save",
        type=pathlib.Path,
        default=None,
        help="write the trained model here (.keras or .h5)",
    )
    args = parser.parse_args(argv)
    for name in ("epochs", "steps", "batch_size", "eval_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    return args


def run(
    build_model, description: str, learning_rate: float, argv=None, add_arguments=None
) -> float:
    """Train `build_model(args)` on MNIST with Adam, print larq's summary and the test accuracy.

    `add_arguments(parser)` may add example-specific options, read back from `args`.
    """
    args = parse_args(description, learning_rate, argv, add_arguments)
    tf.keras.utils.set_random_seed(0)
    model = build_model(args)
    lq.models.summary(model)

    steps = args.steps or MNIST_TRAIN_SIZE // args.batch_size
    schedule = tf.keras.optimizers.schedules.CosineDecay(args.lr, steps * args.epochs)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=args.jit,
    )
    train = data.mnist("train", args.batch_size, shuffle=True, seed=0, repeat=True)
    test = data.mnist("test", args.batch_size)
    model.fit(train, epochs=args.epochs, steps_per_epoch=steps, verbose=2)
    _, accuracy = model.evaluate(test, steps=args.eval_steps, verbose=0)
    print(f"test accuracy: {accuracy:.4f}")

    if args.save:
        # write to a temporary name first so a crash never leaves a half-written model
        tmp = args.save.with_name(f".{args.save.stem}.tmp{args.save.suffix}")
        model.save(tmp)
        os.replace(tmp, args.save)
        print(f"saved {args.save}")
    return accuracy
