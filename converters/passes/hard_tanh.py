"""Pass 1b: a hard tanh whose output only reaches sign quantizers is dropped."""

from __future__ import annotations

from kbnn.converters import levels as klevels
from kbnn.converters.graph import consumers, flatten, rebuild
from kbnn.converters.passes._common import single_input

import larq as lq
import numpy as np
import tensorflow as tf

L = tf.keras.layers

#: Layers through which "only signs are taken downstream" carries over: sign(f(x)) = f(sign(x))
#: for max-pooling (monotone), and rearrangements and inference no-ops commute with any
#: element-wise function.
_SIGN_TRANSPARENT = (
    L.MaxPooling1D,
    L.MaxPooling2D,
    L.GlobalMaxPooling1D,
    L.GlobalMaxPooling2D,
    L.Flatten,
    L.Reshape,
    L.Permute,
    L.Dropout,
    L.SpatialDropout1D,
    L.SpatialDropout2D,
)


def is_hard_tanh(layer) -> bool:
    """`layer` computes clip(x, −1, 1) (BinaryNet's htanh), checked on a probe grid."""
    if not isinstance(layer, L.Activation | L.ReLU):
        return False
    probe = np.array(
        [-1e6, -3.0, -1.0, -0.999, -0.5, -1e-7, 0.0, 1e-7, 0.5, 0.999, 1.0, 3.0, 1e6], np.float32
    )
    try:
        values = np.asarray(layer(tf.constant(probe)), np.float32)
    except Exception:  # not element-wise on a vector: not a hard tanh
        return False
    return values.shape == probe.shape and np.array_equal(values, np.clip(probe, -1, 1))


def _only_signs_taken(name: str, model, uses, depth: int = 0) -> bool:
    after = uses.get(name, [])
    if not after or "<output>" in after or depth > 8:
        return False
    for consumer_name in after:
        consumer = model.get_layer(consumer_name)
        if isinstance(consumer, lq.quantizers.Quantizer) and klevels.is_sign_quantizer(consumer):
            continue
        if klevels.input_encoding(consumer).kind == "sign" and len(consumer._inbound_nodes) == 1:
            continue
        if isinstance(consumer, _SIGN_TRANSPARENT) and _only_signs_taken(
            consumer_name, model, uses, depth + 1
        ):
            continue
        return False
    return True


def drop_hard_tanh_before_sign(model):
    """Remove a hard tanh whose output only ever reaches sign quantizers (through max-pooling,
    reshapes or dropout): sign(clip(x, −1, 1)) = sign(x), so the graph is unchanged at
    inference, and LCE can fuse the batch norm before it with the sign into a binary
    convolution that writes bit-packed output."""
    model = flatten(model)
    uses = consumers(model)
    targets = {
        layer.name
        for layer in model.layers
        if is_hard_tanh(layer)
        and len(layer._inbound_nodes) == 1
        and _only_signs_taken(layer.name, model, uses)
    }
    if not targets:
        return model
    return rebuild(
        model, lambda layer, args, kwargs: single_input(args) if layer.name in targets else None
    )
