r"""Pass 7: a binary convolution with a ±α kernel → a ±1 kernel and a per-channel multiply.

    conv(x, α ⊙ B) = α ⊙ conv(x, B),   B ∈ {±1}, α ≥ 0 per output channel.

LCE computes the right side either way (α becomes its post-activation multiplier), but
recovering α from a constant ±α filter is slow in its MLIR converter: on XNORNet's fc6 (6×6×256
→ 4096, 37.7M weights) 19.7 s against 7.0 s for B plus a multiply (docs/stack.md,
`benchmarks/conversion_time.py --filter-forms`). So kbnn hands LCE the ±1 kernel and the
multiply as a one-plane `CombineBitPlanes`, which LCE fuses into the convolution. A
BatchNormalization that is the convolution's only reader is folded into that multiply
(m·(α·y + b) + c), so one affine map follows the convolution, as LCE fuses it.

`split_weight_planes` already emits a single binary plane in this form (saving this pass a
rebuild and three passes over the kernel: ~1 s on XNORNet); what is left here are the ±α planes
of multi-plane sums after `fold_batchnorm`, and ±α kernels from elsewhere.
"""

from __future__ import annotations

from kbnn.converters import levels as klevels
from kbnn.converters.graph import consumers, flatten, rebuild
from kbnn.converters.layers import CombineBitPlanes
from kbnn.converters.passes._common import (
    Namer,
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


def factor_kernel_scales(model):
    """Rewrite every lowered binary convolution (sign inputs, constant kernel, linear) whose
    kernel is ±α_c per output channel c with some α_c ≠ 1 as conv(x, sign) → α·y + b."""
    model = flatten(model)
    uses = consumers(model)
    targets: dict[str, tuple[np.ndarray, np.ndarray, object]] = {}
    absorbed: set[str] = set()
    for layer in model.layers:
        if not _lowered_binary_conv(layer):
            continue
        kernel = latent_value(layer.kernel)
        scales = klevels.channel_magnitudes(kernel)
        if scales is None or np.all(scales == 1.0):
            continue
        batchnorm = _only_batchnorm_reader(model, layer, uses)
        targets[layer.name] = (
            np.where(kernel < 0, np.float32(-1), np.float32(1)),
            scales,
            batchnorm,
        )
        if batchnorm is not None:
            absorbed.add(batchnorm.name)
    if not targets:
        return model
    name = Namer(model)

    def replace(layer, args, kwargs):
        if layer.name in absorbed:
            return single_input(args)
        if layer.name not in targets:
            return None
        signs, scales, batchnorm = targets[layer.name]
        multiplier, bias = scales.astype(np.float64), layer_bias(layer)
        bias = np.zeros(layer.filters) if bias is None else bias.astype(np.float64)
        if batchnorm is not None:
            bn_multiplier, bn_offset = batchnorm_affine(batchnorm)
            multiplier, bias = multiplier * bn_multiplier, bias * bn_multiplier + bn_offset
        outputs = with_constant_kernel(layer, single_input(args), signs)
        scale = CombineBitPlanes([1.0], name=name(layer.name, "scale"))
        return call_with_weights(scale, outputs, [multiplier, bias])

    return rebuild(model, replace)


def _lowered_binary_conv(layer) -> bool:
    """A plain QuantConv2D the passes made: sign inputs, a constant (unquantized) kernel."""
    return (
        type(layer) is lq.layers.QuantConv2D
        and layer.kernel_quantizer is None
        and klevels.input_encoding(layer).kind == "sign"
        and is_linear(layer)
        and len(layer._inbound_nodes) == 1
    )


def _only_batchnorm_reader(model, layer, uses):
    readers = uses.get(layer.name, [])
    if len(readers) != 1 or readers[0] == "<output>":
        return None
    reader = model.get_layer(readers[0])
    return reader if is_foldable_batchnorm(reader) else None


__all__ = ["factor_kernel_scales"]
