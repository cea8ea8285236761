r"""Graph passes that rewrite a Keras model so LCE lowers every kbnn layer kind to binary kernels.

Each pass is a pure function `Model -> Model` (the input model is never modified) that is
exact at inference, up to float rounding of the folded constants:

1. `fold_shift_batchnorm`: shift-based BN → the BatchNormalization with the same affine map.
   `drop_hard_tanh_before_sign`: clip(x, −1, 1) whose output only reaches sign quantizers → gone.
2. `reorder_pool_batchnorm`: MaxPool → BN with a positive multiplier → BN → MaxPool, so the BN
   fuses into the convolution before it (max commutes with increasing affine maps).
3. `dense_to_conv`: quantized Dense → Reshape + 1×1 QuantConv2D + Reshape (LCE only lowers
   convolutions; larq/compute-engine#53).
4. `split_activation_planes`: k-bit unsigned inputs → k ±1 planes stacked on the batch axis,
   one convolution, then `CombineBitPlanes` (constant term ΣW/2 folded into its bias).
5. `split_weight_planes`: ±1 inputs with ternary/five-level/k-bit weights → one ±α-kernel
   convolution per weight plane, summed (`kbnn.converters.levels.weight_planes`).
6. `fold_batchnorm`: BN after a plane sum or `CombineBitPlanes` → folded into the planes'
   multipliers/biases (LCE only fuses BN that directly follows a single convolution).
7. `freeze_float_fallbacks`: layers that cannot be lowered get their quantized kernel q(W) as a
   constant float kernel (what LCE would compute anyway, but exact and explicit).

`lower(model)` chains them. New layers are named `<original>_kb_<role>`.
"""

from __future__ import annotations

import inspect
import json

from kbnn.converters import levels as klevels
from kbnn.converters.graph import (
    clone_layer,
    consumers,
    derived_name,
    flatten,
    is_flat,
    producer,
    rebuild,
)
from kbnn.converters.layers import ActivationBitPlanes, CombineBitPlanes
from kbnn.converters.plan import plan_layer

import larq as lq
import numpy as np
import tensorflow as tf
from larq.quantized_variable import QuantizedVariable

L = tf.keras.layers

#: Epsilon of the BatchNormalization that replaces a shift-based one.
_BN_EPSILON = 1e-3

_MAX_POOLS = (L.MaxPooling1D, L.MaxPooling2D, L.GlobalMaxPooling1D, L.GlobalMaxPooling2D)


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


class _Namer:
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


def _copy_quantizer(quantizer):
    if quantizer is None:
        return None
    return lq.quantizers.get(lq.quantizers.serialize(quantizer))


def _larq_base(layer) -> type:
    """The larq (or Keras) class `layer` configures; kbnn subclasses add only defaults."""
    for cls in type(layer).__mro__:
        if cls.__module__.startswith(("larq.layers", "tf_keras.", "keras.")):
            return cls
    return type(layer)  # pragma: no cover - every kernel layer derives from Keras


def _base_config(layer, cls) -> dict:
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


def _conv_like(
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
        input_quantizer=input_quantizer,
        kernel_quantizer=kernel_quantizer,
        pad_values=pad_values,
        kernel_constraint=layer.kernel_constraint if kernel_quantizer is not None else None,
        name=name,
    )


def _call_with_weights(layer, inputs, weights):
    outputs = layer(inputs)
    layer.set_weights([np.asarray(w, np.float32) for w in weights])
    return outputs


def _quantizer_key(quantizer) -> str:
    """Identifies what a quantizer computes (its class and config, not its layer name)."""
    config = quantizer.get_config() if hasattr(quantizer, "get_config") else {}
    config = {key: value for key, value in config.items() if key != "name"}
    return f"{type(quantizer).__qualname__}:{json.dumps(config, sort_keys=True, default=str)}"


def latent_value(variable) -> np.ndarray:
    """The stored (latent, unquantized) value of a possibly larq-quantized variable."""
    if isinstance(variable, QuantizedVariable):
        return variable.latent_variable.numpy()
    return variable.numpy()


def _bias(layer) -> np.ndarray | None:
    return latent_value(layer.bias) if getattr(layer, "use_bias", False) else None


def _activation(layer, tensor, name):
    activation = getattr(layer, "activation", None)
    if activation is None or activation is tf.keras.activations.linear:
        return tensor
    return L.Activation(activation, name=name)(tensor)


def _is_linear(layer) -> bool:
    activation = getattr(layer, "activation", None)
    return activation is None or activation is tf.keras.activations.linear


def _single_input(args):
    return args[0]


def _last_axis(layer, rank: int) -> bool:
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


def _is_batchnorm(layer) -> bool:
    return isinstance(layer, L.BatchNormalization) and not getattr(layer, "renorm", False)


def _shift_bn_class():
    try:
        from kbnn.normalization import ShiftBatchNormalization
    except ImportError:  # pragma: no cover - optional module
        return None
    return ShiftBatchNormalization


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


# ----------------------------------------------------------------------------------------------
# 1. Shift-based batch normalisation
# ----------------------------------------------------------------------------------------------


def fold_shift_batchnorm(model):
    """Replace every ShiftBatchNormalization by the BatchNormalization with the same inference
    map x·m + c (moving mean 0, moving variance 1 − ε, γ = m, β = c), which LCE fuses."""
    model = flatten(model)
    shift_bn = _shift_bn_class()
    targets = {}
    for layer in model.layers:
        if shift_bn is not None and isinstance(layer, shift_bn):
            rank = len(layer.input_shape)
            if not _last_axis(layer, rank):
                continue
            affine = affine_probe(layer, int(layer.input_shape[-1]), rank)
            if affine is not None:
                targets[layer.name] = affine
    if not targets:
        return model

    def replace(layer, args, kwargs):
        if layer.name not in targets:
            return None
        multiplier, offset = targets[layer.name]
        bn = L.BatchNormalization(epsilon=_BN_EPSILON, name=layer.name)
        channels = multiplier.shape[0]
        variance = np.full(channels, 1.0 - _BN_EPSILON)
        return _call_with_weights(
            bn, _single_input(args), [multiplier, offset, np.zeros(channels), variance]
        )

    return rebuild(model, replace)


# ----------------------------------------------------------------------------------------------
# 1b. Hard tanh right before a sign
# ----------------------------------------------------------------------------------------------

#: Layers through which "only signs are taken downstream" carries over: sign(f(x)) = f(sign(x))
#: for max-pooling (monotone), and rearrangements and inference no-ops commute with any
#: element-wise function.
_SIGN_TRANSPARENT = (
    L.MaxPooling1D,
    L.MaxPooling2D,
    L.GlobalMaxPooling1D,
    L.GlobalMaxPooling2D,
    L.Flatten,
    L.Reshape,
    L.Permute,
    L.Dropout,
    L.SpatialDropout1D,
    L.SpatialDropout2D,
)


def is_hard_tanh(layer) -> bool:
    """`layer` computes clip(x, −1, 1) (BinaryNet's htanh), checked on a probe grid."""
    if not isinstance(layer, L.Activation | L.ReLU):
        return False
    probe = np.array(
        [-1e6, -3.0, -1.0, -0.999, -0.5, -1e-7, 0.0, 1e-7, 0.5, 0.999, 1.0, 3.0, 1e6], np.float32
    )
    try:
        values = np.asarray(layer(tf.constant(probe)), np.float32)
    except Exception:  # not element-wise on a vector: not a hard tanh
        return False
    return values.shape == probe.shape and np.array_equal(values, np.clip(probe, -1, 1))


def _only_signs_taken(name: str, model, uses, depth: int = 0) -> bool:
    after = uses.get(name, [])
    if not after or "<output>" in after or depth > 8:
        return False
    for consumer_name in after:
        consumer = model.get_layer(consumer_name)
        if isinstance(consumer, lq.quantizers.Quantizer) and klevels.is_sign_quantizer(consumer):
            continue
        if klevels.input_encoding(consumer).kind == "sign" and len(consumer._inbound_nodes) == 1:
            continue
        if isinstance(consumer, _SIGN_TRANSPARENT) and _only_signs_taken(
            consumer_name, model, uses, depth + 1
        ):
            continue
        return False
    return True


def drop_hard_tanh_before_sign(model):
    """Remove a hard tanh whose output only ever reaches sign quantizers (through max-pooling,
    reshapes or dropout): sign(clip(x, −1, 1)) = sign(x), so the graph is unchanged at
    inference, and LCE can fuse the batch norm before it with the sign into a binary
    convolution that writes bit-packed output."""
    model = flatten(model)
    uses = consumers(model)
    targets = {
        layer.name
        for layer in model.layers
        if is_hard_tanh(layer)
        and len(layer._inbound_nodes) == 1
        and _only_signs_taken(layer.name, model, uses)
    }
    if not targets:
        return model
    return rebuild(
        model, lambda layer, args, kwargs: _single_input(args) if layer.name in targets else None
    )


# ----------------------------------------------------------------------------------------------
# 2. MaxPool → BN  ⇒  BN → MaxPool
# ----------------------------------------------------------------------------------------------


def reorder_pool_batchnorm(model):
    """Move a BatchNormalization in front of the max-pooling that feeds it when every channel's
    multiplier γ/√(σ² + ε) is positive: then max(m·x + c) = m·max(x) + c exactly (rounding is
    monotone), and the BN fuses into the convolution before the pool (BinaryNet's
    conv → pool → BN order otherwise leaves a float MUL + ADD)."""
    model = flatten(model)
    uses = consumers(model)
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, _MAX_POOLS) or len(layer._inbound_nodes) != 1:
            continue
        after = uses.get(layer.name, [])
        if len(after) != 1 or after[0] == "<output>":
            continue
        bn = model.get_layer(after[0])
        if not _is_batchnorm(bn) or len(bn._inbound_nodes) != 1:
            continue
        if not _last_axis(bn, len(bn.input_shape)):
            continue
        multiplier, _ = batchnorm_affine(bn)
        if np.all(multiplier > 0):
            pairs[layer.name] = bn
    if not pairs:
        return model
    moved = {bn.name for bn in pairs.values()}

    def replace(layer, args, kwargs):
        if layer.name in moved:
            return _single_input(args)
        if layer.name in pairs:
            bn = pairs[layer.name]
            normalized = _call_with_weights(clone_layer(bn), _single_input(args), bn.get_weights())
            return clone_layer(layer)(normalized)
        return None

    return rebuild(model, replace)


# ----------------------------------------------------------------------------------------------
# 3. Dense → 1×1 convolution
# ----------------------------------------------------------------------------------------------


def dense_to_conv(model):
    """Quantized Dense (units U) on inputs (N, …, F) → Reshape (N, 1, T, F) → 1×1 QuantConv2D
    with the same quantizers and kernel (1, 1, F, U) → Reshape (N, …, U). Applied to every
    dense layer that `plan_layer` lowers to binary kernels."""
    model = flatten(model)
    targets = {}
    for layer in model.layers:
        plan = plan_layer(layer)
        if plan is None or plan.action not in ("bconv", "planes"):
            continue
        if isinstance(layer, lq.layers.QuantDense) and _kernel_reshape_safe(layer):
            targets[layer.name] = layer
    if not targets:
        return model
    name = _Namer(model)

    def replace(layer, args, kwargs):
        if layer.name not in targets:
            return None
        inputs = _single_input(args)
        in_shape = inputs.shape.as_list()
        features, units = in_shape[-1], layer.units
        middle = in_shape[1:-1]
        positions = int(np.prod(middle)) if middle else 1
        image = L.Reshape((1, positions, features), name=name(layer.name, "to_image"))(inputs)
        conv = lq.layers.QuantConv2D(
            units,
            1,
            use_bias=layer.use_bias,
            input_quantizer=_copy_quantizer(layer.input_quantizer),
            kernel_quantizer=_copy_quantizer(layer.kernel_quantizer),
            kernel_constraint=layer.kernel_constraint,
            name=name(layer.name, "conv1x1"),
        )
        weights = [latent_value(layer.kernel).reshape(1, 1, features, units)]
        if layer.use_bias:
            weights.append(_bias(layer))
        outputs = _call_with_weights(conv, image, weights)
        outputs = L.Reshape(tuple(middle) + (units,), name=name(layer.name, "from_image"))(outputs)
        return _activation(layer, outputs, name(layer.name, "activation"))

    return rebuild(model, replace)


def _kernel_reshape_safe(layer) -> bool:
    """q(W) reshaped to 1×1×F×U equals q(W reshaped): the quantizer only sees the last axis."""
    quantizer = layer.kernel_quantizer
    if quantizer is None:
        return True
    kernel = latent_value(layer.kernel)
    flat = np.asarray(quantizer(tf.constant(kernel)))
    image = np.asarray(quantizer(tf.constant(kernel[None, None])))
    return np.array_equal(flat[None, None], image)


# ----------------------------------------------------------------------------------------------
# 4. k-bit activations → ±1 bit planes
# ----------------------------------------------------------------------------------------------


def split_activation_planes(model):
    r"""A QuantConv2D with unsigned k-bit inputs a = Q/n becomes
    ActivationBitPlanes (k planes s_j stacked on the batch axis) → QuantConv2D with `ste_sign`
    inputs, `pad_values=1` and the same kernel → CombineBitPlanes:

        conv(a, W) + b = Σ_j (−2^j/2n)·conv(s_j, W) + (b + ΣW/2).

    Exact at SAME borders too: a zero-padded a is u_j = 0, i.e. s_j = +1."""
    model = flatten(model)
    targets = {}
    for layer in model.layers:
        plan = plan_layer(layer)
        if (
            plan is not None
            and plan.action == "planes"
            and isinstance(layer, lq.layers.QuantConv2D)
            and klevels.input_encoding(layer).kind == "unsigned"
        ):
            targets[layer.name] = klevels.input_encoding(layer).bits
    if not targets:
        return model
    name = _Namer(model)
    shared_planes: dict[tuple, tf.Tensor] = {}

    def replace(layer, args, kwargs):
        if layer.name not in targets:
            return None
        bits = targets[layer.name]
        n = 2**bits - 1
        inputs = _single_input(args)
        key = (id(inputs), bits, _quantizer_key(layer.input_quantizer))
        if key not in shared_planes:
            planes_layer = ActivationBitPlanes(
                bits, _copy_quantizer(layer.input_quantizer), name=name(layer.name, "bits")
            )
            shared_planes[key] = planes_layer(inputs)
        conv = _conv_like(
            layer,
            name=name(layer.name, "signed"),
            input_quantizer="ste_sign",
            kernel_quantizer=_copy_quantizer(layer.kernel_quantizer),
            pad_values=1.0,
            use_bias=False,
        )
        outputs = _call_with_weights(conv, shared_planes[key], [latent_value(layer.kernel)])
        kernel_sum = klevels.quantized_kernel(layer).astype(np.float64).sum(axis=(0, 1, 2))
        bias = kernel_sum / 2.0
        if layer.use_bias:
            bias = bias + _bias(layer)
        combine = CombineBitPlanes(
            [-(2.0**j) / (2.0 * n) for j in range(bits)], name=name(layer.name, "combine")
        )
        outputs = _call_with_weights(combine, outputs, [np.ones(layer.filters), bias])
        return _activation(layer, outputs, name(layer.name, "activation"))

    return rebuild(model, replace)


# ----------------------------------------------------------------------------------------------
# 5. Multi-level weights → ±1 weight planes
# ----------------------------------------------------------------------------------------------


def split_weight_planes(model):
    r"""A QuantConv2D with ±1 inputs and kernel q(W) = s·L (integer levels L, per-channel s)
    becomes one convolution per plane of L = Σ_i c_i·b_i, kernel c_i·s·b_i (±α per output
    channel, LCE's post-multiplier), summed by an Add:

        conv(x, s·L) = Σ_i conv(x, c_i·s·b_i).

    Binary kernels give a single plane (the layer with its kernel frozen to ±α). Layers with
    XNOR input scaling and one plane are left to LCE, which lowers them itself."""
    model = flatten(model)
    targets = {}
    for layer in model.layers:
        plan = plan_layer(layer)
        if (
            plan is not None
            and plan.action in ("bconv", "planes")
            and isinstance(layer, lq.layers.QuantConv2D)
            and klevels.input_encoding(layer).kind == "sign"
            and not getattr(layer, "xnor_input_scaling", False)
        ):
            targets[layer.name] = klevels.kernel_levels(layer)
    if not targets:
        return model
    name = _Namer(model)

    def replace(layer, args, kwargs):
        if layer.name not in targets:
            return None
        found = targets[layer.name]
        planes = klevels.weight_planes(found.levels)
        inputs = _single_input(args)
        outputs = []
        for index, (coefficient, plane) in enumerate(
            zip(planes.coefficients, planes.planes, strict=True)
        ):
            with_bias = layer.use_bias and index == 0
            role = f"w{index}" if len(planes) > 1 else "bconv"
            conv = _conv_like(
                layer,
                name=name(layer.name, role),
                input_quantizer="ste_sign",
                kernel_quantizer=None,
                pad_values=layer.pad_values,
                use_bias=with_bias,
            )
            weights = [coefficient * found.scale * plane]
            if with_bias:
                weights.append(_bias(layer))
            outputs.append(_call_with_weights(conv, inputs, weights))
        total = outputs[0] if len(outputs) == 1 else L.Add(name=name(layer.name, "sum"))(outputs)
        return _activation(layer, total, name(layer.name, "activation"))

    return rebuild(model, replace)


# ----------------------------------------------------------------------------------------------
# 6. Batch normalisation after a plane sum
# ----------------------------------------------------------------------------------------------


def fold_batchnorm(model):
    """Fold a BatchNormalization (m·x + c) that follows a sum of binary convolutions into
    their kernels (±α·m is still ±α' per channel) and the first one's bias, or into a
    `CombineBitPlanes`' multiplier and bias. A BN after a single convolution is left to LCE."""
    model = flatten(model)
    uses = consumers(model)
    combine_targets: dict[str, tf.keras.layers.Layer] = {}
    plane_targets: dict[str, tuple[tf.keras.layers.Layer, bool]] = {}
    removed: set[str] = set()
    for bn in model.layers:
        if not _is_batchnorm(bn) or len(bn._inbound_nodes) != 1:
            continue
        if not _last_axis(bn, len(bn.input_shape)):
            continue
        source = producer(bn._inbound_nodes[0].keras_inputs[0])
        if source is None or uses.get(source.name) != [bn.name]:
            continue
        if len(source._inbound_nodes) != 1:
            continue
        if isinstance(source, CombineBitPlanes):
            combine_targets[source.name] = bn
            removed.add(bn.name)
            continue
        if not isinstance(source, L.Add):
            continue
        convs = [producer(t) for t in source._inbound_nodes[0].keras_inputs]
        if all(_foldable_plane(conv, source.name, uses) for conv in convs):
            for index, conv in enumerate(convs):
                plane_targets[conv.name] = (bn, index == 0)
            removed.add(bn.name)
    if not removed:
        return model

    def replace(layer, args, kwargs):
        if layer.name in removed:
            return _single_input(args)
        if layer.name in combine_targets:
            multiplier, offset = batchnorm_affine(combine_targets[layer.name])
            old_multiplier, old_bias = layer.get_weights()
            combine = clone_layer(layer)
            return _call_with_weights(
                combine,
                _single_input(args),
                [old_multiplier * multiplier, old_bias * multiplier + offset],
            )
        if layer.name in plane_targets:
            bn, first = plane_targets[layer.name]
            multiplier, offset = batchnorm_affine(bn)
            kernel = latent_value(layer.kernel) * multiplier
            bias = _bias(layer)
            bias = np.zeros(layer.filters) if bias is None else bias * multiplier
            if first:
                bias = bias + offset
            use_bias = first or layer.use_bias
            conv = _conv_like(
                layer,
                name=layer.name,
                input_quantizer=_copy_quantizer(layer.input_quantizer),
                kernel_quantizer=None,
                pad_values=layer.pad_values,
                use_bias=use_bias,
            )
            return _call_with_weights(
                conv, _single_input(args), [kernel, bias] if use_bias else [kernel]
            )
        return None

    return rebuild(model, replace)


def _foldable_plane(layer, sum_name: str, uses) -> bool:
    return (
        isinstance(layer, lq.layers.QuantConv2D)
        and type(layer) is lq.layers.QuantConv2D
        and layer.kernel_quantizer is None
        and _is_linear(layer)
        and uses.get(layer.name) == [sum_name]
        and len(layer._inbound_nodes) == 1
    )


# ----------------------------------------------------------------------------------------------
# 7. Float fallbacks
# ----------------------------------------------------------------------------------------------


def freeze_float_fallbacks(model):
    """Layers `plan_layer` sends to the float fallback keep their input quantizer but get q(W)
    as a plain float kernel (no kernel quantizer), so what LCE stores is exactly what Keras
    multiplies with."""
    model = flatten(model)
    targets = set()
    for layer in model.layers:
        plan = plan_layer(layer)
        if (
            plan is not None
            and plan.action == "float"
            and _weight_quantizers(layer)
            and not getattr(layer, "xnor_input_scaling", False)
        ):
            targets.add(layer.name)
    if not targets:
        return model

    def replace(layer, args, kwargs):
        if layer.name not in targets:
            return None
        return _call_with_weights(
            strip_quantizers(layer, keep_input_quantizer=True),
            _single_input(args),
            quantized_weights(layer),
        )

    return rebuild(model, replace)


def _weight_quantizers(layer) -> list[str]:
    return [
        key
        for key in ("kernel_quantizer", "depthwise_quantizer", "pointwise_quantizer")
        if getattr(layer, key, None) is not None
    ]


def strip_quantizers(layer, *, keep_input_quantizer: bool):
    """A new layer of `layer`'s larq/Keras base class without weight quantizers (and without
    the input quantizer unless `keep_input_quantizer`); kbnn-only options are dropped."""
    cls = _larq_base(layer)
    config = _base_config(layer, cls)
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


# ----------------------------------------------------------------------------------------------
# All of them
# ----------------------------------------------------------------------------------------------

PASSES = (
    fold_shift_batchnorm,
    drop_hard_tanh_before_sign,
    reorder_pool_batchnorm,
    dense_to_conv,
    split_activation_planes,
    split_weight_planes,
    fold_batchnorm,
    freeze_float_fallbacks,
)


def lower(model, passes=PASSES):
    """Apply `passes` in order; the result is what `convert` hands to LCE. Models with nested
    models or layers called more than once (here or in other models) are first rebuilt into
    a flat copy with one call per layer, which is what the passes analyse."""
    output_names = list(model.output_names)
    if not is_flat(model) or any(len(layer._inbound_nodes) > 1 for layer in model.layers):
        model = rebuild(model)
    for graph_pass in passes:
        model = graph_pass(model)
    if model.output_names != output_names:
        # The converter names the flatbuffer's outputs after these (its SignatureDef); keep
        # the user's names even when a pass replaced the layer that produces an output.
        model.output_names = output_names
    return model
