"""Which layers the converter supports, and how each kernel layer will be lowered (and why).

`plan_layer` is the single place that decides between LCE's binary convolution (`bconv`),
binary planes (`planes`) and the float fallback; the graph passes and the conversion report
both ask it, so what the report says is what the passes did. Inside `plan_cache()` (which
`convert` and `passes.lower` open) each distinct layer is analysed once per conversion.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import json
from dataclasses import dataclass

from kbnn.converters import levels as klevels
from kbnn.converters.errors import ConversionError
from kbnn.kernels import latent_variable
from kbnn.normalization import ShiftBatchNormalization

import larq as lq
import numpy as np
import tensorflow as tf

L = tf.keras.layers

#: Layers converted as they are (TFLite builtins or LCE-lowered), beside the kernel layers.
_SUPPORTED = (
    L.InputLayer,
    L.Conv1D,
    L.Conv2D,
    L.DepthwiseConv2D,
    L.SeparableConv1D,
    L.SeparableConv2D,
    L.Conv2DTranspose,
    L.Dense,
    L.BatchNormalization,
    L.LayerNormalization,
    L.Activation,
    L.ReLU,
    L.LeakyReLU,
    L.PReLU,
    L.ELU,
    L.Softmax,
    L.MaxPooling1D,
    L.MaxPooling2D,
    L.AveragePooling1D,
    L.AveragePooling2D,
    L.GlobalAveragePooling1D,
    L.GlobalAveragePooling2D,
    L.GlobalMaxPooling1D,
    L.GlobalMaxPooling2D,
    L.Flatten,
    L.Reshape,
    L.Permute,
    L.Dropout,
    L.SpatialDropout1D,
    L.SpatialDropout2D,
    L.GaussianNoise,
    L.GaussianDropout,
    L.AlphaDropout,
    L.ActivityRegularization,
    L.Add,
    L.Subtract,
    L.Multiply,
    L.Average,
    L.Maximum,
    L.Minimum,
    L.Concatenate,
    L.ZeroPadding1D,
    L.ZeroPadding2D,
    L.Cropping1D,
    L.Cropping2D,
    L.UpSampling1D,
    L.UpSampling2D,
    L.Rescaling,
    lq.quantizers.Quantizer,  # quantizers used as layers (kbnn.layers.Sign, GradientQuantizer)
    # An in-memory Lambda is opaque to the passes and traced by LCE's converter like plain LCE
    # does (MeliusNet's grouped-conv split, RealToBinaryNet's identity); its code is already
    # running, so there is no loading risk. Loading a *file* with a Lambda stays refused
    # (kbnn._loading, docs/security.md).
    L.Lambda,
)

_UNSUPPORTED: tuple[tuple[tuple[type, ...], str], ...] = (
    (
        (L.RNN, L.LSTM, L.GRU, L.SimpleRNN, L.Bidirectional, L.ConvLSTM2D, L.TimeDistributed),
        "recurrent layers have no binary kernel in Larq Compute Engine and are not supported "
        "by kbnn.converters",
    ),
    (
        (
            L.Conv3D,
            L.Conv3DTranspose,
            L.MaxPooling3D,
            L.AveragePooling3D,
            L.UpSampling3D,
            L.ZeroPadding3D,
            L.Cropping3D,
            L.GlobalAveragePooling3D,
            L.GlobalMaxPooling3D,
        ),
        "3-D layers have no kernel in Larq Compute Engine (its binary kernels are 2-D); "
        "reshape to 2-D convolutions",
    ),
    (
        (L.LocallyConnected1D, L.LocallyConnected2D),
        "locally connected layers have no TFLite or LCE kernel",
    ),
)

_KERNEL_LAYERS = (L.Conv1D, L.Conv2D, L.Dense, L.DepthwiseConv2D, L.SeparableConv2D)


@functools.cache
def _extra_supported():
    found: list[type] = [ShiftBatchNormalization]
    from kbnn.converters.layers import ActivationBitPlanes, CombineBitPlanes

    found += [ActivationBitPlanes, CombineBitPlanes]
    op_lambda = getattr(tf.keras.layers, "TFOpLambda", None)
    if op_lambda is None:  # pragma: no cover - tf_keras always has it
        from tf_keras.src.layers.core.tf_op_layer import TFOpLambda as op_lambda
    found.append(op_lambda)
    try:
        from tf_keras.src.layers.core.tf_op_layer import SlicingOpLambda

        found.append(SlicingOpLambda)
    except ImportError:  # pragma: no cover
        pass
    return tuple(found)


def unsupported_reason(layer) -> str | None:
    """Why `layer` cannot be converted, or None when it can."""
    for classes, reason in _UNSUPPORTED:
        if isinstance(layer, classes):
            return reason
    if isinstance(layer, _SUPPORTED + _extra_supported()):
        if getattr(layer, "data_format", "channels_last") == "channels_first":
            return "data_format='channels_first' is not supported by TFLite; use channels_last"
        return None
    return (
        f"layer type {type(layer).__name__} is not in kbnn.converters' list of supported "
        "layers (pass allow_unknown_layers=True to hand it to LCE unchecked)"
    )


def check_supported(layers, *, allow_unknown: bool = False) -> None:
    """Raise ConversionError naming the first layer that cannot be converted."""
    for layer in layers:
        quantizer = getattr(layer, "input_quantizer", None)
        if klevels.is_ternary_quantizer(quantizer):
            raise ConversionError(
                f"Layer '{layer.name}' ({type(layer).__name__}) cannot be converted: its input "
                f"quantizer {klevels.quantizer_name(quantizer)} is ternary ({{−a, 0, +a}}), and "
                "LCE's converter lowers it as sign with sign(0) = +1, which would silently "
                "disagree with Keras; use a ±1 (ste_sign) or unsigned k-bit input quantizer."
            )
        if _binary_conv_lce_pads_wrongly(layer):
            raise ConversionError(
                f"Layer '{layer.name}' ({type(layer).__name__}) cannot be converted: a binary "
                f"convolution with SAME zero padding on a {_spatial(layer)} map, smaller than "
                f"its {'×'.join(map(str, layer.kernel_size))} kernel, which LCE 0.16 computes "
                "wrongly (and a float fallback would be re-fused into it); use pad_values=1 or "
                "a larger input."
            )
        reason = unsupported_reason(layer)
        if reason is None:
            continue
        if allow_unknown and reason.startswith("layer type"):
            continue
        raise ConversionError(
            f"Layer '{layer.name}' ({type(layer).__name__}) cannot be converted: {reason}."
        )


@dataclass(frozen=True)
class Lowering:
    """How a kernel layer ends up in the flatbuffer.

    action: "bconv" (one LCE binary convolution), "planes" (binary planes summed),
    "float" (float32 fallback, `reason` says why) or "float-weights" (a float layer).
    bconvs: LceBconv2d ops expected (k-bit activation planes share one, stacked on the batch).
    """

    action: str
    weight_planes: int
    activation_bits: int
    weight_bits: int
    reason: str

    @property
    def bconvs(self) -> int:
        return self.weight_planes if self.action in ("bconv", "planes") else 0

    def describe(self) -> str:
        if self.action == "bconv":
            return "binary conv"
        if self.action == "planes":
            parts = []
            if self.weight_planes > 1:
                parts.append(f"{self.weight_planes} weight planes")
            if self.activation_bits > 1:
                parts.append(f"{self.activation_bits} activation bit planes")
            if self.activation_bits == 1 and not parts:
                parts.append("{0, 1} inputs as ±1")
            return "binary planes: " + " x ".join(parts)
        if self.action == "float":
            return f"float fallback: {self.reason}"
        return "float layer"


def is_kernel_layer(layer) -> bool:
    return isinstance(layer, _KERNEL_LAYERS)


def _is_plain(layer, base) -> bool:
    """`layer` is `base` or a subclass that does not change the kernel's geometry."""
    return isinstance(layer, base) and not isinstance(
        layer, L.DepthwiseConv2D | L.SeparableConv2D | L.Conv2DTranspose
    )


def plan_layer(layer) -> Lowering | None:
    """The lowering of one kernel layer, or None for layers without a kernel."""
    if not is_kernel_layer(layer):
        return None
    return _analysis(layer)[0]


def layer_levels(layer) -> klevels.KernelLevels | None:
    """`levels.kernel_levels(layer)` for a layer with a `kernel`, the same object `plan_layer`
    decided on (computed once per conversion inside `plan_cache()`)."""
    return _analysis(layer)[1]


def plan_with_levels(layer) -> tuple[Lowering | None, klevels.KernelLevels | None]:
    """(`plan_layer(layer)`, `layer_levels(layer)`) from one cache lookup (each lookup hashes
    the layer's weights: 0.15 s for XNORNet's fc6)."""
    plan, levels = _analysis(layer)
    return (plan if is_kernel_layer(layer) else None), levels


def _analyse(layer) -> tuple[Lowering | None, klevels.KernelLevels | None]:
    levels = klevels.kernel_levels(layer) if hasattr(layer, "kernel") else None
    return (_plan(layer, levels) if is_kernel_layer(layer) else None), levels


def _plan(layer, levels: klevels.KernelLevels | None) -> Lowering:
    encoding = klevels.input_encoding(layer)
    has_quantizer = any(
        getattr(layer, name, None) is not None
        for name in ("kernel_quantizer", "depthwise_quantizer", "pointwise_quantizer")
    )
    bits = levels.bits if levels is not None else 32

    def fallback(reason):
        return Lowering("float", 0, encoding.bits, bits, reason)

    if not (_is_plain(layer, lq.layers.QuantConv2D) or _is_plain(layer, lq.layers.QuantDense)):
        if has_quantizer or encoding.kind != "float":
            kind = type(layer).__name__
            return fallback(f"LCE has no binary kernel for {kind}")
        return Lowering("float-weights", 0, encoding.bits, 32, "float layer")
    if levels is None:
        if not has_quantizer:
            if encoding.kind == "float":
                return Lowering("float-weights", 0, 32, 32, "float layer")
            return fallback("kernel is not quantized")
        return fallback(
            f"kernel quantizer {_kernel_quantizer_name(layer)} has no discrete level set"
        )
    if encoding.kind == "float":
        return fallback("inputs are not quantized (float activations)")
    if encoding.kind == "unknown":
        return fallback(f"input quantizer {encoding.quantizer} is not ±1 or unsigned k-bit")
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return fallback("channels_first")
    if (
        encoding.kind == "unsigned"
        and getattr(layer, "padding", "valid") == "same"
        and float(np.asarray(getattr(layer, "pad_values", 0.0))) != 0.0
    ):
        return fallback("SAME padding with pad_values != 0 on k-bit inputs")
    if encoding.kind == "signed" and getattr(layer, "padding", "valid") == "same":
        return fallback("SAME padding on signed fixed-point inputs (the pad is not a level)")
    if _dense_input_unknown(layer):
        return fallback("dense input shape is not fully known")
    planes = klevels.plane_count(levels.levels)
    if getattr(layer, "xnor_input_scaling", False) and (planes > 1 or encoding.kind != "sign"):
        return fallback("XNOR input scaling is only lowered for binary weights and ±1 inputs")
    k_bit = encoding.kind in ("unsigned", "signed")
    activation_bits = encoding.bits if k_bit else 1
    if k_bit and not _planes_pay_off(layer, activation_bits):
        return fallback(
            f"{activation_bits}-bit inputs on {_input_channels(layer)} channel(s): a float "
            "convolution costs fewer ARM instructions than bit planes"
        )
    action = "bconv" if planes == 1 and encoding.kind == "sign" else "planes"
    return Lowering(action, planes, activation_bits, bits, "")


#: aarch64 instructions per 32-bit word-MAC of LceBconv2d ÷ per float MAC of CONV_2D, measured on
#: binarynet_mnist with `kbnn bench --target arm64 --per-op` (LCE optimized BGEMM: 373,410 for
#: 313,600 word-MACs; ruy float CONV_2D: 469,213 for 627,200 MACs). docs/arm64.md.
BCONV_WORD_COST = 1.6


def _binary_conv_lce_pads_wrongly(layer) -> bool:
    """LCE 0.16's binary convolution with SAME zero padding (`pad_values=0`) is wrong when the
    input map is smaller than the (dilated) kernel in height or width, plain LCE too: measured
    on 3×3 kernels at 1×1 and 2×2, 5×5 at 1×1..4×4, strides 1 and 2, exact from the kernel's
    size up (tests/test_verify.py). LCE re-fuses a float conv of ±1 inputs and ±1 filters into
    the same binary op, so the only safe answer is a refusal."""
    if getattr(layer, "padding", "valid") != "same" or not hasattr(layer, "kernel_size"):
        return False
    if getattr(layer, "kernel_quantizer", None) is None:
        return False
    if klevels.input_encoding(layer).kind != "sign":
        return False
    if float(np.max(np.asarray(getattr(layer, "pad_values", 0.0)))) != 0.0:
        return False
    shape = getattr(layer, "input_shape", None)
    if not isinstance(shape, tuple) or len(shape) != 4:
        return False
    dilation = getattr(layer, "dilation_rate", (1, 1))
    for size, kernel, rate in zip(shape[1:3], layer.kernel_size, dilation, strict=True):
        if size is not None and size < (kernel - 1) * rate + 1:
            return True
    return False


def _spatial(layer) -> str:
    return "×".join(str(size) for size in layer.input_shape[1:3])


def _input_channels(layer) -> int:
    return int(layer.input_shape[-1])


def _planes_pay_off(layer, bits: int) -> bool:
    """k bit planes cost k·⌈C/32⌉ binary word-MACs per tap and output, a float convolution on
    the dequantized k-bit input C float MACs: on few channels (a 1-channel image) the float
    convolution is the cheaper, and exact, lowering."""
    try:
        channels = _input_channels(layer)
    except (AttributeError, TypeError):  # input shape unknown: keep the binary lowering
        return True
    return BCONV_WORD_COST * bits * -(-channels // 32) < channels


def _dense_input_unknown(layer) -> bool:
    if not isinstance(layer, L.Dense):
        return False
    try:
        shape = layer.input_shape
    except AttributeError:  # not called yet, or called on inputs of different shapes
        return True
    return any(dim is None for dim in shape[1:])


def _kernel_quantizer_name(layer) -> str:
    return klevels.quantizer_name(getattr(layer, "kernel_quantizer", None))


# ----------------------------------------------------------------------------------------------
# One analysis per layer per conversion
# ----------------------------------------------------------------------------------------------


class _PlanCache:
    """`_analyse` results by what decides them: every pass rebuilds (clones) the model, so a
    layer is recognised by its class, config (name and quantizers included), input shape and a
    SHA-256 of its weights' bytes, never by object identity. A value the config cannot spell
    in JSON is keyed by its id and kept alive here, so the id cannot be reused."""

    def __init__(self):
        self.entries: dict[tuple, tuple] = {}
        self.pinned: list = []
        self.lookups = 0

    def get(self, layer):
        self.lookups += 1
        key = self.key(layer)
        if key not in self.entries:
            self.entries[key] = _analyse(layer)
        return self.entries[key]

    def key(self, layer) -> tuple:
        config = json.dumps(layer.get_config(), sort_keys=True, default=self._spell)
        return (type(layer), config, _input_shape(layer), _weights_digest(layer))

    def _spell(self, value):
        if isinstance(value, np.generic | np.ndarray):
            return value.tolist()
        self.pinned.append(value)
        return f"<{type(value).__qualname__} at {id(value):#x}>"


_ACTIVE: contextvars.ContextVar[_PlanCache | None] = contextvars.ContextVar(
    "kbnn_plan_cache", default=None
)


@contextlib.contextmanager
def plan_cache():
    """Within the block, `plan_layer` and `layer_levels` analyse each distinct layer once
    (recovering the integer levels of a 37.7M-weight kernel takes seconds, and every pass and
    the report ask again); a nested block shares the outer one's cache. Yields the cache."""
    cache = _ACTIVE.get()
    if cache is not None:
        yield cache
        return
    cache = _PlanCache()
    token = _ACTIVE.set(cache)
    try:
        yield cache
    finally:
        _ACTIVE.reset(token)


def _analysis(layer):
    cache = _ACTIVE.get()
    return _analyse(layer) if cache is None else cache.get(layer)


def _input_shape(layer) -> str | None:
    try:
        return repr(layer.input_shape)
    except (AttributeError, RuntimeError):  # never called, or called on different shapes
        return None


def _weights_digest(layer) -> str:
    digest = hashlib.sha256()
    for variable in layer.weights:
        value = np.ascontiguousarray(latent_variable(variable).numpy())
        digest.update(f"{value.dtype.str}{value.shape};".encode())
        digest.update(memoryview(value.reshape(-1).view(np.uint8)))
    return digest.hexdigest()
