"""MNIST models: the seed's TensorLayer recipes (CNN) and the BinaryNet reference MLP.

The three CNNs share the seed's topology (TensorLayer `examples/quantized_net/
tutorial_{binarynet,ternaryweight,dorefanet}_mnist_cnn.py`):

    conv 5x5x32 -> maxpool 2 -> BN -> conv 5x5x64 -> maxpool 2 -> BN
    -> flatten -> dense 256 -> BN -> dense 10 -> BN -> softmax

and differ in how weights and activations are quantized. Layer names are fixed: weight files
are matched by name.
"""

from __future__ import annotations

from kbnn.activations import HardTanh
from kbnn.quantizers import FixedPointInput
from kbnn.zoo import blocks
from kbnn.zoo.registry import Recipe, register

import tensorflow as tf

MNIST_SHAPE = (28, 28, 1)
MNIST_CLASSES = 10


def _input(input_shape):
    return tf.keras.Input(shape=tuple(input_shape or MNIST_SHAPE), name="image")


def _top(x, num_classes, bn, dense):
    """dense num_classes -> BN -> softmax."""
    x = dense(num_classes, name="dense2")(x)
    x = blocks.batch_norm(bn, name="bn4")(x)
    return tf.keras.layers.Activation("softmax", name="softmax")(x)


def _binarynet_cnn(name, stem_stride, input_shape, num_classes, include_top, bn):
    """conv1 5×5 on the float image -> [pool1 when stem_stride == 1] -> BN -> bconv 5×5 -> pool
    -> BN -> Flatten -> bdense 256 -> BN [-> top]: binarynet_mnist and its stride-2 sibling."""
    inputs = _input(input_shape)
    x = blocks.binary_conv(32, 5, strides=stem_stride, name="conv1", binary_input=False)(inputs)
    if stem_stride == 1:
        x = tf.keras.layers.MaxPool2D(2, name="pool1")(x)
    x = blocks.batch_norm(bn, name="bn1")(x)
    x = blocks.binary_conv(64, 5, name="conv2")(x)
    x = tf.keras.layers.MaxPool2D(2, name="pool2")(x)
    x = blocks.batch_norm(bn, name="bn2")(x)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    x = blocks.binary_dense(256, name="dense1")(x)
    x = blocks.batch_norm(bn, name="bn3")(x)
    if include_top:
        x = _top(x, num_classes, bn, blocks.binary_dense)
    return tf.keras.Model(inputs, x, name=name)


@register(
    paper="Courbariaux, Hubara et al., Binarized Neural Networks, NeurIPS 2016 (arXiv:1602.02830)",
    dataset="mnist",
    input_shape=MNIST_SHAPE,
    num_classes=MNIST_CLASSES,
    bits="W1A1 (first layer: float input)",
    expected_accuracy=0.9904,
    expected_source="paper: BinaryNet MNIST 0.96% test error",
    recipe=Recipe(epochs=15, batch_size=100),
)
def binarynet_mnist(
    *, input_shape=None, num_classes=MNIST_CLASSES, include_top=True, bn="batchnorm"
):
    """BinaryNet CNN for MNIST, the seed's TensorLayer recipe (Courbariaux, Hubara et al.,
    "Binarized Neural Networks", NeurIPS 2016).

    Binary (±1) weights everywhere; binary activations for every layer but the first, which
    sees the float image. The seed's hard-tanh before each sign is left out: `sign(htanh(x)) =
    sign(x)` and `ste_sign`'s gradient mask `|x| <= 1` is htanh's, so it changes nothing.
    Expected accuracy: >= 99.0% (paper, BinaryNet MLP: 0.96% error).
    """
    return _binarynet_cnn("binarynet_mnist", 1, input_shape, num_classes, include_top, bn)


@register(
    paper="Courbariaux, Hubara et al., Binarized Neural Networks, NeurIPS 2016 (arXiv:1602.02830)",
    dataset="mnist",
    input_shape=MNIST_SHAPE,
    num_classes=MNIST_CLASSES,
    bits="W1A1 (first layer: float input, stride 2)",
    expected_accuracy=0.9904,
    expected_source="paper: BinaryNet MNIST 0.96% test error",
    recipe=Recipe(epochs=15, batch_size=100),
)
def binarynet_s2_mnist(
    *, input_shape=None, num_classes=MNIST_CLASSES, include_top=True, bn="batchnorm"
):
    """binarynet_mnist with a stride-2 stem, for ARM (Courbariaux, Hubara et al., "Binarized
    Neural Networks", NeurIPS 2016; issue #14).

    conv1 runs at stride 2 and pool1 is gone: the first layer, a float convolution on the
    image, computes 14×14 outputs instead of 28×28 and a 2×2 max over them, 4× fewer. The
    layers and names are binarynet_mnist's, so its weights initialise this model
    (`kbnn train binarynet_s2_mnist --init-from binarynet_mnist`). Expected accuracy: >= 99.0%
    (binarynet_mnist's); the shipped weights measure 99.14%.
    """
    return _binarynet_cnn("binarynet_s2_mnist", 2, input_shape, num_classes, include_top, bn)


@register(
    paper="Li & Liu, Ternary Weight Networks, 2016 (arXiv:1605.04711)",
    dataset="mnist",
    input_shape=MNIST_SHAPE,
    num_classes=MNIST_CLASSES,
    bits="W2A32 (ternary weights, float activations)",
    expected_accuracy=0.9935,
    expected_source="paper: TWN LeNet-5 on MNIST 99.35%",
    recipe=Recipe(epochs=15, batch_size=100),
)
def ternarynet_mnist(
    *, input_shape=None, num_classes=MNIST_CLASSES, include_top=True, bn="batchnorm"
):
    """Ternary-weight CNN for MNIST, the seed's TensorLayer recipe (Li & Liu, "Ternary Weight
    Networks", 2016).

    Every kernel is TWN-ternarised, `α·t` with `t ∈ {-1, 0, 1}`, `Δ = 0.7·E|W|`; activations
    stay float, bounded by hard tanh after each batch norm. Expected accuracy: 99.35% (paper).
    """
    inputs = _input(input_shape)
    x = blocks.ternary_conv(32, 5, name="conv1")(inputs)
    x = tf.keras.layers.MaxPool2D(2, name="pool1")(x)
    x = blocks.batch_norm(bn, name="bn1")(x)
    x = HardTanh(name="htanh1")(x)
    x = blocks.ternary_conv(64, 5, name="conv2")(x)
    x = tf.keras.layers.MaxPool2D(2, name="pool2")(x)
    x = blocks.batch_norm(bn, name="bn2")(x)
    x = HardTanh(name="htanh2")(x)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    x = blocks.ternary_dense(256, name="dense1")(x)
    x = blocks.batch_norm(bn, name="bn3")(x)
    x = HardTanh(name="htanh3")(x)
    if include_top:
        x = _top(x, num_classes, bn, blocks.ternary_dense)
    return tf.keras.Model(inputs, x, name="ternarynet_mnist")


DOREFA_BIT_W, DOREFA_BIT_A = 1, 3


@register(
    paper="Zhou et al., DoReFa-Net, 2016 (arXiv:1606.06160)",
    dataset="mnist",
    input_shape=MNIST_SHAPE,
    num_classes=MNIST_CLASSES,
    bits=f"W{DOREFA_BIT_W}A{DOREFA_BIT_A} (float last layer)",
    expected_accuracy=0.990,
    expected_source="seed recipe target (the paper reports SVHN/ImageNet only)",
    recipe=Recipe(epochs=15, batch_size=100),
)
def dorefanet_mnist(
    *, input_shape=None, num_classes=MNIST_CLASSES, include_top=True, bn="batchnorm"
):
    """DoReFa-Net CNN for MNIST (bit_w=1, bit_a=3), the seed's TensorLayer recipe (Zhou et al.,
    "DoReFa-Net", 2016).

    Convolutions and the hidden dense layer take 3-bit activations `round(7·clip(x, 0, 1))/7`
    (the image too) and 1-bit weights `E|W|·sign(W)`; the output layer is float. The seed
    quantizes `min(|x|, 1)`; kbnn follows the paper's `clip(x, 0, 1)`, so no hard tanh is
    needed before a DoReFa layer. Expected accuracy: >= 99.0%.
    """
    inputs = _input(input_shape)
    bits = {"bit_w": DOREFA_BIT_W, "bit_a": DOREFA_BIT_A}
    x = blocks.dorefa_conv(32, 5, name="conv1", **bits)(inputs)
    x = tf.keras.layers.MaxPool2D(2, name="pool1")(x)
    x = blocks.batch_norm(bn, name="bn1")(x)
    x = blocks.dorefa_conv(64, 5, name="conv2", **bits)(x)
    x = tf.keras.layers.MaxPool2D(2, name="pool2")(x)
    x = blocks.batch_norm(bn, name="bn2")(x)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    x = blocks.dorefa_dense(256, name="dense1", **bits)(x)
    x = blocks.batch_norm(bn, name="bn3")(x)
    x = HardTanh(name="htanh3")(x)
    if include_top:
        x = _top(x, num_classes, bn, _float_dense)
    return tf.keras.Model(inputs, x, name="dorefanet_mnist")


def _float_dense(units, name):
    return tf.keras.layers.Dense(units, use_bias=False, name=name)


MLP_UNITS = 2048


@register(
    paper="Courbariaux, Hubara et al., Binarized Neural Networks, NeurIPS 2016 (arXiv:1602.02830)",
    dataset="mnist",
    input_shape=MNIST_SHAPE,
    num_classes=MNIST_CLASSES,
    bits="W1A1 (first layer: 8-bit fixed-point input)",
    expected_accuracy=0.9904,
    expected_source="paper: BinaryNet MLP on MNIST 0.96% test error (Theano, 3x4096)",
    recipe=Recipe(epochs=15, batch_size=100),
)
def binarynet_mlp_mnist(
    *,
    input_shape=None,
    num_classes=MNIST_CLASSES,
    include_top=True,
    bn="batchnorm",
    units=MLP_UNITS,
):
    """BinaryNet MLP for MNIST: 3 binary dense layers of 2048 units with BN (the reference Torch
    code; the Theano code uses 4096), then a binary output layer (Courbariaux, Hubara et al.,
    "Binarized Neural Networks", NeurIPS 2016).

    The image is mapped to [-1, 1] (`2x - 1`) and enters the first layer as 8-bit fixed point
    (§2.6; `FixedPointInput(8, signed=True)`, the identity on MNIST's pixels), so the converter
    lowers it to 8 binary bit planes; `bn="shift"` gives the paper's shift-based BN. Cross-entropy replaces the paper's squared hinge loss.
    Expected accuracy: 99.04% (paper, 0.96% error).
    """
    inputs = _input(input_shape)
    x = tf.keras.layers.Rescaling(2.0, offset=-1.0, name="to_pm1")(inputs)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    for i in range(1, 4):
        first = {"input_quantizer": FixedPointInput(8, signed=True)} if i == 1 else {}
        x = blocks.binary_dense(units, name=f"dense{i}", binary_input=i > 1, **first)(x)
        x = blocks.batch_norm(bn, name=f"bn{i}")(x)
    if include_top:
        x = blocks.binary_dense(num_classes, name="dense4")(x)
        x = blocks.batch_norm(bn, name="bn4")(x)
        x = tf.keras.layers.Activation("softmax", name="softmax")(x)
    return tf.keras.Model(inputs, x, name="binarynet_mlp_mnist")
