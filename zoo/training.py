"""Training recipes: `kbnn.zoo.train(name, ...)` and `kbnn train NAME`.

Split so a `tf.distribute` strategy can wrap it: `build_model_for_training` creates the model,
optimizer and metrics (call it under `strategy.scope()`), `make_datasets` builds the input
pipeline from the *global* batch size. The data is MNIST from tfds: the first 55,000 training
images train, the last 5,000 validate (the best checkpoint is picked on them), the 10,000 test
images are only evaluated.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import sys
import time

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn.zoo import registry

import tensorflow as tf

OPTIMIZER_CHOICES = ("adam", "shift_adamax", "bop")
MNIST_TRAIN_SIZE = 60_000
DEFAULT_VALIDATION_SIZE = 5_000
CHECKPOINT_NAME = "model.keras"
CSV_NAME = "training_log.csv"
CURVES_NAME = "training_curves.png"
TENSORBOARD_DIR = "tensorboard"


@dataclasses.dataclass
class TrainResult:
    """What `train` produced: the trained model (best checkpoint) and where files went."""

    model: tf.keras.Model
    history: dict
    output: pathlib.Path
    checkpoint: pathlib.Path
    test_accuracy: float | None


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
    opt = make_optimizer(optimizer, learning_rate=learning_rate or recipe.learning_rate,
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


def _callbacks(output: pathlib.Path, monitor: str):
    return [
        BestCheckpoint(output / CHECKPOINT_NAME, monitor),
        tf.keras.callbacks.CSVLogger(str(output / CSV_NAME)),
        tf.keras.callbacks.TensorBoard(str(output / TENSORBOARD_DIR), write_graph=False),
    ]


def _write_run_info(output: pathlib.Path, **info) -> None:
    from kbnn.zoo.export import RUN_INFO_NAME
    from kbnn.zoo.weights import _atomic_write

    _atomic_write(output / RUN_INFO_NAME, (json.dumps(info, indent=2) + "\n").encode())


def train(name, *, epochs=None, batch_size=None, optimizer=None, learning_rate=None,
          bn="batchnorm", output=None, validation_size=DEFAULT_VALIDATION_SIZE, seed=0,
          steps_per_epoch=None, evaluate_test=True, data_dir=None, verbose=1) -> TrainResult:
    """Train zoo model `name` on MNIST with its recipe (arguments override it).

    Writes into `output` (default `runs/<name>`): `model.keras` (best validation accuracy, or
    the last epoch when `validation_size=0`), `training_log.csv`, TensorBoard logs and
    `training_curves.png`; returns the best model and its test accuracy.
    """
    spec = registry.spec(name)
    if spec.dataset != "mnist":
        raise ValueError(
            f"kbnn train supports the MNIST models only; {name!r} is a {spec.dataset} model "
            "(build it with kbnn.zoo.get and train it with model.fit on your own data)"
        )
    recipe = spec.recipe or registry.Recipe(epochs=10, batch_size=100)
    epochs = recipe.epochs if epochs is None else epochs
    batch_size = recipe.batch_size if batch_size is None else batch_size
    optimizer = optimizer or recipe.optimizer
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    output = pathlib.Path(output or os.path.join("runs", name))
    output.mkdir(parents=True, exist_ok=True)
    tf.keras.utils.set_random_seed(seed)

    train_ds, val_ds, steps = make_datasets(batch_size, validation_size=validation_size,
                                            seed=seed, steps_per_epoch=steps_per_epoch,
                                            data_dir=data_dir)
    model = build_model_for_training(name, optimizer=optimizer, learning_rate=learning_rate,
                                     bn=bn, decay_steps=epochs * steps)
    monitor = "val_accuracy" if val_ds is not None else "accuracy"
    start = time.time()
    history = model.fit(train_ds, epochs=epochs, steps_per_epoch=steps,
                        validation_data=val_ds,
                        callbacks=_callbacks(output, monitor), verbose=verbose)
    seconds = time.time() - start
    checkpoint = output / CHECKPOINT_NAME
    if val_ds is None:  # no validation: keep the final weights
        save_model_atomic(model, checkpoint)
    from kbnn.zoo.plots import save_training_curves

    save_training_curves(history.history, output / CURVES_NAME, title=name)
    _write_run_info(output, name=name, epochs=epochs, batch_size=batch_size,
                    optimizer=optimizer, learning_rate=learning_rate or recipe.learning_rate,
                    bn=bn, validation_size=validation_size, seed=seed,
                    steps_per_epoch=steps,
                    seconds=round(seconds, 1))
    best = tf.keras.models.load_model(checkpoint)
    test_accuracy = None
    if evaluate_test:
        from kbnn.zoo.evaluation import evaluate_mnist

        test_accuracy = evaluate_mnist(best, data_dir=data_dir)
    if verbose:
        print(f"{name}: {epochs} epochs in {seconds:.0f} s; best checkpoint {checkpoint}"
              + (f"; test accuracy {test_accuracy:.4f}" if test_accuracy is not None else ""),
              file=sys.stdout)
    return TrainResult(best, history.history, output, checkpoint, test_accuracy)
