"""How a `tf.data` pipeline is split across workers: the auto-shard policy, chosen on purpose.

With several workers every worker runs its own copy of the input pipeline and `tf.data`
rewrites it so each sees a different part of the data (`tf.distribute`'s *auto-sharding*):

- `"file"`: each worker reads a disjoint subset of the input *files*. Cheapest (no worker reads
  what it throws away) but needs at least as many files as workers, and an even spread of
  examples over files. kbnn's ImageNet pipeline shards by file itself (tfds `ReadConfig`).
- `"data"`: every worker reads *everything* and keeps every N-th element. Always correct, costs
  N× the reading; needed when there are fewer files than workers (tfds MNIST is one file) and
  correct only if the element order is the same on every worker (a seeded shuffle).
- `"auto"`: TensorFlow tries `"file"` and falls back to `"data"` — not deliberate, so kbnn
  never leaves it implicit.
- `"off"`: no rewrite, for pipelines that shard themselves (`distribute_datasets_from_function`
  with an `InputContext`), so nothing is sharded twice.
"""

from __future__ import annotations

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn.errors import UsageError

import tensorflow as tf

__all__ = ["SHARD_POLICIES", "shard_policy", "with_shard_policy"]

SHARD_POLICIES = ("file", "data", "auto", "off")


def shard_policy(name: str) -> tf.data.experimental.AutoShardPolicy:
    """The `tf.data.experimental.AutoShardPolicy` for a name in `SHARD_POLICIES`."""
    policies = tf.data.experimental.AutoShardPolicy
    table = {"file": policies.FILE, "data": policies.DATA, "auto": policies.AUTO,
             "off": policies.OFF}
    key = name.strip().lower() if isinstance(name, str) else None
    if key not in table:
        raise UsageError(f"shard policy must be one of {SHARD_POLICIES}, got {name!r}")
    return table[key]


def with_shard_policy(dataset: tf.data.Dataset, policy: str) -> tf.data.Dataset:
    """`dataset` with its auto-shard policy set (the other options are kept)."""
    if not isinstance(dataset, tf.data.Dataset):
        raise UsageError(f"dataset must be a tf.data.Dataset, got {type(dataset).__name__}")
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = shard_policy(policy)
    return dataset.with_options(options)
