"""Activations as Keras layers: BinaryNet's hard tanh and ReActNet's learned shift.

Both are layer classes, not bare functions, because a function activation does not survive the
legacy `.h5` format while a registered layer does. Registered names (`kbnn>HardTanh`,
`kbnn>hard_tanh`, `kbnn>LearnedShift`) are those saved models record.
"""

from __future__ import annotations

from kbnn._registry import register

import larq as lq
import tensorflow as tf

__all__ = ["HardTanh", "LearnedShift", "hard_tanh"]


@register
def hard_tanh(x):
    """Hard tanh, `htanh(x) = clip(x, -1, 1)` (BinaryNet's activation, Courbariaux et al. 2016):
    larq's `hard_tanh`, registered under kbnn's name that saved models record."""
    return lq.activations.hard_tanh(x)


@register
class HardTanh(tf.keras.layers.Activation):
    """`Activation(hard_tanh)` as its own layer class: a function activation does not survive
    the legacy `.h5` format, a registered layer does."""

    def __init__(self, **kwargs):
        kwargs.pop("activation", None)
        super().__init__(hard_tanh, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.pop("activation", None)
        return config


@register
class LearnedShift(tf.keras.layers.Layer):
    """`y = x + b` with a learned per-channel `b` (ReActNet's RSign threshold, RPReLU shifts;
    Liu et al. 2020). Initialised at 0, i.e. the identity."""

    def build(self, input_shape):
        self.bias = self.add_weight(
            name="bias", shape=(int(input_shape[-1]),), initializer="zeros", trainable=True
        )
        super().build(input_shape)

    def call(self, inputs):
        return inputs + self.bias
