"""One place to read a layer's kernel: the latent weights, their quantizer, q(W), integer levels.

larq's quantized layers keep a `QuantizedVariable` as their kernel (`kernel` for Dense/Conv,
`depthwise_kernel` for depthwise convolutions): the trainable latent weights W, quantized on
read by the layer's `kernel_quantizer` / `depthwise_quantizer`. Every reader goes through here,
so they agree on which attribute is the kernel and which quantizer applies.

Calling a quantizer updates its `FlipRatio` metric when one is attached (`larq.metrics`,
`kbnn.analysis.enable_flip_ratio`); `quantized_kernel` and `integer_levels` leave it untouched,
so reading a kernel never changes what training reports.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from kbnn._validation import fail

import numpy as np
import tensorflow as tf

__all__ = [
    "KERNEL_ATTRIBUTES",
    "flip_ratio_untouched",
    "integer_levels",
    "iter_layers",
    "kernel_attribute",
    "kernel_precision",
    "kernel_quantizer",
    "kernel_variable",
    "latent_variable",
    "quantized_kernel",
    "quantized_kernel_layers",
]

#: Attributes that hold a layer's main weight tensor, in the order they are looked up
#: (Dense/Conv*/Quant*: kernel; DepthwiseConv2D: depthwise_kernel; Embedding: embeddings).
KERNEL_ATTRIBUTES = ("kernel", "depthwise_kernel", "embeddings")
_QUANTIZER_OF = {"kernel": "kernel_quantizer", "depthwise_kernel": "depthwise_quantizer"}


def iter_layers(model) -> Iterator[tf.keras.layers.Layer]:
    """The model's layers in order, nested models flattened."""
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            yield from iter_layers(layer)
        else:
            yield layer


def kernel_attribute(layer) -> str | None:
    """Name of the attribute holding `layer`'s main weight tensor, or None if it has none.

    Separable convolutions (two kernels) are not handled and give None.
    """
    if isinstance(layer, tf.keras.layers.SeparableConv1D | tf.keras.layers.SeparableConv2D):
        return None
    for name in KERNEL_ATTRIBUTES:
        if name in vars(layer):
            return name
    if not layer.built:  # before `build` the attribute does not exist yet
        if isinstance(layer, tf.keras.layers.DepthwiseConv2D):
            return "depthwise_kernel"
        if isinstance(layer, tf.keras.layers.Embedding):
            return "embeddings"
        if isinstance(
            layer,
            tf.keras.layers.Dense
            | tf.keras.layers.Conv1D
            | tf.keras.layers.Conv2D
            | tf.keras.layers.Conv3D,
        ):
            return "kernel"
    return None


def kernel_quantizer(layer):
    """The larq/kbnn quantizer applied to `layer`'s kernel on read, or None."""
    attribute = _QUANTIZER_OF.get(kernel_attribute(layer))
    return getattr(layer, attribute, None) if attribute else None


def kernel_precision(layer) -> int | None:
    """The kernel quantizer's `precision` in bits (larq's convention), or None."""
    return getattr(kernel_quantizer(layer), "precision", None)


def latent_variable(value):
    """The trainable `tf.Variable` behind a kernel attribute (unwraps larq's QuantizedVariable)."""
    return getattr(value, "latent_variable", value)


def kernel_variable(layer, *, required: bool = True):
    """`layer`'s latent kernel variable W; if it has none, an error (or None if not `required`)."""
    attribute = kernel_attribute(layer)
    if attribute is None or attribute not in vars(layer):
        if not required:
            return None
        raise fail(f"layer {layer.name!r} ({type(layer).__name__})", "a built kernel", None)
    return latent_variable(getattr(layer, attribute))


@contextlib.contextmanager
def flip_ratio_untouched(quantizer):
    """Calling a quantizer updates its FlipRatio metric (if any); undo that on exit."""
    metric = getattr(quantizer, "flip_ratio", None)
    variables = list(metric.variables) if metric is not None else []
    saved = [v.numpy() for v in variables]
    try:
        yield
    finally:
        for variable, value in zip(variables, saved, strict=True):
            variable.assign(value)


def quantized_kernel(layer) -> np.ndarray:
    """q(W): the kernel the layer multiplies with in the forward pass (float32), or W itself
    (its own dtype) when it has no quantizer. A FlipRatio metric on the quantizer is left
    untouched."""
    latent = tf.convert_to_tensor(kernel_variable(layer))
    quantizer = kernel_quantizer(layer)
    if quantizer is None:
        return latent.numpy()
    with flip_ratio_untouched(quantizer):
        return np.asarray(quantizer(latent), dtype=np.float32)


def integer_levels(layer) -> np.ndarray:
    """The quantized kernel as integer levels where possible, scales left out.

    Binary kernels (precision 1) give their signs ±1 (sign(0) ↦ +1, as `ste_sign`), so per-channel
    scales (XNOR-Net α) do not make equal patterns differ; quantizers with `integer_levels(w)`
    give those levels; others give q(W).
    """
    quantizer = kernel_quantizer(layer)
    if quantizer is None:
        raise fail(f"layer {layer.name!r}", "a quantized kernel", None)
    precision = kernel_precision(layer)
    levels_of = getattr(quantizer, "integer_levels", None)
    if levels_of is not None and precision != 1:
        with flip_ratio_untouched(quantizer):
            levels, _ = levels_of(tf.convert_to_tensor(kernel_variable(layer)))
        return np.asarray(levels)
    values = quantized_kernel(layer)
    if precision == 1:
        values = np.where(values < 0, -1.0, 1.0).astype(values.dtype)
    return values


def quantized_kernel_layers(model) -> list[tf.keras.layers.Layer]:
    """The layers of `model` (nested models flattened) whose kernel has a quantizer."""
    return [layer for layer in iter_layers(model) if kernel_quantizer(layer) is not None]
