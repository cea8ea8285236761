"""Which weight of a layer is compressed, and how to run a layer with a substituted kernel.

Pruning and weight sharing both compute an *effective* kernel (W⊙M, or c[k]) and run the
wrapped layer with it, so that the gradient reaches only what should train. Keras 2 layers
read their kernel from an attribute (`self.kernel`) inside `call`, so the wrappers substitute
that attribute for the duration of the call (`substituted`), bypassing Keras' attribute
tracking so the variable stays registered with its layer. tfmot's own clustering wrapper
substitutes the attribute the same way (`ClusterWeights.set_weight_to_layer`).

larq's quantized layers keep a `QuantizedVariable` there that applies the kernel quantizer on
read; the substituted tensor is quantized the same way, so pruning a ternary layer prunes its
*latent* weights and the ternary kernel follows.
"""

from __future__ import annotations

import contextlib

from kbnn import kernels

import numpy as np
import tensorflow as tf

# Which attribute is a layer's kernel, its quantizer and its latent variable: one place,
# `kbnn.kernels` (re-exported here for the compression modules).
KERNEL_ATTRIBUTES = kernels.KERNEL_ATTRIBUTES
kernel_attribute = kernels.kernel_attribute
kernel_quantizer = kernels.kernel_quantizer
latent_variable = kernels.latent_variable
kernel_variable = kernels.kernel_variable


def effective_kernel(layer: tf.keras.layers.Layer, latent: tf.Tensor) -> tf.Tensor:
    """What `layer` computes with when its latent kernel is `latent` (quantizer applied)."""
    quantizer = kernel_quantizer(layer)
    return quantizer(latent) if quantizer is not None else latent


def quantizer_keeps_zero(quantizer) -> bool:
    """True if `quantizer` maps a zero weight to zero among ordinary nonzero weights.

    Pruning only makes sense for such kernels: TWN and five-level quantizers map small weights
    to 0, but sign-based quantizers (ste_sign, XNOR, DoReFa) map 0 to ±α, so a pruned latent
    weight would still be a full ±1 weight.
    """
    if quantizer is None:
        return True
    sample = np.linspace(-1.0, 1.0, 24, dtype=np.float32).reshape(6, 4)
    sample[::2] = 0.0
    quantized = np.asarray(quantizer(tf.constant(sample)))
    return bool(np.all(quantized[::2] == 0.0))


def call_inner(layer: tf.keras.layers.Layer, inputs, training=None, **kwargs):
    """`layer.call(inputs, ...)`, forwarding `training` only if the layer's `call` takes it."""
    if layer._expects_training_arg:  # noqa: SLF001 - Keras' own record of the call signature
        return layer.call(inputs, training=training, **kwargs)
    return layer.call(inputs, **kwargs)


@contextlib.contextmanager
def substituted(layer: tf.keras.layers.Layer, attribute: str, value):
    """Temporarily make `layer.<attribute>` return `value` (no Keras tracking side effects)."""
    original = vars(layer)[attribute]
    object.__setattr__(layer, attribute, value)
    try:
        yield
    finally:
        object.__setattr__(layer, attribute, original)
