"""Pass 5: ternary / five-level / k-bit weights → one ±α convolution per weight plane."""

from __future__ import annotations

from kbnn.converters import levels as klevels
from kbnn.converters.graph import flatten, rebuild
from kbnn.converters.layers import CombineBitPlanes
from kbnn.converters.passes._common import (
    Namer,
    apply_activation,
    call_with_weights,
    conv_like,
    layer_bias,
    single_input,
)
from kbnn.converters.plan import plan_with_levels

import larq as lq
import numpy as np
import tensorflow as tf

L = tf.keras.layers


def split_weight_planes(model):
    r"""A QuantConv2D with ±1 inputs and kernel q(W) = s·L (integer levels L, per-channel s)
    becomes one convolution per plane of L = Σ_i c_i·b_i, kernel c_i·s·b_i (±α per output
    channel, LCE's post-multiplier), summed by an Add:

        conv(x, s·L) = Σ_i conv(x, c_i·s·b_i).

    Binary kernels give a single plane: the layer with its kernel frozen to B = ±1 and α as a
    per-channel multiply (`_scaled_sign_conv`). Layers with XNOR input scaling and one plane
    are left to LCE, which lowers them itself."""
    model = flatten(model)
    targets = {}
    for layer in model.layers:
        if (
            isinstance(layer, lq.layers.QuantConv2D)
            and not getattr(layer, "xnor_input_scaling", False)
            and klevels.input_encoding(layer).kind == "sign"
        ):
            plan, levels = plan_with_levels(layer)
            if plan is not None and plan.action in ("bconv", "planes"):
                targets[layer.name] = levels
    if not targets:
        return model
    name = Namer(model)

    def replace(layer, args, kwargs):
        if layer.name not in targets:
            return None
        found = targets[layer.name]
        planes = klevels.weight_planes(found.levels)
        inputs = single_input(args)
        if len(planes) == 1:
            total = _scaled_sign_conv(layer, inputs, planes, found.scale, name)
            return apply_activation(layer, total, name(layer.name, "activation"))
        outputs = []
        for index, (coefficient, plane) in enumerate(
            zip(planes.coefficients, planes.planes, strict=True)
        ):
            with_bias = layer.use_bias and index == 0
            role = f"w{index}" if len(planes) > 1 else "bconv"
            conv = conv_like(
                layer,
                name=name(layer.name, role),
                input_quantizer="ste_sign",
                kernel_quantizer=None,
                pad_values=layer.pad_values,
                use_bias=with_bias,
            )
            weights = [coefficient * found.scale * plane]
            if with_bias:
                weights.append(layer_bias(layer))
            outputs.append(call_with_weights(conv, inputs, weights))
        total = outputs[0] if len(outputs) == 1 else L.Add(name=name(layer.name, "sum"))(outputs)
        return apply_activation(layer, total, name(layer.name, "activation"))

    return rebuild(model, replace)


def _scaled_sign_conv(layer, inputs, planes, scale, name):
    """One plane c·s·B: conv(x, B) with B ∈ {±1}, then α = c·s per output channel and the bias
    as a one-plane `CombineBitPlanes` (where some α ≠ 1), so LCE gets a ±1 filter and fuses the
    multiply; a following BatchNormalization folds into it (`fold_batchnorm`).
    conv(x, α ⊙ B) = α ⊙ conv(x, B)."""
    alpha = np.broadcast_to(planes.coefficients[0] * scale, (layer.filters,))
    unit = bool(np.all(alpha == 1.0))
    bias = layer_bias(layer)
    conv = conv_like(
        layer,
        name=name(layer.name, "bconv"),
        input_quantizer="ste_sign",
        kernel_quantizer=None,
        pad_values=layer.pad_values,
        use_bias=unit and layer.use_bias,
    )
    weights = [planes.planes[0]] + ([bias] if unit and layer.use_bias else [])
    outputs = call_with_weights(conv, inputs, weights)
    if unit:
        return outputs
    scale_layer = CombineBitPlanes([1.0], name=name(layer.name, "scale"))
    bias = np.zeros(layer.filters, np.float32) if bias is None else bias
    return call_with_weights(scale_layer, outputs, [alpha, bias])
