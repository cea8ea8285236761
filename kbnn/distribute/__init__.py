"""kbnn.distribute: zoo recipes on TensorFlow's own distribution engine, `tf.distribute`.

    import kbnn.distribute as kd
    result = kd.train("binarynet_mnist", strategy="mirrored", per_replica_batch_size=100)

- `get_strategy(name)`: "default" | "mirrored" | "multiworker" (TF_CONFIG) | "tpu".
- `train(name, strategy=..., ...)`: model/optimizer/metrics/BN built in `strategy.scope()`,
  global batch = per-replica batch × replicas, learning-rate scaling, BackupAndRestore.
- `synchronize_batch_norm(model)`, `with_precision(model, policy)`: distribution- and
  mixed-precision-ready copies of a model; `with_shard_policy(dataset, policy)`.

See docs/distributed_training.md for the commands on N GPUs and on a cluster.
"""

from __future__ import annotations

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn.distribute.precision import (
    POLICY_CHOICES,
    float32_reason,
    loss_scale_optimizer,
    with_precision,
)
from kbnn.distribute.sharding import SHARD_POLICIES, shard_policy, with_shard_policy
from kbnn.distribute.strategies import (
    COMMUNICATION_CHOICES,
    STRATEGY_CHOICES,
    DeviceNotFoundError,
    get_strategy,
    global_batch_size,
    is_chief,
    split_cpu,
    tf_config,
    worker_index,
)
from kbnn.distribute.training import (
    LR_SCALING_CHOICES,
    DataSplits,
    DistributedTrainResult,
    mnist_datasets,
    scale_learning_rate,
    synchronize_batch_norm,
    train,
)

__all__ = [
    "COMMUNICATION_CHOICES",
    "LR_SCALING_CHOICES",
    "POLICY_CHOICES",
    "SHARD_POLICIES",
    "STRATEGY_CHOICES",
    "DataSplits",
    "DeviceNotFoundError",
    "DistributedTrainResult",
    "float32_reason",
    "get_strategy",
    "global_batch_size",
    "is_chief",
    "loss_scale_optimizer",
    "mnist_datasets",
    "scale_learning_rate",
    "shard_policy",
    "split_cpu",
    "synchronize_batch_norm",
    "tf_config",
    "train",
    "with_precision",
    "with_shard_policy",
    "worker_index",
]
