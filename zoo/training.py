"""Training recipes: the parts `kbnn.zoo.train(name, ...)` / `kbnn train NAME` are made of.

The loop itself is `kbnn.distribute.train` (one code path for 1 and N replicas); this module
gives it `build_model_for_training` (model, optimizer and metrics; called under
`strategy.scope()`), `make_datasets` (the MNIST input pipeline from the *global* batch size),
the learning-rate defaults and the atomic best-checkpoint callback. The data is MNIST from tfds: the first 55,000 training
images train, the last 5,000 validate (the best checkpoint is picked on them), the 10,000 test
images are only evaluated.
"""

from __future__ import annotations

import os
import pathlib

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn.zoo import registry

import tensorflow as tf

OPTIMIZER_CHOICES = ("adam", "shift_adamax", "bop")
MNIST_TRAIN_SIZE = 60_000
DEFAULT_VALIDATION_SIZE = 5_000


# Learning rates for optimizers other than the recipe's own: ShiftAdaMax takes power-of-two
# steps and was best at 2^-8 in the SBN/ShiftAdaMax probe (docs/binarynet_training.md).
OPTIMIZER_LEARNING_RATES = {"shift_adamax": 2.0**-8}


def default_learning_rate(recipe, optimizer: str) -> float:
    """The recipe's learning rate for its own optimizer, else that optimizer's default (for the
    recipe's batch size; `kbnn.distribute.scale_learning_rate` adapts it to other batches)."""
    if optimizer == recipe.optimizer:
        return recipe.learning_rate
    return OPTIMIZER_LEARNING_RATES.get(optimizer, recipe.learning_rate)


def compile_model(model, optimizer=None, *, metrics=None):
    """Compile a zoo classifier: softmax outputs, sparse categorical cross-entropy, accuracy."""
    model.compile(
        optimizer=optimizer or tf.keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=metrics or ["accuracy"],
    )
    return model


def make_optimizer(name: str, *, learning_rate: float, decay_steps: int):
    """`adam` and `shift_adamax` with a cosine-decayed learning rate; `bop` (larq's Bop for binary
    kernels, Adam at `learning_rate` for the rest) with a constant one."""
    if name not in OPTIMIZER_CHOICES:
        raise ValueError(f"optimizer must be one of {OPTIMIZER_CHOICES}, got {name!r}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
    import kbnn.optimizers

    if name == "bop":
        return kbnn.optimizers.get("bop", learning_rate=learning_rate)
    schedule = tf.keras.optimizers.schedules.CosineDecay(learning_rate, max(1, decay_steps))
    if name == "adam":
        return tf.keras.optimizers.Adam(learning_rate=schedule)
    return kbnn.optimizers.ShiftAdaMax(learning_rate=schedule)


def build_model_for_training(name, *, optimizer="adam", learning_rate=None, bn="batchnorm",
                             decay_steps=1):
    """Model + optimizer + metrics, compiled; call inside `strategy.scope()` to distribute."""
    from kbnn.zoo import get

    spec = registry.spec(name)
    recipe = spec.recipe or registry.Recipe(epochs=1, batch_size=32)
    model = get(name, bn=bn, compile=False)
    opt = make_optimizer(optimizer,
                         learning_rate=learning_rate or default_learning_rate(recipe, optimizer),
                         decay_steps=decay_steps)
    return compile_model(model, opt)


def make_datasets(global_batch_size: int, *, validation_size=DEFAULT_VALIDATION_SIZE, seed=0,
                  steps_per_epoch=None, data_dir=None):
    """(train, validation, steps_per_epoch) for MNIST, batched with the global batch size.

    `steps_per_epoch` shortens epochs (the training set then repeats); default one pass."""
    from kbnn.data import mnist

    if not isinstance(global_batch_size, int) or global_batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {global_batch_size!r}")
    if not 0 <= validation_size < MNIST_TRAIN_SIZE:
        raise ValueError(f"validation_size must be in [0, {MNIST_TRAIN_SIZE}), got {validation_size}")
    cut = MNIST_TRAIN_SIZE - validation_size
    if steps_per_epoch is not None and (not isinstance(steps_per_epoch, int)
                                        or steps_per_epoch < 1):
        raise ValueError(f"steps_per_epoch must be a positive integer, got {steps_per_epoch!r}")
    train = mnist(f"train[:{cut}]", global_batch_size, shuffle=True, seed=seed,
                  repeat=steps_per_epoch is not None, data_dir=data_dir)
    val = (mnist(f"train[{cut}:]", 1000, data_dir=data_dir) if validation_size else None)
    steps = steps_per_epoch or -(-cut // global_batch_size)
    return train, val, steps


def save_model_atomic(model, path) -> pathlib.Path:
    """`model.save(path)` through a temporary `.keras` file in the same folder, then rename."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


class BestCheckpoint(tf.keras.callbacks.Callback):
    """Save the model whenever `monitor` reaches a new maximum (atomically, unlike Keras'
    ModelCheckpoint, so an interrupted run never leaves a half-written checkpoint)."""

    def __init__(self, path, monitor: str):
        super().__init__()
        self.path, self.monitor, self.best = pathlib.Path(path), monitor, -float("inf")

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and value > self.best:
            self.best = float(value)
            save_model_atomic(self.model, self.path)

