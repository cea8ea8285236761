"""Input data: MNIST pipelines through tensorflow-datasets, the small sample shipped with kbnn,
`DataSplits` (what a training data function returns) and the auto-shard policy of a pipeline.

Data: the MNIST database of handwritten digits (LeCun, Cortes, Burges), CC BY-SA 3.0.
`mnist()` never downloads unless asked: offline, tfds would otherwise retry for minutes before
failing, so a missing dataset is reported at once with the way to fix it.
"""

from __future__ import annotations

import dataclasses
import os
from importlib import resources

from kbnn._validation import fail
from kbnn.errors import KbnnError

import numpy as np

SAMPLE_RESOURCE = "mnist_sample.npz"
MNIST_NUM_CLASSES = 10


class DatasetNotFoundError(KbnnError):
    """The requested tfds dataset is not prepared in the data dir and downloading is off."""


def normalize_mnist(images) -> np.ndarray:
    """uint8 (N, 28, 28) or (N, 28, 28, 1) → float32 (N, 28, 28, 1) in [0, 1] (x / 255)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[1:] != (28, 28, 1):
        raise fail("images", "shape (N, 28, 28[, 1])", images.shape)
    return images.astype(np.float32) / np.float32(255.0)


def mnist_sample() -> tuple[np.ndarray, np.ndarray]:
    """The first 1,000 images of the real MNIST test split, shipped as package data.

    Returns `(images uint8 (N, 28, 28), labels int64 (N,))`; used offline by `kbnn quickstart`.
    """
    with resources.files("kbnn.resources").joinpath(SAMPLE_RESOURCE).open("rb") as handle:
        with np.load(handle) as data:
            return data["images"], data["labels"]


def tfds_data_dir() -> str | None:
    """The tfds data dir kbnn reads from: `TFDS_DATA_DIR` if set, else tfds' default."""
    return os.environ.get("TFDS_DATA_DIR") or None


def _builder(name: str, data_dir: str | None, download: bool):
    import tensorflow_datasets as tfds

    data_dir = data_dir or tfds_data_dir()
    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
        if not download:
            raise DatasetNotFoundError(
                f"tfds dataset {name!r} is not prepared in {builder.data_dir_root!r}; set "
                "TFDS_DATA_DIR to a tfds data dir that holds it, or pass download=True "
                "(CLI: --download) to fetch it"
            )
        builder.download_and_prepare()
    return builder


def mnist(
    split: str = "train",
    batch_size: int | None = 100,
    *,
    shuffle: bool = False,
    seed: int | None = None,
    repeat: bool = False,
    cache: bool = True,
    data_dir: str | None = None,
    download: bool = False,
    drop_remainder: bool = False,
):
    """MNIST from tfds as `tf.data`: images float32 (28, 28, 1) in [0, 1], labels int64.

    `batch_size=None` yields single examples (to batch yourself, e.g. per replica).
    """
    import tensorflow as tf

    builder = _builder("mnist", data_dir, download)
    dataset = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)

    def _to_float(image, label):
        return tf.cast(image, tf.float32) / 255.0, label

    dataset = dataset.map(_to_float, num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(10_000, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    if batch_size:
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE)


def mnist_arrays(split: str = "test", *, data_dir: str | None = None, download: bool = False):
    """The whole split as numpy: `(images float32 (N, 28, 28, 1), labels int64 (N,))`."""
    images, labels = [], []
    for x, y in mnist(
        split, batch_size=10_000, data_dir=data_dir, download=download, cache=False
    ).as_numpy_iterator():
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


@dataclasses.dataclass
class DataSplits:
    """What a dataset function returns: training and validation data for `fit` and the steps.

    `train`/`validation` are `tf.data.Dataset`s batched with the *global* batch size (Keras
    splits them over the replicas) or `tf.distribute.DistributedDataset`s already per replica.
    """

    train: object
    validation: object | None
    steps_per_epoch: int | None
    validation_steps: int | None = None


# How a `tf.data` pipeline is split across workers: the auto-shard policy, chosen on purpose.
# With several workers every worker runs its own copy of the input pipeline and `tf.data`
# rewrites it so each sees a different part of the data (`tf.distribute`'s auto-sharding):
# - "file": each worker reads a disjoint subset of the input *files*. Cheapest (no worker reads
#   what it throws away) but needs at least as many files as workers, and an even spread of
#   examples over files. kbnn's ImageNet pipeline shards by file itself (tfds `ReadConfig`).
# - "data": every worker reads *everything* and keeps every N-th element. Always correct, costs
#   N× the reading; needed when there are fewer files than workers (tfds MNIST is one file) and
#   correct only if the element order is the same on every worker (a seeded shuffle).
# - "auto": TensorFlow tries "file" and falls back to "data" — not deliberate, so kbnn never
#   leaves it implicit.
# - "off": no rewrite, for pipelines that shard themselves (`distribute_datasets_from_function`
#   with an `InputContext`), so nothing is sharded twice.
SHARD_POLICIES = ("file", "data", "auto", "off")


def shard_policy(name: str):
    """The `tf.data.experimental.AutoShardPolicy` for a name in `SHARD_POLICIES`."""
    import tensorflow as tf

    policies = tf.data.experimental.AutoShardPolicy
    table = {
        "file": policies.FILE,
        "data": policies.DATA,
        "auto": policies.AUTO,
        "off": policies.OFF,
    }
    key = name.strip().lower() if isinstance(name, str) else None
    if key not in table:
        raise fail("shard policy", f"one of {SHARD_POLICIES}", name)
    return table[key]


def with_shard_policy(dataset, policy: str):
    """`dataset` (a `tf.data.Dataset`) with its auto-shard policy set (other options kept)."""
    import tensorflow as tf

    if not isinstance(dataset, tf.data.Dataset):
        raise fail("dataset", "a tf.data.Dataset", type(dataset).__name__)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = shard_policy(policy)
    return dataset.with_options(options)
