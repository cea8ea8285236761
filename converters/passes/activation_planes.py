"""Pass 4: k-bit unsigned activations → ±1 bit planes on the batch axis."""

from __future__ import annotations

from kbnn.converters import levels as klevels
from kbnn.converters.graph import flatten, rebuild
from kbnn.converters.layers import ActivationBitPlanes, CombineBitPlanes
from kbnn.converters.passes._common import (
    Namer,
    apply_activation,
    call_with_weights,
    conv_like,
    copy_quantizer,
    latent_value,
    layer_bias,
    quantizer_key,
    single_input,
)
from kbnn.converters.plan import plan_layer

import larq as lq
import numpy as np
import tensorflow as tf


def split_activation_planes(model):
    r"""A QuantConv2D with unsigned k-bit inputs a = Q/n becomes
    ActivationBitPlanes (k planes s_j stacked on the batch axis) → QuantConv2D with `ste_sign`
    inputs, `pad_values=1` and the same kernel → CombineBitPlanes:

        conv(a, W) + b = Σ_j (−2^j/2n)·conv(s_j, W) + (b + ΣW/2).

    Exact at SAME borders too: a zero-padded a is u_j = 0, i.e. s_j = +1. Signed fixed-point
    inputs a = (2Q − n)/n (VALID only) need no constant: conv(a, W) = Σ_j (−2^j/n)·conv(s_j, W)."""
    model = flatten(model)
    targets = {}
    for layer in model.layers:
        if (
            isinstance(layer, lq.layers.QuantConv2D)
            and klevels.input_encoding(layer).kind in ("unsigned", "signed")
            and plan_layer(layer).action == "planes"
        ):
            targets[layer.name] = klevels.input_encoding(layer)
    if not targets:
        return model
    name = Namer(model)
    shared_planes: dict[tuple, tf.Tensor] = {}

    def replace(layer, args, kwargs):
        if layer.name not in targets:
            return None
        encoding = targets[layer.name]
        bits, n = encoding.bits, encoding.n
        inputs = single_input(args)
        key = (id(inputs), bits, quantizer_key(layer.input_quantizer))
        if key not in shared_planes:
            planes_layer = ActivationBitPlanes(
                bits, copy_quantizer(layer.input_quantizer), name=name(layer.name, "bits")
            )
            shared_planes[key] = planes_layer(inputs)
        conv = conv_like(
            layer,
            name=name(layer.name, "signed"),
            input_quantizer="ste_sign",
            kernel_quantizer=copy_quantizer(layer.kernel_quantizer),
            pad_values=1.0,
            use_bias=False,
        )
        outputs = call_with_weights(conv, shared_planes[key], [latent_value(layer.kernel)])
        signed = encoding.kind == "signed"
        bias = np.zeros(layer.filters)
        if not signed:
            bias = klevels.quantized_kernel(layer).astype(np.float64).sum(axis=(0, 1, 2)) / 2.0
        if layer.use_bias:
            bias = bias + layer_bias(layer)
        scale = n if signed else 2.0 * n
        combine = CombineBitPlanes(
            [-(2.0**j) / scale for j in range(bits)], name=name(layer.name, "combine")
        )
        outputs = call_with_weights(combine, outputs, [np.ones(layer.filters), bias])
        return apply_activation(layer, outputs, name(layer.name, "activation"))

    return rebuild(model, replace)
