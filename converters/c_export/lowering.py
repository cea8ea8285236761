"""Integer lowering: a Keras model of quantized layers → a list of `IntegerLayer`s whose
parameters are integers only (the code generator and the numpy reference both consume them).

Each quantized convolution / dense layer L with its followers (batch norm, max-pool, hard tanh,
flatten) up to the next quantized layer becomes one `IntegerLayer`:

    acc[y, x, c] = Σ_{ky, kx, ci} v[y + ky − pad, x + kx − pad, ci] · k[ky, kx, ci, c]

with integer activations v (the raw 8-bit image, ±1 signs, k-bit DoReFa levels or fixed-point
int8) and integer weights k (±1, {−1, 0, 1} or int8). The real pre-activation is
`z_c = a_c·acc + b_c` (input and weight scales, bias and batch norm folded; `a_c = γ_c·s_c /
sqrt(σ²_c + ε)`). Channels with `a_c < 0` get their kernel negated, so every comparison reads
"acc ≥ threshold":

* sign (next layer's `ste_sign`, sign(0) = +1): `z ≥ 0 ⇔ acc ≥ ⌈−b/a⌉`;
* DoReFa k-bit, `q = round(n·clip(z, 0, 1))`, n = 2^k − 1: `q = #{j : acc ≥ ⌈((j − ½)/n − b)/a⌉}`;
* hard tanh into a float layer (approximate): `y = clamp(⌊(A·acc + B)/2^S⌋, −127, 127)`,
  `A = round(127·a·2^S)`, `B = round(127·b·2^S) + 2^(S−1)`, read as y/127;
* the last layer: int32 scores `A_c·acc + B_c`, `A_c = round(a_c·2^m)`, `B_c = round(b_c·2^m)`,
  with m as large as keeps every score inside ±2^30 (see `_scores`).

a_c = 0 gives a constant output (threshold below or above every reachable acc). Max-pool commutes
with these non-decreasing maps, so it is applied to acc before the threshold: max over the window
when the pooled value increases with acc, min when a pool placed before a negative-scale batch
norm makes it decrease (`pool_min`). In bits, that is the OR (resp. AND) of the window's bits.
"""

from __future__ import annotations

import dataclasses
import math

from kbnn.converters.c_export.errors import ExportError
from kbnn.kernels import kernel_quantizer, quantized_kernel

import numpy as np
import tensorflow as tf

SCORE_LIMIT = 2**30  # |score| bound: int32 with room for the tie-free argmax
INT8_LIMIT = 127


@dataclasses.dataclass
class IntegerLayer:
    """One quantized layer and its followers in integer form (see the module docstring)."""

    name: str
    in_format: str  # "u8" (raw image) | "sign" (±1) | "planes" (k-bit levels) | "i8"
    in_shape: tuple[int, int, int]  # H, W, C
    in_planes: int  # bit planes of a "planes" input (1 otherwise)
    input_lut: np.ndarray | None  # u8 pixel → level (DoReFa-quantized image), or None
    kernel: np.ndarray  # int64 (kh, kw, cin, cout), sign-folded
    weight_format: str  # "binary" | "ternary" | "int8"
    pad: tuple[int, int]  # top, left
    pad_value: int  # integer value of SAME-padding elements (0: skipped)
    conv_shape: tuple[int, int]  # conv output H, W before pooling
    pool: tuple[int, int]
    pool_min: np.ndarray  # bool (cout,)
    out_format: str  # "sign" | "planes" | "i8" | "scores"
    out_planes: int
    thresholds: np.ndarray | None  # int64 (cout, levels) for sign/planes
    mult: np.ndarray | None  # int64 (cout,) for i8/scores
    bias: np.ndarray | None
    shift: int  # i8 output: S; scores: m (scores ≈ 2^m·z)
    real_scale: np.ndarray  # float64 a_c (after folding), for docs and margins
    real_offset: np.ndarray  # float64 b_c

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return (
            self.conv_shape[0] // self.pool[0],
            self.conv_shape[1] // self.pool[1],
            self.kernel.shape[3],
        )


@dataclasses.dataclass
class IntegerNetwork:
    """The lowered network: the input shape, its layers, the class count."""

    input_shape: tuple[int, int, int]
    layers: list[IntegerLayer]

    @property
    def num_classes(self) -> int:
        return int(self.layers[-1].kernel.shape[3])


# ---------------------------------------------------------------------------------------------
# Quantizers: what a layer's input and kernel quantizers mean in integers
# ---------------------------------------------------------------------------------------------

_SIGN_PROBE = np.array([-3.0, -1.0, -0.25, -1e-7, 0.0, 1e-7, 0.25, 1.0, 3.0], np.float32)


def _input_kind(layer) -> tuple[str, int]:
    """("none", 0), ("sign", 1) or ("levels", k) for the layer's input quantizer."""
    from kbnn.quantizers import DoReFaActivation

    quantizer = getattr(layer, "input_quantizer", None)
    if quantizer is None:
        return "none", 0
    if isinstance(quantizer, DoReFaActivation) and not getattr(quantizer, "signed", False):
        return "levels", int(quantizer.k_bit)
    out = np.asarray(quantizer(tf.constant(_SIGN_PROBE)))
    if np.array_equal(out, np.where(_SIGN_PROBE >= 0, 1.0, -1.0)):
        return "sign", 1
    raise ExportError(
        f"layer {layer.name!r}: input quantizer "
        f"{type(quantizer).__name__} is not supported by export-c (supported: "
        "ste_sign-like signs with sign(0) = +1, DoReFa k-bit activations)"
    )


def _integer_kernel(layer) -> tuple[np.ndarray, np.ndarray, str]:
    """(integer kernel, per-output-channel scale, format) with kernel·scale = the quantized
    kernel: ±1 ("binary"), {−1, 0, 1} ("ternary") or int8 ("int8", float kernels)."""
    quantizer = kernel_quantizer(layer)
    values = np.asarray(quantized_kernel(layer), np.float64)
    flat = values.reshape(-1, values.shape[-1])
    scale = np.abs(flat).max(axis=0)
    scale[scale == 0] = 1.0
    ratio = flat / scale
    if quantizer is None:
        return (
            np.round(ratio * INT8_LIMIT).astype(np.int64).reshape(values.shape),
            scale / INT8_LIMIT,
            "int8",
        )
    rounded = np.round(ratio)
    if not np.allclose(ratio, rounded, atol=1e-6) or np.abs(rounded).max() > 1:
        raise ExportError(
            f"layer {layer.name!r}: kernel quantizer {type(quantizer).__name__} "
            "does not give ±α or {−α, 0, α} per output channel"
        )
    fmt = "ternary" if (rounded == 0).any() else "binary"
    return rounded.astype(np.int64).reshape(values.shape), scale, fmt


# ---------------------------------------------------------------------------------------------
# Walking the Keras graph
# ---------------------------------------------------------------------------------------------

_FOLLOWERS = (
    tf.keras.layers.BatchNormalization,
    tf.keras.layers.MaxPooling2D,
    tf.keras.layers.Flatten,
    tf.keras.layers.Activation,
)


def _is_quantized(layer) -> bool:
    return isinstance(layer, (tf.keras.layers.Conv2D, tf.keras.layers.Dense))


def _chain(model) -> list:
    """The model's layers in order, checking it is a single chain."""
    chain = [layer for layer in model.layers if not isinstance(layer, tf.keras.layers.InputLayer)]
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ExportError("export-c needs a model with one input and one output")
    for prev, layer in zip(chain, chain[1:], strict=False):
        inbound = layer._inbound_nodes[0].inbound_layers if layer._inbound_nodes else None
        if inbound is not prev and inbound != [prev]:
            raise ExportError(
                f"layer {layer.name!r} does not follow {prev.name!r} directly; "
                "export-c supports single-chain models only"
            )
    return chain


def _activation_name(layer) -> str | None:
    if isinstance(layer, tf.keras.layers.Activation):
        fn = getattr(layer.activation, "__name__", "")
        return fn
    return None


def _check_follower(layer) -> None:
    name = type(layer).__name__
    if isinstance(layer, tf.keras.layers.MaxPooling2D):
        if (
            layer.padding != "valid"
            or tuple(layer.strides) != tuple(layer.pool_size)
            or layer.data_format != "channels_last"
        ):
            raise ExportError(
                f"layer {layer.name!r}: MaxPooling2D must have strides = "
                "pool_size and padding='valid' for export-c"
            )
        return
    if isinstance(layer, tf.keras.layers.Activation):
        if _activation_name(layer) not in ("softmax", "hard_tanh", "linear"):
            raise ExportError(
                f"layer {layer.name!r}: activation "
                f"{_activation_name(layer)!r} is not supported by export-c"
            )
        return
    if not isinstance(layer, _FOLLOWERS):
        raise ExportError(
            f"layer {layer.name!r} ({name}) is not supported by export-c "
            "(supported: quantized Conv2D/Dense, BatchNormalization, "
            "MaxPooling2D, Flatten, hard tanh, softmax)"
        )


def _groups(model) -> list[tuple[object, list]]:
    """[(quantized layer, its followers)] in order."""
    groups: list[tuple[object, list]] = []
    for layer in _chain(model):
        if _is_quantized(layer):
            groups.append((layer, []))
            continue
        _check_follower(layer)
        if not groups:
            raise ExportError(
                f"layer {layer.name!r} ({type(layer).__name__}) comes before the "
                "first quantized layer; export-c needs the image to enter a "
                "convolution or dense layer first"
            )
        groups[-1][1].append(layer)
    if not groups:
        raise ExportError("the model has no convolution or dense layer to export")
    return groups


# ---------------------------------------------------------------------------------------------
# Folding one group
# ---------------------------------------------------------------------------------------------


def _bn_affine(layer) -> tuple[np.ndarray, np.ndarray]:
    """BatchNormalization (or shift-BN) at inference as y = g·x + h (float64)."""
    config = layer.get_config()
    if hasattr(layer, "inference_affine"):
        g, h = layer.inference_affine()
        return np.asarray(g, np.float64), np.asarray(h, np.float64)
    if type(layer) is not tf.keras.layers.BatchNormalization:
        raise ExportError(
            f"layer {layer.name!r} ({type(layer).__name__}) is not supported by "
            "export-c (no inference affine)"
        )
    mean = np.asarray(layer.moving_mean, np.float64)
    var = np.asarray(layer.moving_variance, np.float64)
    gamma = np.asarray(layer.gamma, np.float64) if layer.scale else np.ones_like(mean)
    beta = np.asarray(layer.beta, np.float64) if layer.center else np.zeros_like(mean)
    g = gamma / np.sqrt(var + config["epsilon"])
    return g, beta - mean * g


def _spatial(layer, in_shape) -> tuple[tuple[int, int, int, int], tuple[int, int], tuple]:
    """(kernel shape, pad (top, left), conv output (H, W)) of a Conv2D/Dense on in_shape."""
    h, w, c = in_shape
    if isinstance(layer, tf.keras.layers.Dense):
        return (h, w, c, layer.units), (0, 0), (1, 1)
    kh, kw = layer.kernel_size
    if tuple(layer.strides) != (1, 1) or tuple(layer.dilation_rate) != (1, 1):
        raise ExportError(f"layer {layer.name!r}: export-c supports stride 1, dilation 1 only")
    if getattr(layer, "groups", 1) != 1:
        raise ExportError(f"layer {layer.name!r}: grouped convolutions are not supported")
    if layer.padding == "same":
        return (kh, kw, c, layer.filters), ((kh - 1) // 2, (kw - 1) // 2), (h, w)
    return (kh, kw, c, layer.filters), (0, 0), (h - kh + 1, w - kw + 1)


def _pad_value(layer, in_kind: str) -> int:
    if getattr(layer, "padding", "valid") != "same":
        return 0
    value = float(getattr(layer, "pad_values", 0.0) or 0.0)
    if value == 0.0:
        return 0
    if in_kind == "sign" and value in (1.0, -1.0):
        return int(value)
    raise ExportError(
        f"layer {layer.name!r}: SAME padding with pad_values={value} is only "
        "supported for ±1 inputs"
    )


def _ceil_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.ceil(num / den)


def _thresholds(a: np.ndarray, b: np.ndarray, targets: np.ndarray, bound: np.ndarray):
    """Integer t[c, j] with `a·acc + b ≥ target_j ⇔ acc ≥ t` for a ≥ 0 (sign folded); a = 0:
    always (−bound − 1) or never (bound + 1)."""
    a2, b2, tg = a[:, None], b[:, None], targets[None, :]
    lim = bound[:, None].astype(np.float64) + 1
    safe = np.where(a2 > 0, a2, 1.0)
    t = np.clip(np.ceil((tg - b2) / safe), -lim, lim)
    constant = np.where(b2 >= tg, -lim, lim)
    return np.where(a2 > 0, t, constant).astype(np.int64)


def _scores(a: np.ndarray, b: np.ndarray, bound: np.ndarray):
    """int32 scores A·acc + B ≈ 2^m·(a·acc + b): m is the largest with every |score| ≤ 2^30.
    Rounding moves a score by at most (|acc| + 1)/2, so the argmax is Keras' whenever the two
    best real scores differ by more than (max|acc| + 1)/2^m."""
    worst = float(np.max(np.abs(a) * bound + np.abs(b)))
    m = int(math.floor(math.log2((SCORE_LIMIT - 1) / max(worst, 1e-30)))) - 1
    m = min(m, 60)
    scale = 2.0**m
    return np.round(a * scale).astype(np.int64), np.round(b * scale).astype(np.int64), m


def _int8_out(a: np.ndarray, b: np.ndarray, bound: np.ndarray):
    """(A, B, S) of y = clamp(⌊(A·acc + B)/2^S⌋, ±127) ≈ round(127·clip(a·acc + b, ±1))."""
    worst = float(np.max(INT8_LIMIT * (np.abs(a) * bound + np.abs(b)))) + 1
    s = int(math.floor(math.log2(SCORE_LIMIT / worst))) - 1
    s = max(1, min(s, 22))
    scale = INT8_LIMIT * 2.0**s
    return (
        np.round(a * scale).astype(np.int64),
        (np.round(b * scale) + 2 ** (s - 1)).astype(np.int64),
        s,
    )


@dataclasses.dataclass
class _Folded:
    """A group's followers reduced to z = a·acc + b, and where its pool sits."""

    a: np.ndarray
    b: np.ndarray
    pool: tuple[int, int] = (1, 1)
    a_at_pool: np.ndarray | None = None
    hard_tanh: bool = False
    softmax: bool = False


def _fold(followers, a: np.ndarray, b: np.ndarray) -> _Folded:
    folded = _Folded(a, b)
    for layer in followers:
        if isinstance(layer, tf.keras.layers.BatchNormalization) or hasattr(
            layer, "inference_affine"
        ):
            g, h = _bn_affine(layer)
            folded.a, folded.b = g * folded.a, g * folded.b + h
        elif isinstance(layer, tf.keras.layers.MaxPooling2D):
            if folded.a_at_pool is not None:
                raise ExportError(f"layer {layer.name!r}: one max-pool per layer group only")
            folded.pool, folded.a_at_pool = tuple(layer.pool_size), folded.a.copy()
        elif _activation_name(layer) == "hard_tanh":
            folded.hard_tanh = True
        elif _activation_name(layer) == "softmax":
            folded.softmax = True
        elif not isinstance(layer, (tf.keras.layers.Flatten, tf.keras.layers.Activation)):
            _check_follower(layer)
    if folded.a_at_pool is None:
        folded.a_at_pool = np.ones_like(folded.a)
    return folded


def _input_format(index: int, layer, kind: str, bits: int, previous: _Folded | None):
    """(format, planes, lut, value bound, real scale of one integer step)."""
    if index == 0:
        if kind == "none":
            return "u8", 1, None, 255, 1.0 / 255
        if kind == "levels":
            n = 2**bits - 1
            lut = (2 * n * np.arange(256) + 255) // 510  # round(n·u/255), never a tie
            return "u8", 1, lut.astype(np.int64), n, 1.0 / n
        raise ExportError(
            f"layer {layer.name!r}: a sign quantizer on the raw image is not supported by export-c"
        )
    if kind == "sign":
        return "sign", 1, None, 1, 1.0
    if kind == "levels":
        return "planes", bits, None, 2**bits - 1, 1.0 / (2**bits - 1)
    if previous is None or not previous.hard_tanh:
        raise ExportError(
            f"layer {layer.name!r} takes float activations that are not bounded "
            "by a hard tanh; export-c cannot represent them in integers"
        )
    return "i8", 1, None, INT8_LIMIT, 1.0 / INT8_LIMIT


def _output(folded: _Folded, next_kind: tuple[str, int] | None, layer, bound):
    """(format, planes, thresholds, mult, bias, shift, sign flip per channel)."""
    if next_kind is None:
        mult, bias, exponent = _scores(folded.a, folded.b, bound)
        return "scores", 0, None, mult, bias, exponent, np.ones_like(folded.a)
    if folded.softmax:
        raise ExportError(f"layer {layer.name!r}: softmax is only supported at the output")
    flip = np.where(folded.a < 0, -1.0, 1.0)
    a = np.abs(folded.a)
    kind, bits = next_kind
    if kind == "sign":
        return "sign", 1, _thresholds(a, folded.b, np.zeros(1), bound), None, None, 0, flip
    if kind == "levels":
        n = 2**bits - 1
        targets = (np.arange(1, n + 1) - 0.5) / n
        return "planes", bits, _thresholds(a, folded.b, targets, bound), None, None, 0, flip
    mult, bias, shift = _int8_out(a, folded.b, bound)
    return "i8", 1, None, mult, bias, shift, flip


def lower(model) -> IntegerNetwork:
    """Lower a single-chain Keras model of quantized Conv2D/Dense layers to integers (see the
    module docstring); `ExportError` names the first layer that cannot be lowered."""
    groups = _groups(model)
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    if len(shape) != 3:
        raise ExportError(f"export-c needs an image input (H, W, C), got shape {shape}")
    kinds = [_input_kind(layer) for layer, _ in groups]
    layers_out, previous = [], None
    for index, (layer, followers) in enumerate(groups):
        fmt, planes, lut, vmax, in_scale = _input_format(index, layer, *kinds[index], previous)
        kernel_shape, pad, conv_shape = _spatial(layer, shape)
        kernel, w_scale, w_fmt = _integer_kernel(layer)
        if kernel.size != np.prod(kernel_shape):
            raise ExportError(
                f"layer {layer.name!r}: a dense layer on an unflattened "
                f"{shape} map is not supported (add a Flatten before it)"
            )
        kernel = kernel.reshape(kernel_shape)
        if w_fmt == "int8" and fmt not in ("u8", "i8"):
            raise ExportError(f"layer {layer.name!r}: float kernels need byte activations")
        bias = np.asarray(layer.bias, np.float64) if getattr(layer, "use_bias", False) else 0.0
        folded = _fold(followers, in_scale * w_scale, np.zeros(kernel_shape[3]) + bias)
        bound = vmax * np.abs(kernel).reshape(-1, kernel_shape[3]).sum(axis=0)
        last = index == len(groups) - 1
        out = _output(folded, None if last else kinds[index + 1], layer, bound)
        out_fmt, out_planes, thresholds, mult, bias_i, shift, flip = out
        pool_min = (folded.a_at_pool * flip) < 0
        item = IntegerLayer(
            name=layer.name,
            in_format=fmt,
            in_shape=shape,
            in_planes=planes,
            input_lut=lut,
            kernel=(kernel * flip.astype(np.int64)).astype(np.int64),
            weight_format=w_fmt,
            pad=pad,
            pad_value=_pad_value(layer, kinds[index][0]),
            conv_shape=conv_shape,
            pool=folded.pool,
            pool_min=pool_min,
            out_format=out_fmt,
            out_planes=out_planes,
            thresholds=thresholds,
            mult=mult,
            bias=bias_i,
            shift=shift,
            real_scale=folded.a * flip,
            real_offset=folded.b,
        )
        if last and item.out_shape[:2] != (1, 1):
            raise ExportError(
                f"the last layer {layer.name!r} gives a {item.out_shape} map; "
                "export-c needs class scores (a dense layer or a 1x1 output)"
            )
        layers_out.append(item)
        shape, previous = item.out_shape, folded
    return IntegerNetwork(
        input_shape=tuple(int(d) for d in model.inputs[0].shape[1:]), layers=layers_out
    )
