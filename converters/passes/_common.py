"""Helpers shared by the graph passes: layer construction, weight access, BN algebra."""

from __future__ import annotations

import inspect
import json

from kbnn.converters.graph import derived_name, zero_initialized

import larq as lq
import numpy as np
import tensorflow as tf
from larq.quantized_variable import QuantizedVariable

L = tf.keras.layers

MAX_POOLS = (L.MaxPooling1D, L.MaxPooling2D, L.GlobalMaxPooling1D, L.GlobalMaxPooling2D)


class Namer:
    """Unique layer names within one pass (a shared layer is rewritten once per call)."""

    def __init__(self, model):
        self.used = {layer.name for layer in model.layers}

    def __call__(self, base: str, role: str) -> str:
        name = derived_name(base, role)
        candidate, index = name, 1
        while candidate in self.used:
            candidate, index = f"{name}_{index}", index + 1
        self.used.add(candidate)
        return candidate


def copy_quantizer(quantizer):
    if quantizer is None:
        return None
    return lq.quantizers.get(lq.quantizers.serialize(quantizer))


def named_quantizer(quantizer):
    """`quantizer`, with a string alias made into an object named after the alias rather than
    Keras' global counter (`ste_sign_7`): flatbuffer tensor names contain it, so the same
    model converts to the same bytes every time."""
    if not isinstance(quantizer, str):
        return quantizer
    made = lq.quantizers.get(quantizer)
    if isinstance(made, tf.keras.layers.Layer):
        return type(made).from_config({**made.get_config(), "name": quantizer})
    return made


def larq_base(layer) -> type:
    """The larq (or Keras) class `layer` configures; kbnn subclasses add only defaults."""
    for cls in type(layer).__mro__:
        if cls.__module__.startswith(("larq.layers", "tf_keras.", "keras.")):
            return cls
    return type(layer)  # pragma: no cover - every kernel layer derives from Keras


def base_config(layer, cls) -> dict:
    """`layer`'s config restricted to the arguments `cls` accepts."""
    config = layer.get_config()
    accepted = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            accepted |= set(inspect.signature(klass.__init__).parameters)
    accepted |= {"name", "dtype", "trainable", "batch_input_shape", "input_shape"}
    accepted -= {"self", "args", "kwargs"}
    config = {key: value for key, value in config.items() if key in accepted}
    if "input_quantizer" in accepted:
        config["input_quantizer"] = lq.quantizers.serialize(getattr(layer, "input_quantizer", None))
    return config


def conv_like(
    layer, *, name, input_quantizer, kernel_quantizer, pad_values, use_bias, filters=None
):
    """A larq QuantConv2D with `layer`'s geometry (strides, padding, dilation, groups)."""
    return lq.layers.QuantConv2D(
        filters or layer.filters,
        layer.kernel_size,
        strides=layer.strides,
        padding=layer.padding,
        dilation_rate=layer.dilation_rate,
        groups=getattr(layer, "groups", 1),
        use_bias=use_bias,
        input_quantizer=named_quantizer(input_quantizer),
        kernel_quantizer=named_quantizer(kernel_quantizer),
        pad_values=pad_values,
        kernel_constraint=layer.kernel_constraint if kernel_quantizer is not None else None,
        name=name,
    )


def with_constant_kernel(layer, inputs, kernel, bias=None):
    """`layer` (a QuantConv2D) rebuilt under its name on `inputs` with a constant `kernel` (no
    kernel quantizer), its input quantizer and padding kept, and `bias` if given."""
    conv = conv_like(
        layer,
        name=layer.name,
        input_quantizer=copy_quantizer(layer.input_quantizer),
        kernel_quantizer=None,
        pad_values=layer.pad_values,
        use_bias=bias is not None,
    )
    return call_with_weights(conv, inputs, [kernel] if bias is None else [kernel, bias])


def call_with_weights(layer, inputs, weights):
    """Call (build) a new `layer` on `inputs`, then give it `weights`."""
    with zero_initialized(layer):
        outputs = layer(inputs)
    layer.set_weights([np.asarray(w, np.float32) for w in weights])
    return outputs


def quantizer_key(quantizer) -> str:
    """Identifies what a quantizer computes (its class and config, not its layer name)."""
    config = quantizer.get_config() if hasattr(quantizer, "get_config") else {}
    config = {key: value for key, value in config.items() if key != "name"}
    return f"{type(quantizer).__qualname__}:{json.dumps(config, sort_keys=True, default=str)}"


def latent_value(variable) -> np.ndarray:
    """The stored (latent, unquantized) value of a possibly larq-quantized variable."""
    if isinstance(variable, QuantizedVariable):
        return variable.latent_variable.numpy()
    return variable.numpy()


def layer_bias(layer) -> np.ndarray | None:
    return latent_value(layer.bias) if getattr(layer, "use_bias", False) else None


def apply_activation(layer, tensor, name):
    activation = getattr(layer, "activation", None)
    if activation is None or activation is tf.keras.activations.linear:
        return tensor
    return L.Activation(activation, name=name)(tensor)


def is_linear(layer) -> bool:
    activation = getattr(layer, "activation", None)
    return activation is None or activation is tf.keras.activations.linear


def single_input(args):
    return args[0]


def acts_on_last_axis(layer, rank: int) -> bool:
    axis = layer.axis
    axis = axis[0] if isinstance(axis, list | tuple) and len(axis) == 1 else axis
    return isinstance(axis, int) and axis in (-1, rank - 1)


def batchnorm_affine(layer) -> tuple[np.ndarray, np.ndarray]:
    """(m, c) with BN(x) = m·x + c per channel at inference (Ioffe & Szegedy 2015, Alg. 2)."""
    mean = layer.moving_mean.numpy().astype(np.float64)
    variance = layer.moving_variance.numpy().astype(np.float64)
    gamma = layer.gamma.numpy().astype(np.float64) if layer.scale else np.ones_like(mean)
    beta = layer.beta.numpy().astype(np.float64) if layer.center else np.zeros_like(mean)
    multiplier = gamma / np.sqrt(variance + layer.epsilon)
    return multiplier, beta - mean * multiplier


def is_batchnorm(layer) -> bool:
    return isinstance(layer, L.BatchNormalization) and not getattr(layer, "renorm", False)


def is_foldable_batchnorm(layer) -> bool:
    """A BatchNormalization called once, normalizing the last (channel) axis: a per-channel
    affine map that can move into the layer before it."""
    return (
        is_batchnorm(layer)
        and len(layer._inbound_nodes) == 1
        and acts_on_last_axis(layer, len(layer.input_shape))
    )


def affine_probe(layer, channels: int, rank: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(m, c) with layer(x) = m·x + c per channel (last axis) at inference, or None if the
    layer is not such an affine map (checked at x = 0, 1 and −3)."""
    shape = (1,) * (rank - 1) + (channels,)

    def run(value):
        y = layer(tf.fill(shape, tf.constant(value, tf.float32)), training=False)
        return np.asarray(y, np.float64).reshape(channels)

    offset = run(0.0)
    multiplier = run(1.0) - offset
    expected = offset - 3.0 * multiplier
    if not np.allclose(run(-3.0), expected, rtol=1e-5, atol=1e-6):
        return None
    return multiplier, offset


def strip_quantizers(layer, *, keep_input_quantizer: bool):
    """A new layer of `layer`'s larq/Keras base class without weight quantizers (and without
    the input quantizer unless `keep_input_quantizer`); kbnn-only options are dropped."""
    cls = larq_base(layer)
    config = base_config(layer, cls)
    for key in list(config):
        if key.endswith("_quantizer") and (key != "input_quantizer" or not keep_input_quantizer):
            config[key] = None
    return cls.from_config(config)


def quantized_weights(layer) -> list[np.ndarray]:
    """`layer`'s weights as used at inference: q(w) for quantized variables, w otherwise."""
    values = []
    for variable in layer.weights:
        if isinstance(variable, QuantizedVariable) and variable.quantizer is not None:
            latent = tf.convert_to_tensor(variable.latent_variable)
            values.append(np.asarray(variable.quantizer(latent), np.float32))
        else:
            values.append(latent_value(variable))
    return values
