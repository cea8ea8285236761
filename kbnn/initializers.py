"""Keras initializers: QuickNet's fixed anti-aliasing blur kernel."""

from __future__ import annotations

from kbnn._registry import register
from kbnn._validation import fail

import tensorflow as tf

__all__ = ["BlurInitializer"]


@register
class BlurInitializer(tf.keras.initializers.Initializer):
    """Depthwise 3x3 binomial blur `[1, 2, 1]ᵀ[1, 2, 1] / 16` per channel (anti-aliased pooling,
    Zhang 2019), the fixed kernel of QuickNet's transition blocks. Shape `(3, 3, C, 1)`."""

    def __call__(self, shape, dtype=None, **kwargs):
        if tuple(shape[:2]) != (3, 3) or shape[-1] != 1:
            raise fail("BlurInitializer shape", "a depthwise (3, 3, C, 1) shape", tuple(shape))
        row = tf.constant([1.0, 2.0, 1.0], dtype=dtype or tf.float32)
        kernel = tf.tensordot(row, row, axes=0) / 16.0
        return tf.tile(kernel[:, :, None, None], (1, 1, shape[2], 1))

    def get_config(self):
        return {}
