r"""Graph passes that rewrite a Keras model so LCE lowers every kbnn layer kind to binary kernels.

Each pass is a pure function `Model -> Model` (the input model is never modified) that is
exact at inference, up to float rounding of the folded constants:

1. `fold_shift_batchnorm`: shift-based BN → the BatchNormalization with the same affine map.
   `drop_hard_tanh_before_sign`: clip(x, −1, 1) whose output only reaches sign quantizers → gone.
2. `reorder_pool_batchnorm`: MaxPool → BN with a positive multiplier → BN → MaxPool, so the BN
   fuses into the convolution before it (max commutes with increasing affine maps).
3. `dense_to_conv`: quantized Dense → Reshape + 1×1 QuantConv2D + Reshape (LCE only lowers
   convolutions; larq/compute-engine#53); after a Flatten of an image, one H×W VALID
   convolution on the image, so activations stay bit-packed (docs/arm64.md).
4. `split_activation_planes`: k-bit unsigned inputs → k ±1 planes stacked on the batch axis,
   one convolution, then `CombineBitPlanes` (constant term ΣW/2 folded into its bias).
5. `split_weight_planes`: ±1 inputs with ternary/five-level/k-bit weights → one ±α-kernel
   convolution per weight plane, summed (`kbnn.converters.levels.weight_planes`).
6. `fold_batchnorm`: BN after a plane sum or `CombineBitPlanes` → folded into the planes'
   multipliers/biases (LCE only fuses BN that directly follows a single convolution).
7. `factor_kernel_scales`: a binary convolution's ±α kernel → ±1 kernel and a per-channel
   multiply that LCE fuses (LCE converts that form ~3× faster on large layers).
8. `freeze_float_fallbacks`: layers that cannot be lowered get their quantized kernel q(W) as a
   constant float kernel (what LCE would compute anyway, but exact and explicit), and a DoReFa
   input quantizer as a `DequantizedActivation` layer (the same values without a MINIMUM).

`lower(model)` chains them (`PASSES`); each pass lives in its own module of this package.
New layers are named `<original>_kb_<role>`.
"""

from __future__ import annotations

from kbnn.converters.graph import is_flat, rebuild
from kbnn.converters.passes._common import (
    affine_probe,
    batchnorm_affine,
    latent_value,
    quantized_weights,
    strip_quantizers,
)
from kbnn.converters.passes.activation_planes import split_activation_planes
from kbnn.converters.passes.bn_fold import fold_batchnorm
from kbnn.converters.passes.dense import dense_to_conv
from kbnn.converters.passes.fallbacks import freeze_float_fallbacks
from kbnn.converters.passes.hard_tanh import drop_hard_tanh_before_sign, is_hard_tanh
from kbnn.converters.passes.kernel_scales import factor_kernel_scales
from kbnn.converters.passes.pool_order import reorder_pool_batchnorm
from kbnn.converters.passes.shift_bn import fold_shift_batchnorm
from kbnn.converters.passes.weight_planes import split_weight_planes
from kbnn.converters.plan import plan_cache

PASSES = (
    fold_shift_batchnorm,
    drop_hard_tanh_before_sign,
    reorder_pool_batchnorm,
    dense_to_conv,
    split_activation_planes,
    split_weight_planes,
    fold_batchnorm,
    factor_kernel_scales,
    freeze_float_fallbacks,
)


def lower(model, passes=PASSES):
    """Apply `passes` in order; the result is what `convert` hands to LCE. Models with nested
    models or layers called more than once (here or in other models) are first rebuilt into
    a flat copy with one call per layer, which is what the passes analyse. Each layer's
    lowering is planned once for all passes (`plan_cache`)."""
    output_names = list(model.output_names)
    if not is_flat(model) or any(len(layer._inbound_nodes) > 1 for layer in model.layers):
        model = rebuild(model)
    with plan_cache():
        for graph_pass in passes:
            model = graph_pass(model)
    if model.output_names != output_names:
        # The converter names the flatbuffer's outputs after these (its SignatureDef); keep
        # the user's names even when a pass replaced the layer that produces an output.
        model.output_names = output_names
    return model


__all__ = [
    "PASSES",
    "affine_probe",
    "batchnorm_affine",
    "dense_to_conv",
    "drop_hard_tanh_before_sign",
    "factor_kernel_scales",
    "fold_batchnorm",
    "fold_shift_batchnorm",
    "freeze_float_fallbacks",
    "is_hard_tanh",
    "latent_value",
    "lower",
    "quantized_weights",
    "reorder_pool_batchnorm",
    "split_activation_planes",
    "split_weight_planes",
    "strip_quantizers",
]
