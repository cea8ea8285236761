"""Training: `kbnn.zoo.train(name, ...)` / `kbnn train NAME`, a zoo recipe on any
`tf.distribute` strategy, resumable, and the run folder it writes.

One code path for 1 and N replicas: the strategy (the default one included) opens its scope,
`build_model_for_training` creates the model, optimizer (Adam, ShiftAdaMax, larq's Bop in a
CaseOptimizer) and metrics inside it, and Keras' `fit` runs the steps on every replica. The
global batch is `per_replica_batch_size × replicas`; the learning rate is scaled from the
recipe's batch size by `kbnn.distribute.scale_learning_rate`. `BackupAndRestore` backs the whole
training state up so a restarted worker (or cluster) continues where it was.

MNIST data comes from tfds: the first 55,000 training images train, the last 5,000 validate (the
best checkpoint is picked on them), the 10,000 test images are only evaluated.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import pathlib
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence

from kbnn._io import write_atomic, write_with
from kbnn.data import DataSplits, with_shard_policy
from kbnn.distribute import precision, strategies
from kbnn.distribute.training import scale_learning_rate, synchronize_batch_norm
from kbnn.errors import UsageError
from kbnn.zoo import registry

import tensorflow as tf

OPTIMIZER_CHOICES = ("adam", "shift_adamax", "bop")
# The run folder `train` writes (read back by `kbnn.zoo.export` for the model card).
BACKUP_DIR = "backup"
CHECKPOINT_NAME = "model.keras"
CSV_NAME = "training_log.csv"
CURVES_NAME = "training_curves.png"
TENSORBOARD_DIR = "tensorboard"
RUN_INFO_NAME = "run.json"
HISTOGRAMS_NAME = "weight_histograms.png"

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
    """`model.save(path)` atomically (`kbnn._io.write_with`: a temporary file with the same
    suffix in the same folder, fsync, rename)."""
    return write_with(path, model.save)


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


@dataclasses.dataclass
class DistributedTrainResult:
    """What `train` produced on this worker."""

    model: tf.keras.Model  # local (not distributed): chief the best checkpoint, else final
    final_weights: list  # numpy arrays after the last epoch, the same on every worker
    history: dict
    epochs_run: list[int]  # 0-based epochs this call ran (after a restore: the remaining ones)
    output: pathlib.Path
    checkpoint: pathlib.Path
    test_accuracy: float | None
    strategy: str
    num_replicas: int
    global_batch_size: int
    learning_rate: float
    is_chief: bool
    seconds: float


def mnist_datasets(*, validation_size: int, seed: int, data_dir=None,
                   steps_per_epoch: int | None = None) -> Callable:
    """The MNIST recipe's data (`kbnn.zoo.training.make_datasets`) sharded by *data*: tfds
    MNIST is one file, and its seeded shuffle gives every worker the same order."""

    def make(global_batch_size, strategy):
        extra = {}
        if steps_per_epoch is not None:  # shorter epochs: the training set repeats
            if "steps_per_epoch" not in inspect.signature(make_datasets).parameters:
                raise UsageError("this kbnn.zoo.training.make_datasets has no steps_per_epoch")
            extra["steps_per_epoch"] = steps_per_epoch
        train, val, steps = make_datasets(global_batch_size, validation_size=validation_size,
                                          seed=seed, data_dir=data_dir, **extra)
        val = with_shard_policy(val, "data") if val is not None else None
        return DataSplits(with_shard_policy(train, "data"), val, steps)

    return make


def _default_datasets(spec, *, validation_size, seed, data_dir, steps_per_epoch):
    if spec.dataset == "mnist":
        return mnist_datasets(validation_size=validation_size, seed=seed, data_dir=data_dir,
                              steps_per_epoch=steps_per_epoch)
    if spec.dataset == "imagenet":
        from kbnn import imagenet

        return imagenet.datasets_fn(data_dir=data_dir, seed=seed, image_size=spec.input_shape[0])
    raise UsageError(
        f"no built-in input pipeline for {spec.name!r} ({spec.dataset}); pass "
        "datasets=fn(global_batch_size, strategy) returning kbnn.data.DataSplits"
    )


def _as_splits(value) -> DataSplits:
    if isinstance(value, DataSplits):
        return value
    if isinstance(value, tuple) and len(value) in (3, 4):
        return DataSplits(*value)
    raise UsageError(
        "datasets(global_batch_size, strategy) must return DataSplits or a tuple "
        f"(train, validation, steps_per_epoch[, validation_steps]), got {type(value).__name__}"
    )


class _WorkerPaths:
    """Where this worker writes: the chief into `output`, the others into a private temporary
    folder deleted at the end (every worker must take part in saves — reading mirrored and
    sync-on-read variables is collective — but only the chief's files are kept)."""

    def __init__(self, output: pathlib.Path, chief: bool, index: int):
        self.chief = chief
        self.root = output if chief else pathlib.Path(
            tempfile.mkdtemp(prefix=f"kbnn-worker{index}-")
        )

    def __call__(self, name: str) -> pathlib.Path:
        return self.root / name

    def cleanup(self):
        if not self.chief:
            shutil.rmtree(self.root, ignore_errors=True)


def _strategy_name(strategy) -> str:
    return strategy if isinstance(strategy, str) else type(strategy).__name__


def _write_run_info(path: pathlib.Path, **info) -> None:
    """`run.json`: how the run was made (read by `kbnn.zoo.export` for the model card)."""
    write_atomic(path, json.dumps(info, indent=2) + "\n")


def _plot_weights(model, path: pathlib.Path) -> None:
    """Latent vs quantized weight histograms of the best checkpoint (models without quantized
    kernels have none)."""
    from kbnn.plotting import _quantized_kernel_layers, plot_weight_histograms

    if _quantized_kernel_layers(model):
        plot_weight_histograms(model, path)


def _check_positive(name, value, allow_none=True):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{name} must be a positive integer, got {value!r}")


def train(
    name: str,
    *,
    strategy="default",
    per_replica_batch_size: int | None = None,
    batch_size: int | None = None,
    epochs: int | None = None,
    optimizer: str | None = None,
    learning_rate: float | None = None,
    lr_scaling: str = "sqrt",
    bn: str = "batchnorm",
    sync_bn: bool = False,
    mixed_precision: str = "float32",
    output=None,
    backup_dir=None,
    backup_freq="epoch",
    steps_per_epoch: int | None = None,
    datasets: Callable | None = None,
    validation_size: int = 5000,
    data_dir=None,
    seed: int = 0,
    evaluate_test: bool = True,
    callbacks: Sequence[tf.keras.callbacks.Callback] = (),
    devices=None,
    tpu=None,
    communication: str = "auto",
    flip_ratio: bool = True,
    verbose: int = 1,
) -> DistributedTrainResult:
    """Train zoo model `name` with its recipe on `strategy`; arguments override the recipe.

    Arguments:
        strategy: "default" | "mirrored" | "multiworker" | "tpu" or a `tf.distribute.Strategy`
            (see `kbnn.distribute.get_strategy`; `devices`, `tpu`, `communication` go to it).
        per_replica_batch_size: default the recipe's batch size (tuned for one device); the
            global batch is this × `strategy.num_replicas_in_sync`.
        batch_size: the global batch instead (split evenly over the replicas); give one of
            the two.
        learning_rate, lr_scaling: the recipe's (or given) rate is for the recipe's batch size
            and scaled to the global batch by `scale_learning_rate(rule=lr_scaling)`.
        optimizer: "adam" | "shift_adamax" | "bop"; bn: "batchnorm" | "shift".
        sync_bn: batch statistics over the global batch (`synchronize_batch_norm`) instead of
            per replica (Keras' default: cheaper, and equivalent to BN with a smaller batch).
        mixed_precision: "float32" | "mixed_float16" | "mixed_bfloat16" (`with_precision`).
        output: folder for `model.keras` (best validation accuracy), `training_log.csv`,
            `tensorboard/`, `training_curves.png` (chief only); default `runs/<name>`.
        backup_dir: `BackupAndRestore` folder (default `<output>/backup`); must be on storage
            every worker sees. backup_freq: "epoch" or a number of steps.
        steps_per_epoch: cap the steps per epoch (default: one pass over the data).
        datasets: `fn(global_batch_size, strategy) -> DataSplits` replacing the recipe's data
            (MNIST from tfds; the ImageNet pipeline of `kbnn.imagenet` for ImageNet models).
        callbacks: extra Keras callbacks.
        flip_ratio: track larq's latent-weight flip ratio per quantized kernel
            (`kbnn.analysis.enable_flip_ratio`): `flip_ratio/<layer>` in the history, the CSV
            log, TensorBoard and the curves plot.

    Writes (chief) into `output`: `model.keras` (best validation accuracy, atomically),
    `training_log.csv` (appended to when resuming from a backup), `tensorboard/`,
    `training_curves.png` (`kbnn.plotting.plot_training_curves`), `weight_histograms.png`
    (latent vs quantized weights of the best checkpoint, `plot_weight_histograms`) and
    `run.json` (the arguments, replicas and seconds).
    """
    spec = registry.spec(name)
    recipe = spec.recipe or registry.Recipe(epochs=1, batch_size=32)
    epochs = recipe.epochs if epochs is None else epochs
    if per_replica_batch_size is not None and batch_size is not None:
        raise UsageError("give per_replica_batch_size or batch_size (global), not both")
    _check_positive("per_replica_batch_size", per_replica_batch_size)
    _check_positive("batch_size", batch_size)
    optimizer = optimizer or recipe.optimizer
    _check_positive("epochs", epochs, allow_none=False)
    _check_positive("steps_per_epoch", steps_per_epoch)
    if optimizer not in OPTIMIZER_CHOICES:
        raise UsageError(f"optimizer must be one of {OPTIMIZER_CHOICES}, got {optimizer!r}")
    precision.check_policy(mixed_precision)
    if not (backup_freq == "epoch" or (isinstance(backup_freq, int)
                                       and not isinstance(backup_freq, bool) and backup_freq > 0)):
        raise UsageError(f"backup_freq must be 'epoch' or a positive integer, got {backup_freq!r}")

    strategy_obj = strategies.get_strategy(strategy, devices=devices, tpu=tpu,
                                           communication=communication)
    replicas = strategy_obj.num_replicas_in_sync
    if batch_size is not None:
        if batch_size % replicas:
            raise UsageError(f"batch_size {batch_size} does not split evenly over {replicas} "
                             "replicas; use a multiple or give per_replica_batch_size")
        per_replica_batch_size = batch_size // replicas
    elif per_replica_batch_size is None:
        per_replica_batch_size = recipe.batch_size
    global_batch = strategies.global_batch_size(per_replica_batch_size, strategy_obj)
    lr = scale_learning_rate(learning_rate or default_learning_rate(recipe, optimizer),
                             global_batch_size=global_batch,
                             reference_batch_size=recipe.batch_size, rule=lr_scaling)
    chief = strategies.is_chief(strategy_obj)
    index, _ = strategies.worker_index(strategy_obj)
    output = pathlib.Path(output or os.path.join("runs", name))
    backup_dir = pathlib.Path(backup_dir or output / BACKUP_DIR)
    if chief:
        output.mkdir(parents=True, exist_ok=True)
    tf.keras.utils.set_random_seed(seed)  # the same on every worker

    make = datasets or _default_datasets(spec, validation_size=validation_size, seed=seed,
                                         data_dir=data_dir, steps_per_epoch=steps_per_epoch)
    splits = _as_splits(make(global_batch, strategy_obj))
    steps = steps_per_epoch or splits.steps_per_epoch
    if steps is None:
        raise UsageError("steps_per_epoch is unknown for this data; pass steps_per_epoch")

    with strategy_obj.scope():
        model = build_model_for_training(name, optimizer=optimizer, learning_rate=lr, bn=bn,
                                         decay_steps=epochs * steps)
        opt = model.optimizer
        if sync_bn:
            model = synchronize_batch_norm(model)
        if mixed_precision != "float32":
            model = precision.with_precision(model, mixed_precision)
        if sync_bn or mixed_precision != "float32":  # a rebuilt copy: compile it again
            compile_model(model, precision.loss_scale_optimizer(opt, mixed_precision))
        if flip_ratio:
            from kbnn.analysis import enable_flip_ratio

            enable_flip_ratio(model)

    paths = _WorkerPaths(output, chief, index)
    monitor = "val_accuracy" if splits.validation is not None else "accuracy"
    resuming = backup_dir.is_dir() and any(backup_dir.iterdir())
    fit_callbacks = [
        tf.keras.callbacks.BackupAndRestore(str(backup_dir), save_freq=backup_freq),
        BestCheckpoint(paths(CHECKPOINT_NAME), monitor),
        tf.keras.callbacks.CSVLogger(str(paths(CSV_NAME)), append=resuming),
        tf.keras.callbacks.TensorBoard(str(output / TENSORBOARD_DIR), write_graph=False),
        *callbacks,
    ]
    start = time.time()
    try:
        history = model.fit(
            splits.train, epochs=epochs, steps_per_epoch=steps,
            validation_data=splits.validation, validation_steps=splits.validation_steps,
            callbacks=fit_callbacks, verbose=verbose if chief else 0,
        )
        seconds = time.time() - start
        checkpoint = output / CHECKPOINT_NAME
        if splits.validation is None:  # no validation: keep the final weights
            save_model_atomic(model, paths(CHECKPOINT_NAME))
        # Every worker reads the weights at the same point: reading sync-on-read variables (the
        # BN moving statistics) is an all-reduce in multi-worker training.
        final_weights = model.get_weights()
    finally:
        paths.cleanup()

    best, test_accuracy = None, None
    if chief:
        from kbnn.plotting import plot_training_curves

        if history.epoch:  # from the CSV: it also holds the epochs before a restore
            plot_training_curves(output / CSV_NAME, output / CURVES_NAME, title=name)
        _write_run_info(output / RUN_INFO_NAME, name=name, strategy=_strategy_name(strategy),
                        replicas=strategy_obj.num_replicas_in_sync, epochs=epochs,
                        per_replica_batch_size=per_replica_batch_size,
                        global_batch_size=global_batch, optimizer=optimizer,
                        learning_rate=lr, lr_scaling=lr_scaling, bn=bn, sync_bn=sync_bn,
                        mixed_precision=mixed_precision, validation_size=validation_size,
                        seed=seed, steps_per_epoch=steps, epochs_run=list(history.epoch),
                        seconds=round(seconds, 1))
        best = tf.keras.models.load_model(checkpoint)
        _plot_weights(best, output / HISTOGRAMS_NAME)
        if evaluate_test and spec.dataset == "mnist" and datasets is None:
            from kbnn.zoo.evaluation import evaluate_mnist

            test_accuracy = evaluate_mnist(best, data_dir=data_dir)
    else:  # a local copy of the final weights, readable without the other workers
        best = tf.keras.models.clone_model(model)
        best.set_weights(final_weights)
    if verbose and chief:
        print(f"{name}: {len(history.epoch)} epochs on {strategy_obj.num_replicas_in_sync} "
              f"replicas (global batch {global_batch}, lr {lr:.3g}) in {seconds:.0f} s; "
              f"checkpoint {checkpoint}"
              + (f"; test accuracy {test_accuracy:.4f}" if test_accuracy is not None else ""))
    strategy_name = _strategy_name(strategy)
    return DistributedTrainResult(
        model=best, final_weights=final_weights, history=history.history,
        epochs_run=list(history.epoch), output=output, checkpoint=checkpoint,
        test_accuracy=test_accuracy, strategy=strategy_name,
        num_replicas=strategy_obj.num_replicas_in_sync, global_batch_size=global_batch,
        learning_rate=lr, is_chief=chief, seconds=seconds,
    )
