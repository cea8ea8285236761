"""Pass 3: quantized Dense → Reshape + 1×1 QuantConv2D + Reshape (LCE lowers only convolutions).

A dense layer right after a Flatten of an image (N, H, W, C) instead becomes one H×W VALID
convolution on the image itself: the same dot products (Flatten is row-major, channels last),
but no reshape between the binary layers, so LCE keeps the activations bit-packed (no
LceDequantize → RESHAPE → LceQuantize) and lowers a max-pool before it to LceBMaxPool2d instead
of a float MAX_POOL_2D (binarynet_mnist on aarch64: docs/arm64.md). k-bit inputs on an image
whose channels do not fill 32-bit words keep the flat form, where their bit planes pay off.
"""

from __future__ import annotations

from kbnn.converters.graph import flatten, rebuild
from kbnn.converters.passes._common import (
    Namer,
    apply_activation,
    call_with_weights,
    copy_quantizer,
    latent_value,
    layer_bias,
    single_input,
)
from kbnn.converters.plan import plan_layer

import larq as lq
import numpy as np
import tensorflow as tf

L = tf.keras.layers


def dense_to_conv(model):
    """Quantized Dense (units U) on inputs (N, …, F) → Reshape (N, 1, T, F) → 1×1 QuantConv2D
    with the same quantizers and kernel (1, 1, F, U) → Reshape (N, …, U). Applied to every
    dense layer that `plan_layer` lowers to binary kernels."""
    model = flatten(model)
    targets = {}
    for layer in model.layers:
        if not isinstance(layer, lq.layers.QuantDense):
            continue
        action = plan_layer(layer).action
        if action in ("bconv", "planes") and _kernel_reshape_safe(layer):
            targets[layer.name] = action
    if not targets:
        return model
    name = Namer(model)

    def replace(layer, args, kwargs):
        if layer.name not in targets:
            return None
        inputs = single_input(args)
        image = _flattened_image(inputs)
        if (
            image is not None
            and _image_keeps_words_full(targets[layer.name], image.shape[-1])
            and _kernel_reshape_safe(layer, image.shape[1:] + (layer.units,))
        ):
            return _image_conv(layer, image, name)
        in_shape = inputs.shape.as_list()
        features, units = in_shape[-1], layer.units
        middle = in_shape[1:-1]
        positions = int(np.prod(middle)) if middle else 1
        image = L.Reshape((1, positions, features), name=name(layer.name, "to_image"))(inputs)
        conv = lq.layers.QuantConv2D(
            units,
            1,
            use_bias=layer.use_bias,
            input_quantizer=copy_quantizer(layer.input_quantizer),
            kernel_quantizer=copy_quantizer(layer.kernel_quantizer),
            kernel_constraint=layer.kernel_constraint,
            name=name(layer.name, "conv1x1"),
        )
        weights = [latent_value(layer.kernel).reshape(1, 1, features, units)]
        if layer.use_bias:
            weights.append(layer_bias(layer))
        outputs = call_with_weights(conv, image, weights)
        outputs = L.Reshape(tuple(middle) + (units,), name=name(layer.name, "from_image"))(outputs)
        return apply_activation(layer, outputs, name(layer.name, "activation"))

    return rebuild(model, replace)


def _image_keeps_words_full(action: str, channels: int) -> bool:
    """k-bit planes on an image whose channels do not fill 32-bit words (a 1-channel image)
    would cost k·H·W words per output instead of k·⌈H·W·C/32⌉: they take the flat 1×1 form
    (an MLP's 8-bit first layer on ARM: docs/arm64.md)."""
    return action != "planes" or channels % 32 == 0


def _kernel_reshape_safe(layer, shape=None) -> bool:
    """q(W) reshaped to `shape` (default 1×1×F×U) equals q(W reshaped): the quantizer treats
    every output channel (last axis) alike whatever the kernel's shape."""
    quantizer = layer.kernel_quantizer
    if quantizer is None:
        return True
    kernel = latent_value(layer.kernel)
    shape = tuple(shape) if shape is not None else (1, 1) + kernel.shape
    flat = np.asarray(quantizer(tf.constant(kernel)))
    image = np.asarray(quantizer(tf.constant(kernel.reshape(shape))))
    return np.array_equal(flat.reshape(shape), image)


def _flattened_image(tensor):
    """The (N, H, W, C) tensor that a channels-last Flatten turned into `tensor`, else None."""
    history = getattr(tensor, "_keras_history", None)
    if history is None or not isinstance(history.layer, L.Flatten):
        return None
    if history.layer.data_format != "channels_last":
        return None
    source = history.layer._inbound_nodes[history.node_index].keras_inputs[0]
    shape = tuple(source.shape)
    if len(shape) != 4 or any(dim is None for dim in shape[1:]):
        return None
    return source


def _image_conv(layer, image, name):
    """Flatten + Dense(U) → H×W VALID QuantConv2D(U) on the image + Reshape (N, U)."""
    height, width, channels = image.shape[1:]
    conv = lq.layers.QuantConv2D(
        layer.units,
        (height, width),
        padding="valid",
        use_bias=layer.use_bias,
        input_quantizer=copy_quantizer(layer.input_quantizer),
        kernel_quantizer=copy_quantizer(layer.kernel_quantizer),
        kernel_constraint=layer.kernel_constraint,
        name=name(layer.name, "conv_image"),
    )
    weights = [latent_value(layer.kernel).reshape(height, width, channels, layer.units)]
    if layer.use_bias:
        weights.append(layer_bias(layer))
    outputs = call_with_weights(conv, image, weights)
    outputs = L.Reshape((layer.units,), name=name(layer.name, "from_image"))(outputs)
    return apply_activation(layer, outputs, name(layer.name, "activation"))
