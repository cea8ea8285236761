"""Pass 6: BatchNormalization after a plane sum or CombineBitPlanes → folded into it.

The BN may sit behind a Reshape that keeps the channel (last) axis, as `dense_to_conv` leaves
one between a plane-split dense layer and its BN: a per-channel affine map commutes with it."""

from __future__ import annotations

from kbnn.converters.graph import clone_layer, consumers, flatten, producer, rebuild
from kbnn.converters.layers import CombineBitPlanes
from kbnn.converters.passes._common import (
    batchnorm_affine,
    call_with_weights,
    is_foldable_batchnorm,
    is_linear,
    latent_value,
    layer_bias,
    single_input,
    with_constant_kernel,
)

import larq as lq
import numpy as np
import tensorflow as tf

L = tf.keras.layers


def fold_batchnorm(model):
    """Fold a BatchNormalization (m·x + c) that follows a sum of binary convolutions into
    their kernels (±α·m is still ±α' per channel) and the first one's bias, or into a
    `CombineBitPlanes`' multiplier and bias, also across a channel-keeping Reshape between the
    two. A BN after a single convolution is left to LCE."""
    model = flatten(model)
    uses = consumers(model)
    combine_targets: dict[str, tf.keras.layers.Layer] = {}
    plane_targets: dict[str, tuple[tf.keras.layers.Layer, bool]] = {}
    removed: set[str] = set()
    for bn in model.layers:
        if not is_foldable_batchnorm(bn):
            continue
        source = _sum_before(bn, uses)
        if source is None:
            continue
        if isinstance(source, CombineBitPlanes):
            combine_targets[source.name] = bn
            removed.add(bn.name)
            continue
        if not isinstance(source, L.Add):
            continue
        convs = [producer(t) for t in source._inbound_nodes[0].keras_inputs]
        if all(_foldable_plane(conv, source.name, uses) for conv in convs):
            for index, conv in enumerate(convs):
                plane_targets[conv.name] = (bn, index == 0)
            removed.add(bn.name)
    if not removed:
        return model

    def replace(layer, args, kwargs):
        if layer.name in removed:
            return single_input(args)
        if layer.name in combine_targets:
            multiplier, offset = batchnorm_affine(combine_targets[layer.name])
            old_multiplier, old_bias = layer.get_weights()
            combine = clone_layer(layer)
            return call_with_weights(
                combine,
                single_input(args),
                [old_multiplier * multiplier, old_bias * multiplier + offset],
            )
        if layer.name in plane_targets:
            bn, first = plane_targets[layer.name]
            multiplier, offset = batchnorm_affine(bn)
            kernel = latent_value(layer.kernel) * multiplier
            bias = layer_bias(layer)
            bias = np.zeros(layer.filters) if bias is None else bias * multiplier
            if first:
                bias = bias + offset
            use_bias = first or layer.use_bias
            return with_constant_kernel(
                layer, single_input(args), kernel, bias if use_bias else None
            )
        return None

    return rebuild(model, replace)


def _foldable_plane(layer, sum_name: str, uses) -> bool:
    return (
        isinstance(layer, lq.layers.QuantConv2D)
        and type(layer) is lq.layers.QuantConv2D
        and layer.kernel_quantizer is None
        and is_linear(layer)
        and uses.get(layer.name) == [sum_name]
        and len(layer._inbound_nodes) == 1
    )


def _sum_before(bn, uses):
    """The layer whose output only `bn` reads, directly or through a Reshape that keeps the
    last axis (BN's channels) and is read by `bn` only; None when there is no such layer."""
    source = producer(bn._inbound_nodes[0].keras_inputs[0])
    reader = bn
    if isinstance(source, L.Reshape) and _keeps_last_axis(source, uses, bn.name):
        reader, source = source, producer(source._inbound_nodes[0].keras_inputs[0])
    if source is None or uses.get(source.name) != [reader.name]:
        return None
    return source if len(source._inbound_nodes) == 1 else None


def _keeps_last_axis(reshape, uses, reader: str) -> bool:
    """Reshaping keeps every element's index along the last axis when that axis keeps its
    size (row-major order), so BN(reshape(x)) = reshape(BN(x)) for a last-axis BN."""
    if uses.get(reshape.name) != [reader] or len(reshape._inbound_nodes) != 1:
        return False
    before, after = reshape.input_shape[-1], reshape.output_shape[-1]
    return before is not None and before == after
