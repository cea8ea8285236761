"""Quantized layers with the defaults of the classic BNN recipes (TensorLayer-style names).

Each layer is a thin configuration of larq's `QuantConv2D` / `QuantDense` (so
`isinstance(layer, larq.layers.QuantConv2D)` holds and LCE converts them like larq layers):

| layer | input quantizer | kernel quantizer | kernel constraint |
|---|---|---|---|
| `BinaryConv2D`, `BinaryDense` | `ste_sign` | `ste_sign` | `weight_clip` ([−1, 1]) |
| `TernaryConv2D`, `TernaryDense` | None (float, as TernaryNet) | `twn` | `weight_clip` |
| `FiveLevelConv2D`, `FiveLevelDense` | None | `five_level` | `weight_clip` |
| `DorefaConv2D`, `DorefaDense` | `DoReFaActivation(bit_a)` | `DoReFaWeight(bit_w)` | `weight_clip` |

All default to `use_bias=False` (a following BatchNormalization carries the bias). Convolutions
with a ±1 input quantizer pad SAME borders with +1 (`pad_values=1.0`), the padding LCE's binary
convolution implements on every target; other inputs are zero-padded.

`Sign`, `GradientQuantizer`, larq's `Quant*` layers and `ShiftBatchNormalization` are
available here too, so a model needs only `kbnn.layers`.
"""

import threading
from typing import TYPE_CHECKING

from kbnn import quantizers
from kbnn._registry import register
from kbnn.math import check_bits
from kbnn.normalization import ShiftBatchNormalization  # noqa: F401  (re-exported)

import larq as lq
import tensorflow as tf
from larq.layers import (  # noqa: F401  (re-exported)
    QuantConv1D,
    QuantConv2D,
    QuantConv2DTranspose,
    QuantConv3D,
    QuantConv3DTranspose,
    QuantDense,
    QuantDepthwiseConv2D,
    QuantLocallyConnected1D,
    QuantLocallyConnected2D,
    QuantSeparableConv1D,
    QuantSeparableConv2D,
)
from larq.quantizers import DoReFa, SteHeaviside, SteSign

if TYPE_CHECKING:  # the mixins below are, to a type checker, the larq layer they go with
    from larq.layers import QuantConv2D as _MixinBase
else:
    _MixinBase = object

__all__ = [
    "BinaryConv2D",
    "BinaryDense",
    "DorefaConv2D",
    "DorefaDense",
    "DorefaPreset",
    "FiveLevelConv2D",
    "FiveLevelDense",
    "GradientQuantizer",
    "PRESET",
    "PresetConv2D",
    "PresetDense",
    "QuantConv1D",
    "QuantConv2D",
    "QuantConv2DTranspose",
    "QuantConv3D",
    "QuantConv3DTranspose",
    "QuantDense",
    "QuantDepthwiseConv2D",
    "QuantLocallyConnected1D",
    "QuantLocallyConnected2D",
    "QuantSeparableConv1D",
    "QuantSeparableConv2D",
    "ShiftBatchNormalization",
    "Sign",
    "TernaryConv2D",
    "TernaryDense",
]


def _outputs_plus_minus_one(quantizer) -> bool:
    """True when the quantizer's outputs are ±1 (not {0, 1}): pad those with +1."""
    return getattr(quantizer, "precision", None) == 1 and not isinstance(
        quantizer, DoReFa | SteHeaviside
    )


def _default_pad_value(input_quantizer, pad_values):
    if pad_values is not None:
        return pad_values
    return 1.0 if _outputs_plus_minus_one(input_quantizer) else 0.0


class ReplicaSafePadding(_MixinBase):
    """Mixin for larq convolutions: keeps larq's temporary `padding = "valid"` per thread.

    With `pad_values != 0` larq pads the input itself and calls Keras' convolution inside
    `larq.utils.patch_object(self, "padding", "valid")`: a plain attribute swap, seen by every
    thread and not restored on an exception. `MirroredStrategy` runs each replica in its own
    thread and switches threads at every cross-replica call (`merge_call`) — and a quantizer's
    metric (larq's `FlipRatio`) makes one inside that window. The other replica then reads or
    restores the wrong padding (measured: "Shapes are [?,14,14,64] and [?,18,18,64]" when
    training `binarynet_mnist` with flip ratio on 2 replicas). Here the first assignment (the
    constructor's) is the layer's padding; later assignments — larq's patch — hold only for the
    thread that makes them, until its `build`/`call` returns.
    """

    @property
    def padding(self):
        patched = getattr(self.__dict__.get("_padding_patch"), "value", None)
        return self.__dict__["_padding"] if patched is None else patched

    @padding.setter
    def padding(self, value):
        if "_padding" not in self.__dict__:
            self.__dict__["_padding"] = value
            self.__dict__["_padding_patch"] = threading.local()
        else:
            self.__dict__["_padding_patch"].value = value

    def _clear_padding_patch(self):
        self.__dict__["_padding_patch"].value = None

    def build(self, input_shape):
        try:
            super().build(input_shape)
        finally:
            self._clear_padding_patch()

    def call(self, inputs):
        try:
            return super().call(inputs)
        finally:
            self._clear_padding_patch()


# --------------------------------------------------------------------------------------------
# Presets: one base per layer kind, the defaults as class attributes. Every preset is
# registered as `kbnn>Name` and, for legacy .h5 files, as `Name` (`bare_name=True`).
# --------------------------------------------------------------------------------------------


class _Preset:
    """Marks a quantizer argument left out: the preset's class-level default applies."""

    def __repr__(self):
        return "<preset default>"


PRESET = _Preset()


class _QuantizerPreset:
    """Class-level quantizer defaults; `None` passed explicitly means no quantizer."""

    default_input_quantizer: str | None = None
    default_kernel_quantizer: str | None = None

    def _preset_quantizers(self, input_quantizer, kernel_quantizer):
        if input_quantizer is PRESET:
            input_quantizer = self.default_input_quantizer
        if kernel_quantizer is PRESET:
            kernel_quantizer = self.default_kernel_quantizer
        return quantizers.get(input_quantizer), quantizers.get(kernel_quantizer)


class PresetConv2D(_QuantizerPreset, ReplicaSafePadding, QuantConv2D):
    """`QuantConv2D` with the preset's quantizers, weight clipping and no bias by default.

    # Arguments
        pad_values: value of SAME padding; None picks +1 for ±1 inputs, 0 otherwise.
        Everything else as `larq.layers.QuantConv2D`.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        *,
        input_quantizer=PRESET,
        kernel_quantizer=PRESET,
        kernel_constraint="weight_clip",
        use_bias=False,
        pad_values=None,
        **kwargs,
    ):
        input_quantizer, kernel_quantizer = self._preset_quantizers(
            input_quantizer, kernel_quantizer
        )
        super().__init__(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            pad_values=_default_pad_value(input_quantizer, pad_values),
            input_quantizer=input_quantizer,
            kernel_quantizer=kernel_quantizer,
            kernel_constraint=kernel_constraint,
            use_bias=use_bias,
            **kwargs,
        )


class PresetDense(_QuantizerPreset, QuantDense):
    """`QuantDense` with the preset's quantizers, weight clipping and no bias by default."""

    def __init__(
        self,
        units,
        *,
        input_quantizer=PRESET,
        kernel_quantizer=PRESET,
        kernel_constraint="weight_clip",
        use_bias=False,
        **kwargs,
    ):
        input_quantizer, kernel_quantizer = self._preset_quantizers(
            input_quantizer, kernel_quantizer
        )
        super().__init__(
            units,
            input_quantizer=input_quantizer,
            kernel_quantizer=kernel_quantizer,
            kernel_constraint=kernel_constraint,
            use_bias=use_bias,
            **kwargs,
        )


# --------------------------------------------------------------------------------------------
# Binary
# --------------------------------------------------------------------------------------------


@register(bare_name=True)
class BinaryConv2D(PresetConv2D):
    r"""Binary convolution (BinaryNet, Courbariaux, Hubara et al. 2016): sign(x) ⊛ sign(W).

    Latent weights are clipped to [−1, 1]. For a first layer with real-valued inputs pass
    `input_quantizer=None` (binary weights, float inputs).

    `xnor_input_scaling=True` adds XNOR-Net's input scale (Rastegari et al. 2016, §3.2):
    the output is multiplied by K = A ⊛ k, where A = mean over channels of |x| (the raw input,
    before quantization) and k is a kh×kw box filter of 1/(kh·kw), applied with the layer's
    strides, dilation and padding (borders padded with 0). Combine with
    `kernel_quantizer="xnor_weight"` for the full XNOR-Net layer I ⊛ W ≈ (sign(I) ⊛ sign(W)) ⊙ Kα.

    # Arguments
        xnor_input_scaling: multiply the output by XNOR-Net's K (channels_last only).
        Everything else as `PresetConv2D`.
    """

    default_input_quantizer = "ste_sign"
    default_kernel_quantizer = "ste_sign"

    def __init__(self, *args, xnor_input_scaling=False, **kwargs):
        self.xnor_input_scaling = bool(xnor_input_scaling)
        self._xnor_scale = None
        super().__init__(*args, **kwargs)
        if self.xnor_input_scaling and self.data_format != "channels_last":
            raise ValueError("`xnor_input_scaling` supports only data_format='channels_last'.")

    def _input_scale(self, inputs):
        """XNOR-Net's K = mean_c |x| ⊛ (box filter of 1/(kh·kw)), shape (N, H', W', 1)."""
        mean_magnitude = tf.reduce_mean(tf.abs(inputs), axis=-1, keepdims=True)
        kh, kw = self.kernel_size
        box = tf.fill((kh, kw, 1, 1), tf.constant(1.0 / (kh * kw), inputs.dtype))
        return tf.nn.conv2d(
            mean_magnitude,
            box,
            strides=list(self.strides),
            padding=self.padding.upper(),
            dilations=list(self.dilation_rate),
        )

    def call(self, inputs):
        if not self.xnor_input_scaling:
            return super().call(inputs)
        with lq.utils.patch_object(self, "_xnor_scale", self._input_scale(inputs)):
            return super().call(inputs)

    def convolution_op(self, inputs, kernel):
        outputs = super().convolution_op(inputs, kernel)
        if self._xnor_scale is not None:
            outputs = outputs * self._xnor_scale
        return outputs

    def get_config(self):
        return {**super().get_config(), "xnor_input_scaling": self.xnor_input_scaling}


@register(bare_name=True)
class BinaryDense(PresetDense):
    """Binary fully connected layer (BinaryNet): sign(x) · sign(W), latent W clipped to [−1, 1].

    `input_quantizer=None` for real-valued inputs.
    """

    default_input_quantizer = "ste_sign"
    default_kernel_quantizer = "ste_sign"


# --------------------------------------------------------------------------------------------
# Ternary and five-level weights (float inputs by default, as in TernaryNet)
# --------------------------------------------------------------------------------------------


@register(bare_name=True)
class TernaryConv2D(PresetConv2D):
    """Ternary-weight convolution (TWN, Li & Liu 2016): x ⊛ α·t, kernel quantizer `"twn"`."""

    default_kernel_quantizer = "twn"


@register(bare_name=True)
class TernaryDense(PresetDense):
    """Ternary-weight fully connected layer (TWN): x · α·t, kernel quantizer `"twn"`."""

    default_kernel_quantizer = "twn"


@register(bare_name=True)
class FiveLevelConv2D(PresetConv2D):
    """Five-level-weight convolution: x ⊛ α·t, t ∈ {−2..2}, kernel quantizer `"five_level"`."""

    default_kernel_quantizer = "five_level"


@register(bare_name=True)
class FiveLevelDense(PresetDense):
    """Five-level-weight fully connected layer, kernel quantizer `"five_level"`."""

    default_kernel_quantizer = "five_level"


# --------------------------------------------------------------------------------------------
# DoReFa
# --------------------------------------------------------------------------------------------


class DorefaPreset(_MixinBase):
    """Mixin for a preset base: quantizers from `bit_w`/`bit_a`, saved as those two numbers.

    # Arguments
        bit_w: weight bits (`DoReFaWeight`, 1 = E|W|·sign(W)).
        bit_a: activation bits (`DoReFaActivation`, inputs clipped to [0, 1]); None keeps the
            input real-valued (first layer).
    """

    def __init__(self, *args, bit_w=1, bit_a=3, **kwargs):
        check_bits(bit_w, "bit_w")
        if bit_a is not None:
            check_bits(bit_a, "bit_a")
        for name in ("input_quantizer", "kernel_quantizer"):
            if kwargs.pop(name, None) is not None:
                raise ValueError(
                    f"`{name}` is set by `bit_w`/`bit_a` in DoReFa layers; use a Quant* layer "
                    "for other quantizers."
                )
        self.bit_w, self.bit_a = bit_w, bit_a
        # Named after the layer, not Keras' global counter: every clone (and so every
        # conversion of the same model) traces the same op names.
        layer = kwargs.get("name")

        def named(role):
            return {"name": f"{layer}_{role}"} if layer else {}

        super().__init__(
            *args,
            input_quantizer=(
                None
                if bit_a is None
                else quantizers.DoReFaActivation(bit_a, **named("input_quantizer"))
            ),
            kernel_quantizer=quantizers.DoReFaWeight(bit_w, **named("kernel_quantizer")),
            **kwargs,
        )

    def get_config(self):
        config = super().get_config()
        config.pop("input_quantizer", None)
        config.pop("kernel_quantizer", None)
        return {**config, "bit_w": self.bit_w, "bit_a": self.bit_a}


@register(bare_name=True)
class DorefaConv2D(DorefaPreset, PresetConv2D):
    """DoReFa-Net convolution (Zhou et al. 2016): quantize_a(x) ⊛ quantize_w(W).

    Arguments as `DorefaPreset` and `PresetConv2D` (SAME borders padded with 0).
    """


@register(bare_name=True)
class DorefaDense(DorefaPreset, PresetDense):
    """DoReFa-Net fully connected layer: quantize_a(x) · quantize_w(W); see `DorefaConv2D`."""


# --------------------------------------------------------------------------------------------
# Activation-like layers
# --------------------------------------------------------------------------------------------


@register(bare_name=True)
class Sign(SteSign):
    """Binary activation layer: sign(x) with sign(0) = +1, clipped-STE backward (BinaryNet).

    larq's `SteSign` used as a layer (TensorLayer's `Sign`); LCE folds it into the next binary
    convolution's input.
    """


@register(bare_name=True)
class GradientQuantizer(quantizers.DoReFaGradient):
    """Identity layer whose backward pass quantizes the gradient to `k_bit` bits (DoReFa-Net).

    See `kbnn.quantizers.DoReFaGradient` for the formula.
    """
