"""ImageNet-size binary networks from the literature (definitions only; no weights shipped).

Every binary convolution takes `ste_sign`-style inputs padded with +1 and clipped latent
weights, so LCE lowers it to `LceBconv2d`. First and last layers stay float, as in the papers.
Layers are created in the order and with the variables of larq-zoo's definitions where one
exists, so larq-zoo `.h5` weight files load topologically
(`kbnn.zoo.get(name, weights="quicknet_weights.h5")`; not checked here: no larq-zoo files offline).
All accept any `input_shape` large enough for their strides (tests use 32x32 or 64x64).
"""

from __future__ import annotations

from kbnn.activations import LearnedShift
from kbnn.errors import UsageError
from kbnn.initializers import BlurInitializer
from kbnn.zoo import blocks
from kbnn.zoo.registry import register

import tensorflow as tf

IMAGENET_SHAPE = (224, 224, 3)
IMAGENET_CLASSES = 1000

_imagenet = dict(dataset="imagenet", input_shape=IMAGENET_SHAPE, num_classes=IMAGENET_CLASSES)


def _bn(bn, name, **kwargs):
    return blocks.batch_norm(bn, name=name, **kwargs)


def _classifier(x, num_classes, name="predictions"):
    x = tf.keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = tf.keras.layers.Dense(num_classes, name=f"{name}_dense")(x)
    return tf.keras.layers.Activation("softmax", name=name)(x)


# --------------------------------------------------------------------------- AlexNet family


@register(
    paper="Hubara et al., Quantized Neural Networks, JMLR 2018 (arXiv:1609.07061); "
    "Courbariaux, Hubara et al., NeurIPS 2016",
    bits="W1A1 (first layer: float input)",
    expected_accuracy=0.418,
    expected_source="paper: BNN AlexNet ImageNet top-1 41.8% (larq-zoo measured 36.3%)",
    **_imagenet,
)
def binary_alexnet(
    *, input_shape=IMAGENET_SHAPE, num_classes=IMAGENET_CLASSES, include_top=True, bn="batchnorm"
):
    """BinaryNet AlexNet: 5 binary convs (64-192-384-384-256) and 3 binary dense layers
    (4096-4096-classes), each followed by BN; the first conv sees the float image
    (Hubara et al., "Quantized Neural Networks", 2018). Expected ImageNet top-1: 41.8%.
    Inputs need >= 63x63 pixels (stride 4 and three 3x3/2 max-pools).
    """
    inputs = tf.keras.Input(shape=input_shape, name="image")
    x = inputs
    convs = (
        (64, 11, 4, True),
        (192, 5, 1, True),
        (384, 3, 1, False),
        (384, 3, 1, False),
        (256, 3, 1, True),
    )
    for i, (filters, size, stride, pool) in enumerate(convs, start=1):
        x = blocks.binary_conv(filters, size, strides=stride, name=f"conv{i}", binary_input=i > 1)(
            x
        )
        if pool:
            x = tf.keras.layers.MaxPool2D(3, strides=2, name=f"pool{i}")(x)
        x = _bn(bn, f"bn{i}", scale=False)(x)
    if include_top:
        x = tf.keras.layers.Flatten(name="flatten")(x)
        for i, units in enumerate((4096, 4096, num_classes), start=6):
            x = blocks.binary_dense(units, name=f"dense{i}")(x)
            x = _bn(bn, f"bn{i}", scale=False)(x)
        x = tf.keras.layers.Activation("softmax", name="predictions")(x)
    return tf.keras.Model(inputs, x, name="binary_alexnet")


@register(
    paper="Rastegari et al., XNOR-Net, ECCV 2016 (arXiv:1603.05279)",
    bits="W1A1, per-channel weight scale α=E|W| (float first and last layers)",
    expected_accuracy=0.442,
    expected_source="paper: XNOR-Net AlexNet ImageNet top-1 44.2%",
    **_imagenet,
)
def xnornet_alexnet(
    *, input_shape=IMAGENET_SHAPE, num_classes=IMAGENET_CLASSES, include_top=True, bn="batchnorm"
):
    """XNOR-Net AlexNet: BN -> sign -> binary conv (weights α·sign(W), α = E|W| per output
    channel) -> pool, float first conv and classifier (Rastegari et al., "XNOR-Net", 2016).
    The 6x6 "fc6" convolution covers the whole last feature map (6x6 at 224x224).
    Expected ImageNet top-1: 44.2%. Inputs need >= 63x63 pixels.
    """
    xnor = {"kernel_quantizer": "xnor_weight"}
    inputs = tf.keras.Input(shape=input_shape, name="image")
    x = tf.keras.layers.Conv2D(96, 11, strides=4, padding="same", use_bias=False, name="conv1")(
        inputs
    )
    x = _bn(bn, "bn1", scale=False)(x)
    x = tf.keras.layers.Activation("relu", name="relu1")(x)
    x = tf.keras.layers.MaxPool2D(3, strides=2, name="pool1")(x)
    x = _bn(bn, "bn2", scale=False)(x)
    x = blocks.binary_conv(256, 5, name="conv2", **xnor)(x)
    x = tf.keras.layers.MaxPool2D(3, strides=2, name="pool2")(x)
    for i, filters in ((3, 384), (4, 384), (5, 256)):
        x = _bn(bn, f"bn{i}", scale=False)(x)
        x = blocks.binary_conv(filters, 3, name=f"conv{i}", **xnor)(x)
    x = tf.keras.layers.MaxPool2D(3, strides=2, name="pool5")(x)
    x = _bn(bn, "bn6", scale=False)(x)
    x = blocks.binary_conv(4096, tuple(x.shape[1:3]), padding="valid", name="fc6", **xnor)(x)
    x = _bn(bn, "bn7", scale=False)(x)
    if include_top:
        x = blocks.binary_conv(4096, 1, padding="valid", name="fc7", **xnor)(x)
        x = _bn(bn, "bn8", scale=False)(x)
        x = tf.keras.layers.Activation("relu", name="relu8")(x)
        x = tf.keras.layers.Flatten(name="flatten")(x)
        x = tf.keras.layers.Dense(num_classes, use_bias=False, name="fc8")(x)
        x = tf.keras.layers.Activation("softmax", name="predictions")(x)
    return tf.keras.Model(inputs, x, name="xnornet_alexnet")


# --------------------------------------------------------------------------- ResNet family


def _stem(inputs, bn, filters=64):
    """7x7/2 float conv -> BN -> 3x3/2 max-pool (ResNet stem)."""
    x = tf.keras.layers.Conv2D(
        filters, 7, strides=2, padding="same", use_bias=False, name="stem_conv"
    )(inputs)
    x = _bn(bn, "stem_bn", momentum=0.8)(x)
    return tf.keras.layers.MaxPool2D(3, strides=2, padding="same", name="stem_pool")(x)


def _downsample(x, filters, bn, name):
    """Real-valued shortcut for a change of shape: 2x2 avg-pool -> 1x1 conv -> BN."""
    x = tf.keras.layers.AvgPool2D(2, strides=2, padding="same", name=f"{name}_pool")(x)
    x = tf.keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_conv")(x)
    return _bn(bn, f"{name}_bn", momentum=0.8)(x)


def _stages(filters=64):
    """(filters, stride) of the 16 3x3 convolutions of ResNet-18, after the stem."""
    out = []
    for stage, width in enumerate((filters, 2 * filters, 4 * filters, 8 * filters)):
        out += [(width, 2 if stage and i == 0 else 1) for i in range(4)]
    return out


def _bireal_block(x, filters, stride, bn, name):
    """`x + BN(bconv3x3(approx_sign(x)))` with magnitude-aware weights; the shortcut is the
    `_downsample` of x when the shape changes."""
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _downsample(x, filters, bn, f"{name}_shortcut")
    y = blocks.binary_conv(
        filters,
        3,
        strides=stride,
        name=f"{name}_conv",
        input_quantizer="approx_sign",
        kernel_quantizer="magnitude_aware_sign",
    )(x)
    y = _bn(bn, f"{name}_bn", momentum=0.8)(y)
    return tf.keras.layers.Add(name=f"{name}_add")([y, shortcut])


@register(
    paper="Liu et al., Bi-Real Net, ECCV 2018 (arXiv:1808.00278)",
    bits="W1A1 (float stem, shortcuts and classifier)",
    expected_accuracy=0.564,
    expected_source="paper: Bi-Real Net 18 ImageNet top-1 56.4%",
    **_imagenet,
)
def birealnet18(
    *, input_shape=IMAGENET_SHAPE, num_classes=IMAGENET_CLASSES, include_top=True, bn="batchnorm"
):
    """Bi-Real Net 18: every binary 3x3 conv has its own real-valued identity shortcut,
    `x + BN(bconv(approx_sign(x)))`, with magnitude-aware weights and ApproxSign's piecewise
    polynomial gradient (Liu et al., "Bi-Real Net", 2018). Expected ImageNet top-1: 56.4%.
    """
    inputs = tf.keras.Input(shape=input_shape, name="image")
    x = _stem(inputs, bn)
    for i, (filters, stride) in enumerate(_stages(), start=1):
        x = _bireal_block(x, filters, stride, bn, f"block{i}")
    if include_top:
        x = _classifier(x, num_classes)
    return tf.keras.Model(inputs, x, name="birealnet18")


@register(
    paper="Rastegari et al., XNOR-Net, ECCV 2016 (arXiv:1603.05279)",
    bits="W1A1, per-channel weight scale α=E|W| (float stem, shortcuts and classifier)",
    expected_accuracy=0.512,
    expected_source="paper: XNOR-Net ResNet-18 ImageNet top-1 51.2%",
    **_imagenet,
)
def xnornet_resnet18(
    *, input_shape=IMAGENET_SHAPE, num_classes=IMAGENET_CLASSES, include_top=True, bn="batchnorm"
):
    """XNOR-Net ResNet-18: basic blocks of two XNOR convolutions in the paper's order
    BN -> sign -> binary conv (weights α·sign(W), α = E|W| per output channel), one
    real-valued shortcut per block (Rastegari et al., "XNOR-Net", 2016).
    Expected ImageNet top-1: 51.2%.
    """
    xnor = {"kernel_quantizer": "xnor_weight"}
    inputs = tf.keras.Input(shape=input_shape, name="image")
    x = _stem(inputs, bn)
    convs = _stages()
    for b in range(0, len(convs), 2):
        (filters, stride), name = convs[b], f"block{b // 2 + 1}"
        shortcut = x
        if stride != 1 or x.shape[-1] != filters:
            shortcut = _downsample(x, filters, bn, f"{name}_shortcut")
        y = _bn(bn, f"{name}_bn1")(x)
        y = blocks.binary_conv(filters, 3, strides=stride, name=f"{name}_conv1", **xnor)(y)
        y = _bn(bn, f"{name}_bn2")(y)
        y = blocks.binary_conv(filters, 3, name=f"{name}_conv2", **xnor)(y)
        x = tf.keras.layers.Add(name=f"{name}_add")([y, shortcut])
    if include_top:
        x = _bn(bn, "head_bn")(x)
        x = tf.keras.layers.Activation("relu", name="head_relu")(x)
        x = _classifier(x, num_classes)
    return tf.keras.Model(inputs, x, name="xnornet_resnet18")


# --------------------------------------------------------------------------- ReActNet


# MobileNetV1 layout after the stem: (output channels, stride) of each ReActNet-A block.
_REACTNET_A_BLOCKS = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)


def _rprelu(x, name):
    """RPReLU: shift -> PReLU (per-channel slope) -> shift (ReActNet, eq. 3)."""
    x = LearnedShift(name=f"{name}_shift_in")(x)
    x = tf.keras.layers.PReLU(
        shared_axes=[1, 2],
        alpha_initializer=tf.keras.initializers.Constant(0.25),
        name=f"{name}_prelu",
    )(x)
    return LearnedShift(name=f"{name}_shift_out")(x)


def _reactnet_block(x, filters, stride, bn, name):
    """3x3 binary conv with shortcut, then 1x1 binary conv(s) with shortcut; RSign before each
    binary conv, RPReLU after each addition. Doubling the channels uses two 1x1 convs whose
    outputs are concatenated, each with the block input as shortcut."""
    in_filters = x.shape[-1]
    shortcut = x
    if stride != 1:
        shortcut = tf.keras.layers.AvgPool2D(2, strides=2, padding="same", name=f"{name}_pool")(
            shortcut
        )
    y = LearnedShift(name=f"{name}_rsign1")(x)
    y = blocks.binary_conv(in_filters, 3, strides=stride, name=f"{name}_conv3x3")(y)
    y = _bn(bn, f"{name}_bn1")(y)
    x = tf.keras.layers.Add(name=f"{name}_add1")([y, shortcut])
    x = _rprelu(x, f"{name}_rprelu1")
    y = LearnedShift(name=f"{name}_rsign2")(x)
    if filters == in_filters:
        y = blocks.binary_conv(filters, 1, name=f"{name}_conv1x1")(y)
        y = _bn(bn, f"{name}_bn2")(y)
        x = tf.keras.layers.Add(name=f"{name}_add2")([y, x])
    elif filters == 2 * in_filters:
        halves = []
        for half in ("a", "b"):
            h = blocks.binary_conv(in_filters, 1, name=f"{name}_conv1x1{half}")(y)
            h = _bn(bn, f"{name}_bn2{half}")(h)
            halves.append(tf.keras.layers.Add(name=f"{name}_add2{half}")([h, x]))
        x = tf.keras.layers.Concatenate(name=f"{name}_concat")(halves)
    else:
        raise UsageError(f"ReActNet block {name}: {in_filters} -> {filters} channels")
    return _rprelu(x, f"{name}_rprelu2")


@register(
    paper="Liu et al., ReActNet, ECCV 2020 (arXiv:2003.03488)",
    bits="W1A1 (float stem and classifier)",
    expected_accuracy=0.694,
    expected_source="paper: ReActNet-A ImageNet top-1 69.4% (with distillation)",
    **_imagenet,
)
def reactnet_a(
    *, input_shape=IMAGENET_SHAPE, num_classes=IMAGENET_CLASSES, include_top=True, bn="batchnorm"
):
    """ReActNet-A: MobileNetV1 with every depthwise/pointwise pair replaced by full binary
    3x3 and 1x1 convolutions, each with a shortcut; RSign (`sign(x - β)`, learned β) and
    RPReLU (`PReLU(x - γ) + ζ`) reshape the activation distributions (Liu et al.,
    "ReActNet", 2020). Expected ImageNet top-1: 69.4%.
    """
    inputs = tf.keras.Input(shape=input_shape, name="image")
    x = tf.keras.layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(
        inputs
    )
    x = _bn(bn, "stem_bn")(x)
    for i, (filters, stride) in enumerate(_REACTNET_A_BLOCKS, start=1):
        x = _reactnet_block(x, filters, stride, bn, f"block{i}")
    if include_top:
        x = _classifier(x, num_classes)
    return tf.keras.Model(inputs, x, name="reactnet_a")


# --------------------------------------------------------------------------- QuickNet


def _quicknet(name, section_blocks, section_filters, *, input_shape, num_classes, include_top, bn):
    """QuickNet (Bannink et al., "Larq Compute Engine", MLSys 2021): a float stem, then
    sections of residual blocks `x + BN(ReLU(bconv3x3(x)))`; between sections a transition
    ReLU -> 2x2 max-pool (stride 1) -> fixed 3x3/2 blur (depthwise) -> 1x1 float conv -> BN.
    Binary layers use `ste_sign` clipped at 1.25 and latent weights clipped at 1.25."""
    import larq as lq

    sign = lq.quantizers.SteSign(clip_value=1.25)
    clip = lq.constraints.WeightClip(clip_value=1.25)
    inputs = tf.keras.Input(shape=input_shape, name="image")
    width = section_filters[0]
    x = tf.keras.layers.Conv2D(
        width // 4,
        3,
        strides=2,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name="stem_conv1",
    )(inputs)
    x = _bn(bn, "stem_bn1")(x)
    x = tf.keras.layers.Activation("relu", name="stem_relu")(x)
    x = tf.keras.layers.DepthwiseConv2D(
        3, strides=2, padding="same", use_bias=False, name="stem_depthwise"
    )(x)
    x = _bn(bn, "stem_bn2", scale=False, center=False)(x)
    x = tf.keras.layers.Conv2D(
        width, 1, use_bias=False, kernel_initializer="he_normal", name="stem_conv2"
    )(x)
    x = _bn(bn, "stem_bn3")(x)
    for s, (count, filters) in enumerate(zip(section_blocks, section_filters, strict=True), 1):
        for b in range(1, count + 1):
            prefix = f"section{s}_block{b}"
            if x.shape[-1] != filters:
                x = tf.keras.layers.Activation("relu", name=f"{prefix}_transition_relu")(x)
                x = tf.keras.layers.MaxPool2D(2, strides=1, name=f"{prefix}_transition_pool")(x)
                x = tf.keras.layers.DepthwiseConv2D(
                    3,
                    strides=2,
                    padding="same",
                    use_bias=False,
                    trainable=False,
                    depthwise_initializer=BlurInitializer(),
                    name=f"{prefix}_transition_blur",
                )(x)
                x = tf.keras.layers.Conv2D(
                    filters,
                    1,
                    use_bias=False,
                    kernel_initializer="glorot_normal",
                    name=f"{prefix}_transition_conv",
                )(x)
                x = _bn(bn, f"{prefix}_transition_bn", epsilon=1e-5)(x)
            y = blocks.binary_conv(
                filters,
                3,
                name=f"{prefix}_conv",
                activation="relu",
                input_quantizer=sign,
                kernel_quantizer=sign,
                kernel_constraint=clip,
                kernel_initializer="glorot_normal",
            )(x)
            y = _bn(bn, f"{prefix}_bn", epsilon=1e-5)(y)
            x = tf.keras.layers.Add(name=f"{prefix}_add")([y, x])
    if include_top:
        x = tf.keras.layers.Activation("relu", name="head_relu")(x)
        x = _classifier(x, num_classes)
    return tf.keras.Model(inputs, x, name=name)


_quicknet_paper = (
    "Bannink et al., Larq Compute Engine: Design, Benchmark and Deploy "
    "State-of-the-Art Binarized Neural Networks, MLSys 2021 (arXiv:2011.09398)"
)
_quicknet_bits = "W1A1 (float stem, transitions and classifier)"


@register(
    paper=_quicknet_paper,
    bits=_quicknet_bits,
    expected_accuracy=0.594,
    expected_source="larq-zoo QuickNetSmall ImageNet top-1 59.4%",
    **_imagenet,
)
def quicknet_small(
    *, input_shape=IMAGENET_SHAPE, num_classes=IMAGENET_CLASSES, include_top=True, bn="batchnorm"
):
    """QuickNetSmall: sections of 4-4-4-4 binary residual blocks, 32-64-256-512 channels
    (Bannink et al. 2021). Expected ImageNet top-1: 59.4%."""
    return _quicknet(
        "quicknet_small",
        (4, 4, 4, 4),
        (32, 64, 256, 512),
        input_shape=input_shape,
        num_classes=num_classes,
        include_top=include_top,
        bn=bn,
    )


@register(
    paper=_quicknet_paper,
    bits=_quicknet_bits,
    expected_accuracy=0.633,
    expected_source="larq-zoo QuickNet ImageNet top-1 63.3%",
    **_imagenet,
)
def quicknet(
    *, input_shape=IMAGENET_SHAPE, num_classes=IMAGENET_CLASSES, include_top=True, bn="batchnorm"
):
    """QuickNet: sections of 4-4-4-4 binary residual blocks, 64-128-256-512 channels
    (Bannink et al. 2021). Expected ImageNet top-1: 63.3%."""
    return _quicknet(
        "quicknet",
        (4, 4, 4, 4),
        (64, 128, 256, 512),
        input_shape=input_shape,
        num_classes=num_classes,
        include_top=include_top,
        bn=bn,
    )


@register(
    paper=_quicknet_paper,
    bits=_quicknet_bits,
    expected_accuracy=0.669,
    expected_source="larq-zoo QuickNetLarge ImageNet top-1 66.9%",
    **_imagenet,
)
def quicknet_large(
    *, input_shape=IMAGENET_SHAPE, num_classes=IMAGENET_CLASSES, include_top=True, bn="batchnorm"
):
    """QuickNetLarge: sections of 6-8-12-6 binary residual blocks, 64-128-256-512 channels
    (Bannink et al. 2021). Expected ImageNet top-1: 66.9%."""
    return _quicknet(
        "quicknet_large",
        (6, 8, 12, 6),
        (64, 128, 256, 512),
        input_shape=input_shape,
        num_classes=num_classes,
        include_top=include_top,
        bn=bn,
    )
