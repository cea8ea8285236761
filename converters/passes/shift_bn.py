"""Pass 1: shift-based batch normalisation → the equivalent BatchNormalization."""

from __future__ import annotations

from kbnn.converters.graph import flatten, rebuild
from kbnn.converters.passes._common import (
    acts_on_last_axis,
    affine_probe,
    call_with_weights,
    single_input,
)
from kbnn.normalization import ShiftBatchNormalization

import numpy as np
import tensorflow as tf

L = tf.keras.layers

#: Epsilon of the BatchNormalization that replaces a shift-based one.
_BN_EPSILON = 1e-3


def fold_shift_batchnorm(model):
    """Replace every ShiftBatchNormalization by the BatchNormalization with the same inference
    map x·m + c (moving mean 0, moving variance 1 − ε, γ = m, β = c), which LCE fuses."""
    model = flatten(model)
    targets = {}
    for layer in model.layers:
        if isinstance(layer, ShiftBatchNormalization):
            rank = len(layer.input_shape)
            if not acts_on_last_axis(layer, rank):
                continue
            affine = affine_probe(layer, int(layer.input_shape[-1]), rank)
            if affine is not None:
                targets[layer.name] = affine
    if not targets:
        return model

    def replace(layer, args, kwargs):
        if layer.name not in targets:
            return None
        multiplier, offset = targets[layer.name]
        bn = L.BatchNormalization(epsilon=_BN_EPSILON, name=layer.name)
        channels = multiplier.shape[0]
        variance = np.full(channels, 1.0 - _BN_EPSILON)
        return call_with_weights(
            bn, single_input(args), [multiplier, offset, np.zeros(channels), variance]
        )

    return rebuild(model, replace)
