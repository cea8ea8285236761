"""Pass 8: layers left in float get q(W) frozen as a plain float kernel."""

from __future__ import annotations

from kbnn.converters.graph import flatten, rebuild
from kbnn.converters.layers import DequantizedActivation, has_fast_levels
from kbnn.converters.passes._common import (
    Namer,
    call_with_weights,
    quantized_weights,
    single_input,
    strip_quantizers,
)
from kbnn.converters.plan import plan_layer


def freeze_float_fallbacks(model):
    """Layers `plan_layer` sends to the float fallback keep their input quantizer but get q(W)
    as a plain float kernel (no kernel quantizer), so what LCE stores is exactly what Keras
    multiplies with. A DoReFa input quantizer becomes a `DequantizedActivation` layer before
    the layer: the same values, cheaper on ARM (docs/arm64.md)."""
    model = flatten(model)
    targets = set()
    for layer in model.layers:
        if not _weight_quantizers(layer) or getattr(layer, "xnor_input_scaling", False):
            continue  # checked first: planning a layer reads its whole kernel
        plan = plan_layer(layer)
        if plan is not None and plan.action == "float":
            targets.add(layer.name)
    if not targets:
        return model
    name = Namer(model)

    def replace(layer, args, kwargs):
        if layer.name not in targets:
            return None
        inputs = single_input(args)
        quantizer = getattr(layer, "input_quantizer", None)
        fast_input = has_fast_levels(quantizer)
        if fast_input:
            inputs = DequantizedActivation(quantizer, name=name(layer.name, "input"))(inputs)
        return call_with_weights(
            strip_quantizers(layer, keep_input_quantizer=not fast_input),
            inputs,
            quantized_weights(layer),
        )

    return rebuild(model, replace)


def _weight_quantizers(layer) -> list[str]:
    return [
        key
        for key in ("kernel_quantizer", "depthwise_quantizer", "pointwise_quantizer")
        if getattr(layer, key, None) is not None
    ]
