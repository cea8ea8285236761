"""Distribution helpers for `fit`: learning-rate scaling to the global batch and batch
normalisation synchronized over the replicas. The zoo's training function that uses them,
with its run-folder layout, is `kbnn.zoo.training.train`.
"""

from __future__ import annotations

import inspect
import math

from kbnn._validation import check_choice, check_positive_int, check_positive_number
from kbnn.errors import UsageError
from kbnn.normalization import ShiftBatchNormalization

import tensorflow as tf

__all__ = [
    "LR_SCALING_CHOICES",
    "scale_learning_rate",
    "synchronize_batch_norm",
]

LR_SCALING_CHOICES = ("linear", "sqrt", "none")


def scale_learning_rate(
    learning_rate: float, *, global_batch_size: int, reference_batch_size: int, rule: str = "sqrt"
) -> float:
    """The learning rate for `global_batch_size`, given one tuned at `reference_batch_size`.

    With `k = global_batch_size / reference_batch_size`:
    - `"linear"`: `lr · k` (Goyal et al. 2017, "Accurate, Large Minibatch SGD"; for SGD);
    - `"sqrt"`: `lr · √k` (Krizhevsky 2014; Malladi et al. 2022 derive it for Adam-type
      optimizers, hence the default: every kbnn recipe trains with Adam, ShiftAdaMax or Bop's
      Adam);
    - `"none"`: `lr`.
    """
    check_choice(rule, "lr_scaling", LR_SCALING_CHOICES)
    check_positive_int(global_batch_size, "global_batch_size")
    check_positive_int(reference_batch_size, "reference_batch_size")
    check_positive_number(learning_rate, "learning_rate")
    k = global_batch_size / reference_batch_size
    return float(learning_rate) * {"linear": k, "sqrt": math.sqrt(k), "none": 1.0}[rule]


def _supports_synchronized(layer_class) -> bool:
    return "synchronized" in inspect.signature(layer_class.__init__).parameters


def synchronize_batch_norm(model: tf.keras.Model) -> tf.keras.Model:
    """A copy of functional `model` (same weights) whose batch normalisations compute their
    batch statistics over the *global* batch (all replicas, one all-reduce per layer and step)
    instead of each replica's slice: Keras' `BatchNormalization(synchronized=True)`, and kbnn's
    `ShiftBatchNormalization(synchronized=True)` where that option exists. Identical to the
    original on one replica."""

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            config["synchronized"] = True
        elif isinstance(layer, ShiftBatchNormalization):
            if not _supports_synchronized(ShiftBatchNormalization):
                raise UsageError(
                    "sync_bn with bn='shift' needs ShiftBatchNormalization(synchronized=True), "
                    "which this kbnn version lacks; use bn='batchnorm' or sync_bn=False"
                )
            config["synchronized"] = True
        return layer.__class__.from_config(config)

    copy = tf.keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy
