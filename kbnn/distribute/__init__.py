"""kbnn.distribute: TensorFlow's own distribution engine, `tf.distribute`, for kbnn models.

- `get_strategy(name)`: "default" | "mirrored" | "multiworker" (TF_CONFIG) | "tpu".
- `scale_learning_rate`: a learning rate tuned at one batch size, for the global batch.
- `synchronize_batch_norm(model)`, `with_precision(model, policy)`: distribution- and
  mixed-precision-ready copies of a model.

The zoo's training on a strategy is `kbnn.zoo.train` (`kbnn.zoo.training`); data splits and
shard policies are in `kbnn.data`.

See docs/distributed_training.md for the commands on N GPUs and on a cluster.
"""

from __future__ import annotations

from kbnn.distribute.precision import (
    POLICY_CHOICES,
    float32_reason,
    loss_scale_optimizer,
    with_precision,
)
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
    scale_learning_rate,
    synchronize_batch_norm,
)

__all__ = [
    "COMMUNICATION_CHOICES",
    "LR_SCALING_CHOICES",
    "POLICY_CHOICES",
    "STRATEGY_CHOICES",
    "DeviceNotFoundError",
    "float32_reason",
    "get_strategy",
    "global_batch_size",
    "is_chief",
    "loss_scale_optimizer",
    "scale_learning_rate",
    "split_cpu",
    "synchronize_batch_norm",
    "tf_config",
    "with_precision",
    "worker_index",
]
