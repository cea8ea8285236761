"""Pass 2: MaxPool → BN with positive multipliers ⇒ BN → MaxPool."""

from __future__ import annotations

from kbnn.converters.graph import clone_layer, consumers, flatten, rebuild
from kbnn.converters.passes._common import (
    MAX_POOLS,
    batchnorm_affine,
    call_with_weights,
    is_foldable_batchnorm,
    single_input,
)

import numpy as np


def reorder_pool_batchnorm(model):
    """Move a BatchNormalization in front of the max-pooling that feeds it when every channel's
    multiplier γ/√(σ² + ε) is positive: then max(m·x + c) = m·max(x) + c exactly (rounding is
    monotone), and the BN fuses into the convolution before the pool (BinaryNet's
    conv → pool → BN order otherwise leaves a float MUL + ADD)."""
    model = flatten(model)
    uses = consumers(model)
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, MAX_POOLS) or len(layer._inbound_nodes) != 1:
            continue
        after = uses.get(layer.name, [])
        if len(after) != 1 or after[0] == "<output>":
            continue
        bn = model.get_layer(after[0])
        if not is_foldable_batchnorm(bn):
            continue
        multiplier, _ = batchnorm_affine(bn)
        if np.all(multiplier > 0):
            pairs[layer.name] = bn
    if not pairs:
        return model
    moved = {bn.name for bn in pairs.values()}

    def replace(layer, args, kwargs):
        if layer.name in moved:
            return single_input(args)
        if layer.name in pairs:
            bn = pairs[layer.name]
            normalized = call_with_weights(clone_layer(bn), single_input(args), bn.get_weights())
            return clone_layer(layer)(normalized)
        return None

    return rebuild(model, replace)
