"""Microcontroller-sized models: `binarynet_mcu_mnist`, a BinaryNet CNN designed for a Cortex-M4
budget (≤ 32 KiB flash for weights and code, ≤ 4 KiB RAM) and for `kbnn export-c`.

    image /255 -> conv 5x5 1->32 (±1 weights) -> BN -> maxpool 2       14x14x32
    -> sign -> conv 3x3 32->64 (binary) -> BN -> maxpool 2                7x7x64
    -> sign -> conv 3x3 64->64 (binary) -> BN -> maxpool 2                3x3x64
    -> sign -> flatten -> dense 576->10 (binary) -> BN -> softmax

Every batch norm comes *before* its max-pool, so in integer form each BN + sign is one
threshold per channel and the pool is an OR of bits (`sign(max(x)) = max(sign(x))`).
About 62k weight bits (7.7 KB); the largest packed activation map is 14·14·32 bits = 784 B.
Layer names are fixed: weight files are matched by name.
"""

from __future__ import annotations

from kbnn import layers
from kbnn.zoo import blocks
from kbnn.zoo.registry import Recipe, register

import tensorflow as tf

MNIST_SHAPE = (28, 28, 1)
MNIST_CLASSES = 10
MCU_FILTERS = (32, 64, 64)


@register(
    paper="Courbariaux, Hubara et al., Binarized Neural Networks, NeurIPS 2016 (arXiv:1602.02830)",
    dataset="mnist",
    input_shape=MNIST_SHAPE,
    num_classes=MNIST_CLASSES,
    bits="W1A1 (first layer: 8-bit input x ±1 weights)",
    expected_accuracy=0.990,
    expected_source="issue #15 budget (BitNetMCU anchor: 99.02% in 16 KB flash)",
    recipe=Recipe(epochs=20, batch_size=100),
)
def binarynet_mcu_mnist(
    *,
    input_shape=None,
    num_classes=MNIST_CLASSES,
    include_top=True,
    bn="batchnorm",
    filters=MCU_FILTERS,
):
    """BinaryNet CNN sized for a Cortex-M4 (Courbariaux, Hubara et al., "Binarized Neural
    Networks", NeurIPS 2016): three ±1-weight convolutions (5x5, 3x3, 3x3) with BN before each
    2x2 max-pool, ±1 activations after the first layer, and a binary 576->10 output layer.
    Target: >= 99.0% MNIST test accuracy (issue #15)."""
    f1, f2, f3 = filters
    inputs = tf.keras.Input(shape=tuple(input_shape or MNIST_SHAPE), name="image")
    x = layers.BinaryConv2D(f1, 5, padding="same", input_quantizer=None, name="conv1")(inputs)
    x = blocks.batch_norm(bn, "bn1")(x)
    x = tf.keras.layers.MaxPool2D(2, name="pool1")(x)
    x = layers.BinaryConv2D(f2, 3, padding="same", input_quantizer="ste_sign", name="conv2")(x)
    x = blocks.batch_norm(bn, "bn2")(x)
    x = tf.keras.layers.MaxPool2D(2, name="pool2")(x)
    x = layers.BinaryConv2D(f3, 3, padding="same", input_quantizer="ste_sign", name="conv3")(x)
    x = blocks.batch_norm(bn, "bn3")(x)
    x = tf.keras.layers.MaxPool2D(2, name="pool3")(x)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    if include_top:
        x = layers.BinaryDense(num_classes, input_quantizer="ste_sign", name="dense1")(x)
        x = blocks.batch_norm(bn, "bn4")(x)
        x = tf.keras.layers.Activation("softmax", name="softmax")(x)
    return tf.keras.Model(inputs, x, name="binarynet_mcu_mnist")
