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
import json
import os
import pathlib
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence

from kbnn import imagenet, optimizers
from kbnn._io import write_atomic, write_with
from kbnn._validation import (
    check_choice,
    check_int,
    check_positive_int,
    check_positive_number,
    fail,
)
from kbnn.analysis import enable_flip_ratio
from kbnn.data import DataSplits, mnist, with_shard_policy
from kbnn.distribute import precision, strategies
from kbnn.distribute.training import (
    LR_SCALING_CHOICES,
    scale_learning_rate,
    synchronize_batch_norm,
)
from kbnn.errors import UsageError
from kbnn.kernels import quantized_kernel_layers
from kbnn.plotting import plot_training_curves, plot_weight_histograms
from kbnn.zoo import cards, registry
from kbnn.zoo import weights as weight_files
from kbnn.zoo.api import get
from kbnn.zoo.evaluation import evaluate_mnist

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
    check_choice(name, "optimizer", OPTIMIZER_CHOICES)
    check_positive_number(learning_rate, "learning_rate")

    if name == "bop":
        return optimizers.get("bop", learning_rate=learning_rate)
    schedule = tf.keras.optimizers.schedules.CosineDecay(learning_rate, max(1, decay_steps))
    if name == "adam":
        return tf.keras.optimizers.Adam(learning_rate=schedule)
    return optimizers.ShiftAdaMax(learning_rate=schedule)


def build_model_for_training(
    name, *, optimizer="adam", learning_rate=None, bn="batchnorm", decay_steps=1
):
    """Model + optimizer + metrics, compiled; call inside `strategy.scope()` to distribute."""
    spec = registry.spec(name)
    recipe = spec.recipe or registry.Recipe(epochs=1, batch_size=32)
    model = get(name, bn=bn, compile=False)
    opt = make_optimizer(
        optimizer,
        learning_rate=learning_rate or default_learning_rate(recipe, optimizer),
        decay_steps=decay_steps,
    )
    return compile_model(model, opt)


def make_datasets(
    global_batch_size: int,
    *,
    validation_size=DEFAULT_VALIDATION_SIZE,
    seed=0,
    steps_per_epoch=None,
    data_dir=None,
):
    """(train, validation, steps_per_epoch) for MNIST, batched with the global batch size.

    `steps_per_epoch` shortens epochs (the training set then repeats); default one pass."""
    check_positive_int(global_batch_size, "batch_size")
    check_int(validation_size, "validation_size", low=0, high=MNIST_TRAIN_SIZE - 1)
    check_positive_int(steps_per_epoch, "steps_per_epoch", allow_none=True)
    cut = MNIST_TRAIN_SIZE - validation_size
    train = mnist(
        f"train[:{cut}]",
        global_batch_size,
        shuffle=True,
        seed=seed,
        repeat=steps_per_epoch is not None,
        data_dir=data_dir,
    )
    val = mnist(f"train[{cut}:]", 1000, data_dir=data_dir) if validation_size else None
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


def mnist_datasets(
    *, validation_size: int, seed: int, data_dir=None, steps_per_epoch: int | None = None
) -> Callable:
    """The MNIST recipe's data (`kbnn.zoo.training.make_datasets`) sharded by *data*: tfds
    MNIST is one file, and its seeded shuffle gives every worker the same order."""

    def make(global_batch_size, strategy):
        train, val, steps = make_datasets(
            global_batch_size,
            validation_size=validation_size,
            seed=seed,
            data_dir=data_dir,
            steps_per_epoch=steps_per_epoch,
        )
        val = with_shard_policy(val, "data") if val is not None else None
        return DataSplits(with_shard_policy(train, "data"), val, steps)

    return make


def _default_datasets(spec, *, validation_size, seed, data_dir, steps_per_epoch):
    if spec.dataset == "mnist":
        return mnist_datasets(
            validation_size=validation_size,
            seed=seed,
            data_dir=data_dir,
            steps_per_epoch=steps_per_epoch,
        )
    if spec.dataset == "imagenet":
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
        self.root = (
            output if chief else pathlib.Path(tempfile.mkdtemp(prefix=f"kbnn-worker{index}-"))
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
    if quantized_kernel_layers(model):
        plot_weight_histograms(model, path)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How `train` runs a zoo recipe; every field left at None takes the recipe's value.

    strategy: "default" | "mirrored" | "multiworker" | "tpu" or a `tf.distribute.Strategy`
        (`kbnn.distribute.get_strategy`; `devices`, `tpu`, `communication` go to it).
    per_replica_batch_size: default the recipe's batch size (tuned for one device); the global
        batch is this × `strategy.num_replicas_in_sync`. batch_size: the global batch instead
        (split evenly over the replicas); give one of the two.
    learning_rate, lr_scaling: the recipe's (or given) rate is for the recipe's batch size and
        scaled to the global batch by `kbnn.distribute.scale_learning_rate(rule=lr_scaling)`.
    optimizer: "adam" | "shift_adamax" | "bop"; bn: "batchnorm" | "shift".
    sync_bn: batch statistics over the global batch (`synchronize_batch_norm`) instead of per
        replica (Keras' default: cheaper, and equivalent to BN with a smaller batch).
    mixed_precision: "float32" | "mixed_float16" | "mixed_bfloat16" (`with_precision`).
    output: the run folder (default `runs/<name>`). backup_dir: `BackupAndRestore` folder
        (default `<output>/backup`); must be on storage every worker sees. backup_freq:
        "epoch" or a number of steps.
    steps_per_epoch: cap the steps per epoch (default: one pass over the data).
    datasets: `fn(global_batch_size, strategy) -> kbnn.data.DataSplits` replacing the recipe's
        data (MNIST from tfds; the ImageNet pipeline of `kbnn.imagenet` for ImageNet models).
    callbacks: extra Keras callbacks. flip_ratio: track larq's latent-weight flip ratio per
        quantized kernel (`kbnn.analysis.enable_flip_ratio`): `flip_ratio/<layer>` in the
        history, the CSV log, TensorBoard and the curves plot.
    init_from: start from these weights instead of a random initialisation (fine-tuning): a
        zoo name with pretrained weights, or a weights file (`load_weights_file`); matched by
        layer name, every variable of the model must be in it with its shape.
    """

    strategy: object = "default"
    per_replica_batch_size: int | None = None
    batch_size: int | None = None
    epochs: int | None = None
    optimizer: str | None = None
    learning_rate: float | None = None
    lr_scaling: str = "sqrt"
    bn: str = "batchnorm"
    sync_bn: bool = False
    mixed_precision: str = "float32"
    output: object = None
    backup_dir: object = None
    backup_freq: object = "epoch"
    steps_per_epoch: int | None = None
    datasets: Callable | None = None
    validation_size: int = DEFAULT_VALIDATION_SIZE
    data_dir: object = None
    seed: int = 0
    evaluate_test: bool = True
    callbacks: Sequence[tf.keras.callbacks.Callback] = ()
    devices: object = None
    tpu: object = None
    communication: str = "auto"
    flip_ratio: bool = True
    verbose: int = 1
    init_from: object = None

    def check(self) -> None:
        """Reject bad values before anything is built (the recipe-dependent ones in `_plan`)."""
        if self.per_replica_batch_size is not None and self.batch_size is not None:
            raise UsageError("give per_replica_batch_size or batch_size (global), not both")
        check_positive_int(self.per_replica_batch_size, "per_replica_batch_size", allow_none=True)
        check_positive_int(self.batch_size, "batch_size", allow_none=True)
        check_positive_int(self.steps_per_epoch, "steps_per_epoch", allow_none=True)
        check_choice(self.lr_scaling, "lr_scaling", LR_SCALING_CHOICES)
        precision.check_policy(self.mixed_precision)
        if self.backup_freq != "epoch":
            try:
                check_positive_int(self.backup_freq, "backup_freq")
            except UsageError:
                raise fail(
                    "backup_freq", "'epoch' or a positive integer", self.backup_freq
                ) from None


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What a run resolves to on its strategy: the recipe merged with the config."""

    strategy: tf.distribute.Strategy
    epochs: int
    optimizer: str
    per_replica_batch_size: int
    global_batch_size: int
    learning_rate: float
    chief: bool
    worker: int
    output: pathlib.Path
    backup_dir: pathlib.Path


def _plan(name: str, config: TrainConfig) -> _Plan:
    recipe = registry.spec(name).recipe or registry.Recipe(epochs=1, batch_size=32)
    epochs = recipe.epochs if config.epochs is None else config.epochs
    optimizer = config.optimizer or recipe.optimizer
    check_positive_int(epochs, "epochs")
    check_choice(optimizer, "optimizer", OPTIMIZER_CHOICES)
    strategy = strategies.get_strategy(
        config.strategy, devices=config.devices, tpu=config.tpu, communication=config.communication
    )
    replicas = strategy.num_replicas_in_sync
    per_replica = config.per_replica_batch_size or recipe.batch_size
    if config.batch_size is not None:
        if config.batch_size % replicas:
            raise UsageError(
                f"batch_size {config.batch_size} does not split evenly over "
                f"{replicas} replicas; use a multiple or give per_replica_batch_size"
            )
        per_replica = config.batch_size // replicas
    global_batch = strategies.global_batch_size(per_replica, strategy)
    rate = config.learning_rate or default_learning_rate(recipe, optimizer)
    output = pathlib.Path(config.output or os.path.join("runs", name))
    return _Plan(
        strategy=strategy,
        epochs=epochs,
        optimizer=optimizer,
        per_replica_batch_size=per_replica,
        global_batch_size=global_batch,
        learning_rate=scale_learning_rate(
            rate,
            global_batch_size=global_batch,
            reference_batch_size=recipe.batch_size,
            rule=config.lr_scaling,
        ),
        chief=strategies.is_chief(strategy),
        worker=strategies.worker_index(strategy)[0],
        output=output,
        backup_dir=pathlib.Path(config.backup_dir or output / BACKUP_DIR),
    )


def _build(name: str, config: TrainConfig, plan: _Plan, steps: int) -> tf.keras.Model:
    """The compiled model, built in the strategy's scope (sync BN, precision, flip ratio)."""
    with plan.strategy.scope():
        model = build_model_for_training(
            name,
            optimizer=plan.optimizer,
            learning_rate=plan.learning_rate,
            bn=config.bn,
            decay_steps=plan.epochs * steps,
        )
        if config.init_from is not None:
            load_initial_weights(model, config.init_from)
        opt = model.optimizer
        if config.sync_bn:
            model = synchronize_batch_norm(model)
        if config.mixed_precision != "float32":
            model = precision.with_precision(model, config.mixed_precision)
        if config.sync_bn or config.mixed_precision != "float32":  # a rebuilt copy: compile
            compile_model(model, precision.loss_scale_optimizer(opt, config.mixed_precision))
        if config.flip_ratio:
            enable_flip_ratio(model)
    return model


def initial_weights_file(source) -> tuple[pathlib.Path, str | None]:
    """(path, sha256 or None) of `init_from`: a zoo name's shipped weights or a file."""
    if isinstance(source, str) and source in registry.list_models():
        shipped = cards.shipped_weights(source)
        if shipped is None:
            raise UsageError(f"init_from: zoo model {source!r} ships no pretrained weights")
        return shipped
    if not isinstance(source, str | os.PathLike) or not os.path.isfile(source):
        raise fail("init_from", "a zoo model with pretrained weights or a weights file", source)
    return pathlib.Path(source), None


def load_initial_weights(model, source) -> None:
    """Fine-tuning start: assign the weights of `source` (`initial_weights_file`) to `model` by
    layer name; every variable of `model` must be there with its shape (`kbnn.zoo.weights`)."""
    path, sha256 = initial_weights_file(source)
    if sha256 is not None:
        weight_files.load_compact(model, path, sha256=sha256)
    else:
        weight_files.load_weights_file(model, path)


def _fit(model, splits: DataSplits, config: TrainConfig, plan: _Plan, steps: int):
    """`model.fit` with the run's callbacks; returns (history, final weights, seconds)."""
    paths = _WorkerPaths(plan.output, plan.chief, plan.worker)
    monitor = "val_accuracy" if splits.validation is not None else "accuracy"
    resuming = plan.backup_dir.is_dir() and any(plan.backup_dir.iterdir())
    fit_callbacks = [  # checkpoint before backup: a run killed between the two, once
        BestCheckpoint(paths(CHECKPOINT_NAME), monitor),  # resumed, still has its checkpoint
        tf.keras.callbacks.BackupAndRestore(str(plan.backup_dir), save_freq=config.backup_freq),
        tf.keras.callbacks.CSVLogger(str(paths(CSV_NAME)), append=resuming),
        tf.keras.callbacks.TensorBoard(str(plan.output / TENSORBOARD_DIR), write_graph=False),
        *config.callbacks,
    ]
    start = time.time()
    try:
        history = model.fit(
            splits.train,
            epochs=plan.epochs,
            steps_per_epoch=steps,
            validation_data=splits.validation,
            validation_steps=splits.validation_steps,
            callbacks=fit_callbacks,
            verbose=config.verbose if plan.chief else 0,
        )
        seconds = time.time() - start
        if splits.validation is None:  # no validation: keep the final weights
            save_model_atomic(model, paths(CHECKPOINT_NAME))
        # Every worker reads the weights at the same point: reading sync-on-read variables (the
        # BN moving statistics) is an all-reduce in multi-worker training.
        final_weights = model.get_weights()
    finally:
        paths.cleanup()
    return history, final_weights, seconds


def _write_chief_outputs(name, config: TrainConfig, plan: _Plan, history, steps, seconds):
    """Curves, `run.json`, weight histograms; returns (best model, test accuracy or None)."""
    output = plan.output
    if history.epoch:  # from the CSV: it also holds the epochs before a restore
        plot_training_curves(output / CSV_NAME, output / CURVES_NAME, title=name)
    _write_run_info(
        output / RUN_INFO_NAME,
        name=name,
        strategy=_strategy_name(config.strategy),
        replicas=plan.strategy.num_replicas_in_sync,
        epochs=plan.epochs,
        per_replica_batch_size=plan.per_replica_batch_size,
        global_batch_size=plan.global_batch_size,
        optimizer=plan.optimizer,
        learning_rate=plan.learning_rate,
        lr_scaling=config.lr_scaling,
        bn=config.bn,
        sync_bn=config.sync_bn,
        mixed_precision=config.mixed_precision,
        validation_size=config.validation_size,
        seed=config.seed,
        steps_per_epoch=steps,
        epochs_run=list(history.epoch),
        seconds=round(seconds, 1),
    )
    best = tf.keras.models.load_model(output / CHECKPOINT_NAME)
    _plot_weights(best, output / HISTOGRAMS_NAME)
    test_accuracy = None
    if config.evaluate_test and registry.spec(name).dataset == "mnist" and config.datasets is None:
        test_accuracy = evaluate_mnist(best, data_dir=config.data_dir)
    return best, test_accuracy


def train(name: str, config: TrainConfig | None = None, **overrides) -> DistributedTrainResult:
    """Train zoo model `name` with its recipe on a `tf.distribute` strategy.

    `config` (a `TrainConfig`, default all recipe values) with `overrides` (its field names as
    keywords: `train("binarynet_mnist", strategy="mirrored", epochs=3)`) says how.

    Writes (chief) into the run folder: `model.keras` (best validation accuracy, atomically),
    `training_log.csv` (appended to when resuming from a backup), `tensorboard/`,
    `training_curves.png` (`kbnn.plotting.plot_training_curves`), `weight_histograms.png`
    (latent vs quantized weights of the best checkpoint, `plot_weight_histograms`) and
    `run.json` (the arguments, replicas and seconds).
    """
    config = dataclasses.replace(config or TrainConfig(), **overrides)
    registry.spec(name)  # an unknown name fails first
    config.check()
    if config.init_from is not None:
        initial_weights_file(config.init_from)
    plan = _plan(name, config)
    if plan.chief:
        plan.output.mkdir(parents=True, exist_ok=True)
    tf.keras.utils.set_random_seed(config.seed)  # the same on every worker

    spec = registry.spec(name)
    make = config.datasets or _default_datasets(
        spec,
        validation_size=config.validation_size,
        seed=config.seed,
        data_dir=config.data_dir,
        steps_per_epoch=config.steps_per_epoch,
    )
    splits = _as_splits(make(plan.global_batch_size, plan.strategy))
    steps = config.steps_per_epoch or splits.steps_per_epoch
    if steps is None:
        raise UsageError("steps_per_epoch is unknown for this data; pass steps_per_epoch")

    model = _build(name, config, plan, steps)
    history, final_weights, seconds = _fit(model, splits, config, plan, steps)
    test_accuracy = None
    if plan.chief:
        best, test_accuracy = _write_chief_outputs(name, config, plan, history, steps, seconds)
    else:  # a local copy of the final weights, readable without the other workers
        best = tf.keras.models.clone_model(model)
        best.set_weights(final_weights)
    checkpoint = plan.output / CHECKPOINT_NAME
    if config.verbose and plan.chief:
        print(
            f"{name}: {len(history.epoch)} epochs on {plan.strategy.num_replicas_in_sync} "
            f"replicas (global batch {plan.global_batch_size}, lr {plan.learning_rate:.3g}) "
            f"in {seconds:.0f} s; checkpoint {checkpoint}"
            + (f"; test accuracy {test_accuracy:.4f}" if test_accuracy is not None else "")
        )
    return DistributedTrainResult(
        model=best,
        final_weights=final_weights,
        history=history.history,
        epochs_run=list(history.epoch),
        output=plan.output,
        checkpoint=checkpoint,
        test_accuracy=test_accuracy,
        strategy=_strategy_name(config.strategy),
        num_replicas=plan.strategy.num_replicas_in_sync,
        global_batch_size=plan.global_batch_size,
        learning_rate=plan.learning_rate,
        is_chief=plan.chief,
        seconds=seconds,
    )
