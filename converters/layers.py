r"""Keras layers that only the converter's rewrites create (bit planes of k-bit activations).

A convolution with unsigned k-bit inputs a = Q/n (n = 2^k − 1, Q = Σ_j 2^j·u_j) and any kernel
W is computed with ±1 inputs only:

    conv(a, W) = ΣW/2 − Σ_j (2^j / 2n) · conv(s_j, W),   s_j = 1 − 2·u_j,

where ΣW is the sum of the kernel per output channel (using Σ_j 2^j = n). Zero-padded borders
of `a` have u_j = 0, i.e. s_j = +1, which is exactly LCE's `pad_values=1` padding, so the
identity holds at every output position, borders included.

`ActivationBitPlanes` stacks the k planes along the batch axis so a single convolution (one
copy of the kernel in the flatbuffer) processes all of them; `CombineBitPlanes` takes the
weighted sum back and adds the constant term (and any folded batch normalisation).
`DequantizedActivation` is the k-bit input of a layer that stays a float convolution.
"""

from __future__ import annotations

from kbnn._registry import register
from kbnn.converters import levels as klevels

import larq as lq
import numpy as np
import tensorflow as tf

_register = register  # kbnn>Name, like every kbnn Keras object


@_register
class ActivationBitPlanes(tf.keras.layers.Layer):
    r"""(N, …) inputs → (k·N, …) with block j equal to ½ − u_j, u_j the j-th bit of Q.

    Q = quantizer's integer level of the input. The next layer's `ste_sign` turns block j into
    s_j = sign(½ − u_j) = 1 − 2·u_j. Block order: least significant bit first.

    # Arguments
        bits: k, the activation bit width.
        quantizer: the original input quantizer (serialized or object); its integer levels
            define Q.
    """

    def __init__(self, bits: int, quantizer, **kwargs):
        super().__init__(**kwargs)
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
            raise ValueError(f"`bits` must be an integer in 1..16, got {bits!r}.")
        self.bits = bits
        self.quantizer = lq.quantizers.get(quantizer)

    def call(self, inputs):
        # Most significant bit first, peeling it off the remainder: u_j = ⌊r / 2^j⌋ and
        # r ← r − 2^j·u_j, exact on integer-valued floats. No FLOOR_MOD: TFLite's costs about
        # 50 aarch64 instructions per element (docs/arm64.md).
        remainder = _levels(self.quantizer, inputs, self.bits)
        planes = [None] * self.bits
        for j in reversed(range(self.bits)):
            bit = tf.floor(remainder * (0.5**j)) if j else remainder
            if j:
                remainder = remainder - bit * (2.0**j)
            planes[j] = 0.5 - bit
        return tf.concat(planes, axis=0) if self.bits > 1 else planes[0]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "bits": self.bits,
            "quantizer": lq.quantizers.serialize(self.quantizer),
        }


@_register
class DequantizedActivation(tf.keras.layers.Layer):
    r"""q(x) = Q(x)/n for a DoReFa k-bit activation quantizer ((2Q − n)/n for a signed
    FixedPointInput), Q computed by `_levels`: the same values as the quantizer's own
    clip(x, 0, 1), without TFLite's slow broadcasting MINIMUM.

    # Arguments
        quantizer: the original DoReFa input quantizer (serialized or object).
    """

    def __init__(self, quantizer, **kwargs):
        super().__init__(**kwargs)
        self.quantizer = lq.quantizers.get(quantizer)
        if not has_fast_levels(self.quantizer):
            raise ValueError(
                f"`quantizer` must be a DoReFa activation quantizer, got {quantizer!r}."
            )

    def call(self, inputs):
        unit = _levels(self.quantizer, inputs, self.quantizer.precision) / float(self.quantizer.n)
        return 2.0 * unit - 1.0 if _is_signed(self.quantizer) else unit

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "quantizer": lq.quantizers.serialize(self.quantizer)}


def has_fast_levels(quantizer) -> bool:
    """`quantizer` computes DoReFa's round(n·clip(u, 0, 1)) (u = x, or (x + 1)/2 for a signed
    FixedPointInput), which `_levels` rewrites."""
    from kbnn.quantizers import DoReFaActivation, FixedPointInput

    levels_of = getattr(type(quantizer), "integer_levels", None)
    return levels_of is not None and (
        levels_of is DoReFaActivation.integer_levels or levels_of is FixedPointInput.integer_levels
    )


def _is_signed(quantizer) -> bool:
    return bool(getattr(quantizer, "signed", False))


def _levels(quantizer, inputs, bits: int):
    """Integer levels Q of `inputs`. DoReFa's round(n·clip(x, 0, 1)) is computed as
    round(n·relu(clip(x, −1, 1))), the same values bit for bit, because TFLite has a fused
    RELU_N1_TO_1 but a slow broadcasting MINIMUM (about 3 vs 13 aarch64 instructions per
    element; docs/arm64.md)."""
    if has_fast_levels(quantizer):
        if _is_signed(quantizer):
            inputs = (inputs + 1.0) / 2.0
        unit = tf.nn.relu(tf.clip_by_value(inputs, -1.0, 1.0))
        return tf.round(unit * float(quantizer.n))
    return klevels.integer_activation_levels(quantizer, inputs, bits)


@_register
class CombineBitPlanes(tf.keras.layers.Layer):
    r"""(k·N, …, C) → (N, …, C): y = multiplier ⊙ Σ_j coefficients[j]·x_j + bias.

    x_j is batch block j of the input. `multiplier` and `bias` are per-channel (last axis)
    non-trainable weights so that a following batch normalisation can be folded in.
    """

    def __init__(self, coefficients, **kwargs):
        super().__init__(**kwargs)
        self.coefficients = [float(c) for c in coefficients]
        if not self.coefficients:
            raise ValueError("`coefficients` must not be empty.")

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.multiplier = self.add_weight(
            name="multiplier", shape=(channels,), initializer="ones", trainable=False
        )
        self.bias = self.add_weight(
            name="bias", shape=(channels,), initializer="zeros", trainable=False
        )
        super().build(input_shape)

    def call(self, inputs):
        k = len(self.coefficients)
        rank = inputs.shape.rank
        coefficients = tf.constant(np.reshape(self.coefficients, [k] + [1] * rank), inputs.dtype)
        weights = coefficients * self.multiplier
        if k > 1:
            blocks = tf.reshape(inputs, [k, -1] + inputs.shape.as_list()[1:])
            combined = tf.reduce_sum(blocks * weights, axis=0)
        else:  # a 1-D multiplier, which LCE can fuse into the convolution before it
            combined = inputs * (self.coefficients[0] * self.multiplier)
        return combined + self.bias

    def get_config(self):
        return {**super().get_config(), "coefficients": self.coefficients}
