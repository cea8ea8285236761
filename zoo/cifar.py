"""CIFAR-10 models (definitions; no weights shipped)."""

from __future__ import annotations

from kbnn.zoo import blocks
from kbnn.zoo.registry import register

import tensorflow as tf

CIFAR_SHAPE = (32, 32, 3)
CIFAR_CLASSES = 10


@register(
    paper="Courbariaux, Hubara et al., Binarized Neural Networks, NeurIPS 2016 (arXiv:1602.02830)",
    dataset="cifar10",
    input_shape=CIFAR_SHAPE,
    num_classes=CIFAR_CLASSES,
    bits="W1A1 (first layer: float input)",
    expected_accuracy=0.886,
    expected_source="paper: BinaryNet CIFAR-10 11.40% test error",
)
def binarynet_cifar10(
    *, input_shape=CIFAR_SHAPE, num_classes=CIFAR_CLASSES, include_top=True, bn="batchnorm"
):
    """BinaryNet's VGG-style CIFAR-10 net, (2x128C3)-MP2-(2x256C3)-MP2-(2x512C3)-MP2-
    (2x1024FC)-10, every layer binary with BN after it, max-pooling after the second conv of
    each pair; the first conv sees the float image (Courbariaux, Hubara et al., "Binarized
    Neural Networks", 2016). Expected accuracy: 88.6% (paper: 11.40% error).
    """
    inputs = tf.keras.Input(shape=input_shape, name="image")
    x = inputs
    for i, filters in enumerate((128, 128, 256, 256, 512, 512), start=1):
        x = blocks.binary_conv(filters, 3, name=f"conv{i}", binary_input=i > 1)(x)
        if i % 2 == 0:
            x = tf.keras.layers.MaxPool2D(2, name=f"pool{i}")(x)
        x = blocks.batch_norm(bn, name=f"bn{i}")(x)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    if include_top:
        for i, units in enumerate((1024, 1024, num_classes), start=7):
            x = blocks.binary_dense(units, name=f"dense{i}")(x)
            x = blocks.batch_norm(bn, name=f"bn{i}")(x)
        x = tf.keras.layers.Activation("softmax", name="predictions")(x)
    return tf.keras.Model(inputs, x, name="binarynet_cifar10")
