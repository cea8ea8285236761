"""Building blocks shared by the zoo definitions: quantized layers with the zoo's defaults,
batch-norm choice (float BN or shift-based BN), and the hard-tanh activation of BinaryNet.

The quantized layers come from `kbnn.layers` (thin configurations of larq's `QuantConv2D` /
`QuantDense`); every layer is named by the caller so weight files can be matched by name.
"""

from __future__ import annotations

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import layers

import tensorflow as tf

BN_CHOICES = ("batchnorm", "shift")
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-4


@tf.keras.utils.register_keras_serializable(package="kbnn")
def hard_tanh(x):
    """Hard tanh, `htanh(x) = clip(x, -1, 1)` (BinaryNet's activation, Courbariaux et al. 2016)."""
    return tf.clip_by_value(x, -1.0, 1.0)


@tf.keras.utils.register_keras_serializable(package="kbnn")
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


def batch_norm(bn: str, name: str, **kwargs) -> tf.keras.layers.Layer:
    """Float batch normalisation (`"batchnorm"`) or shift-based BN (`"shift"`, BinaryNet
    Algorithm 3), momentum 0.9 and epsilon 1e-4 unless given."""
    config = {"momentum": BN_MOMENTUM, "epsilon": BN_EPSILON, **kwargs}
    if bn == "batchnorm":
        return tf.keras.layers.BatchNormalization(name=name, **config)
    if bn == "shift":
        from kbnn.normalization import ShiftBatchNormalization

        return ShiftBatchNormalization(name=name, **config)
    raise ValueError(f"bn must be one of {BN_CHOICES}, got {bn!r}")


def binary_conv(filters, kernel_size, *, name, strides=1, binary_input=True, padding="same",
                **kwargs) -> tf.keras.layers.Layer:
    """Binary convolution: `ste_sign` kernel (latent weights clipped to [-1, 1]) and, unless
    `binary_input=False` (a network's first layer), `ste_sign` inputs padded with +1 so LCE
    lowers it to `LceBconv2d`."""
    kwargs.setdefault("input_quantizer", "ste_sign" if binary_input else None)
    return layers.BinaryConv2D(filters, kernel_size, strides=strides, padding=padding,
                               name=name, **kwargs)


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
    return layers.DorefaConv2D(filters, kernel_size, padding=padding, bit_w=bit_w, bit_a=bit_a,
                               name=name, **kwargs)


def dorefa_dense(units, *, name, bit_w, bit_a, **kwargs):
    """DoReFa dense layer: `bit_a`-bit activations in [0, 1], `bit_w`-bit weights."""
    return layers.DorefaDense(units, bit_w=bit_w, bit_a=bit_a, name=name, **kwargs)


@tf.keras.utils.register_keras_serializable(package="kbnn")
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


@tf.keras.utils.register_keras_serializable(package="kbnn")
class BlurInitializer(tf.keras.initializers.Initializer):
    """Depthwise 3x3 binomial blur `[1, 2, 1]ᵀ[1, 2, 1] / 16` per channel (anti-aliased pooling,
    Zhang 2019), the fixed kernel of QuickNet's transition blocks. Shape `(3, 3, C, 1)`."""

    def __call__(self, shape, dtype=None, **kwargs):
        if tuple(shape[:2]) != (3, 3) or shape[-1] != 1:
            raise ValueError(f"BlurInitializer needs a depthwise (3, 3, C, 1) shape, got {shape}")
        row = tf.constant([1.0, 2.0, 1.0], dtype=dtype or tf.float32)
        kernel = tf.tensordot(row, row, axes=0) / 16.0
        return tf.tile(kernel[:, :, None, None], (1, 1, shape[2], 1))

    def get_config(self):
        return {}
