"""Pass 5: ternary / five-level / k-bit weights → one ±α convolution per weight plane."""

from __future__ import annotations

from kbnn.converters import levels as klevels
from kbnn.converters.graph import flatten, rebuild
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
import tensorflow as tf

L = tf.keras.layers


def split_weight_planes(model):
    r"""A QuantConv2D with ±1 inputs and kernel q(W) = s·L (integer levels L, per-channel s)
    becomes one convolution per plane of L = Σ_i c_i·b_i, kernel c_i·s·b_i (±α per output
    channel, LCE's post-multiplier), summed by an Add:

        conv(x, s·L) = Σ_i conv(x, c_i·s·b_i).

    Binary kernels give a single plane (the layer with its kernel frozen to ±α). Layers with
    XNOR input scaling and one plane are left to LCE, which lowers them itself."""
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
