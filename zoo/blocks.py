"""Building blocks shared by the zoo definitions: quantized layers with the zoo's defaults and
the batch-norm choice (float BN or shift-based BN). The zoo's custom activations and
initializers live in core: `kbnn.activations` (HardTanh, LearnedShift), `kbnn.initializers`.

The quantized layers come from `kbnn.layers` (thin configurations of larq's `QuantConv2D` /
`QuantDense`); every layer is named by the caller so weight files can be matched by name.
"""

from __future__ import annotations

from kbnn import layers
from kbnn._validation import fail
from kbnn.normalization import ShiftBatchNormalization

import tensorflow as tf

BN_CHOICES = ("batchnorm", "shift")
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-4


def batch_norm(bn: str, name: str, **kwargs) -> tf.keras.layers.Layer:
    """Float batch normalisation (`"batchnorm"`) or shift-based BN (`"shift"`, BinaryNet
    Algorithm 3), momentum 0.9 and epsilon 1e-4 unless given."""
    config = {"momentum": BN_MOMENTUM, "epsilon": BN_EPSILON, **kwargs}
    if bn == "batchnorm":
        return tf.keras.layers.BatchNormalization(name=name, **config)
    if bn == "shift":
        return ShiftBatchNormalization(name=name, **config)
    raise fail("bn", f"one of {BN_CHOICES}", bn)


def binary_conv(
    filters, kernel_size, *, name, strides=1, binary_input=True, padding="same", **kwargs
) -> tf.keras.layers.Layer:
    """Binary convolution: `ste_sign` kernel (latent weights clipped to [-1, 1]) and, unless
    `binary_input=False` (a network's first layer), `ste_sign` inputs padded with +1 so LCE
    lowers it to `LceBconv2d`."""
    kwargs.setdefault("input_quantizer", "ste_sign" if binary_input else None)
    return layers.BinaryConv2D(
        filters, kernel_size, strides=strides, padding=padding, name=name, **kwargs
    )


def binary_dense(units, *, name, binary_input=True, **kwargs) -> tf.keras.layers.Layer:
    """Binary dense layer: `ste_sign` kernel and (unless `binary_input=False`) inputs."""
    kwargs.setdefault("input_quantizer", "ste_sign" if binary_input else None)
    return layers.BinaryDense(units, name=name, **kwargs)


def ternary_conv(filters, kernel_size, *, name, padding="same", **kwargs):
    """TWN convolution: float inputs, kernel `α·t`, `t ∈ {-1, 0, 1}` (Li & Liu 2016)."""
    return layers.TernaryConv2D(filters, kernel_size, padding=padding, name=name, **kwargs)


def ternary_dense(units, *, name, **kwargs):
    """TWN dense layer: float inputs, ternary kernel."""
    return layers.TernaryDense(units, name=name, **kwargs)


def dorefa_conv(filters, kernel_size, *, name, bit_w, bit_a, padding="same", **kwargs):
    """DoReFa convolution: `bit_a`-bit activations in [0, 1], `bit_w`-bit weights."""
    return layers.DorefaConv2D(
        filters, kernel_size, padding=padding, bit_w=bit_w, bit_a=bit_a, name=name, **kwargs
    )


def dorefa_dense(units, *, name, bit_w, bit_a, **kwargs):
    """DoReFa dense layer: `bit_a`-bit activations in [0, 1], `bit_w`-bit weights."""
    return layers.DorefaDense(units, bit_w=bit_w, bit_a=bit_a, name=name, **kwargs)
