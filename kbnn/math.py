"""Every formula kbnn's quantizers, layers and optimizers share, implemented once."""

from collections.abc import Callable

from kbnn._validation import check_int

import numpy as np
import tensorflow as tf
from larq.quantizers import _clipped_gradient


def ap2(x: tf.Tensor) -> tf.Tensor:
    r"""Power-of-two approximation, AP2(x) = sign(x) · 2^round(log2 |x|).

    Multiplying by AP2(y) is a bit shift, which is how BinaryNet (Courbariaux, Hubara et al.,
    2016, Algorithms 3 and 4) removes multiplications from batch normalisation and AdaMax.

    Zero-safe: AP2(0) = 0 (sign(0) = 0), never NaN. Rounding is round-half-to-even on log2|x|.
    Backward it is the identity (straight-through): d AP2(x)/dx := 1, because the true derivative
    is zero almost everywhere and would stop all learning through the normalisation.
    """
    x = tf.convert_to_tensor(x)

    @tf.custom_gradient
    def _ap2(x):
        magnitude = tf.abs(x)
        safe = tf.where(magnitude > 0, magnitude, tf.ones_like(magnitude))
        power = tf.pow(
            tf.constant(2.0, x.dtype),
            tf.round(tf.math.log(safe) / tf.math.log(tf.constant(2.0, x.dtype))),
        )
        return tf.sign(x) * power, lambda dy: dy

    return _ap2(x)


# --------------------------------------------------------------------------------------------
# Straight-through estimators. larq provides the clipped-gradient rule itself
# (`larq.quantizers._clipped_gradient`, the BinaryNet rule 1_{|x| <= clip}); kbnn reuses it and
# only adds the generic wrapper that attaches it to an arbitrary forward function.
# --------------------------------------------------------------------------------------------


def ste(x: tf.Tensor, forward: Callable[[tf.Tensor], tf.Tensor], clip_value: float | None = 1.0):
    r"""Return `forward(x)` with the straight-through pseudo-gradient.

    Backward: ∂q/∂x := 1 where |x| ≤ `clip_value`, 0 elsewhere (the BinaryNet rule, Courbariaux,
    Hubara et al. 2016, eq. 4 — a clipped identity, *not* the derivative of tanh);
    `clip_value=None` passes the gradient everywhere (the plain STE of Bengio et al. 2013).
    Everything `forward` computes (scales, thresholds) is treated as constant backward.
    """
    x = tf.convert_to_tensor(x)

    @tf.custom_gradient
    def _ste(x):
        return forward(x), lambda dy: _clipped_gradient(x, dy, clip_value)

    return _ste(x)


# --------------------------------------------------------------------------------------------
# Reductions and uniform quantization
# --------------------------------------------------------------------------------------------


def channel_reduce_axes(x: tf.Tensor, per_channel: bool = True) -> list[int]:
    """Axes to reduce for statistics of a kernel: all but the last (output-channel) axis when
    `per_channel`, every axis otherwise. Works for Dense (in, out) and Conv (kh, kw, in, out)."""
    rank = len(x.shape)
    return list(range(rank - 1)) if per_channel and rank > 1 else list(range(rank))


def _accumulation_dtype(dtype: tf.DType) -> tf.DType:
    """float32 for 16-bit floats, else `dtype`.

    Reductions run in it: in float16 a sum or an element count above 65504 is inf (a mean over
    100,000 weights is NaN, over 70,000 it is 0), and bfloat16 sums lose all precision (8-bit
    mantissa). Results are cast back to the input dtype."""
    return tf.float32 if dtype in (tf.float16, tf.bfloat16) else dtype


def mean_abs(x: tf.Tensor, per_channel: bool = True) -> tf.Tensor:
    """E|x| per output channel (shape (C_out,)) or over the whole tensor (scalar).

    This is XNOR-Net's optimal binary scale α* = ‖W‖₁/n (Rastegari et al. 2016, eq. 4).
    Accumulated in float32 for 16-bit inputs, returned in the input dtype."""
    x = tf.convert_to_tensor(x)
    wide = tf.cast(x, _accumulation_dtype(x.dtype))
    return tf.cast(tf.reduce_mean(tf.abs(wide), axis=channel_reduce_axes(x, per_channel)), x.dtype)


def quantize_k(x: tf.Tensor, k_bit: int) -> tf.Tensor:
    r"""DoReFa's quantize_k (Zhou et al. 2016, eq. 5): round((2^k − 1)·x) / (2^k − 1) for x ∈ [0, 1].

    Forward only (no gradient rule attached); rounding is half-to-even like `tf.round`."""
    n = float(max_level(k_bit))
    return tf.round(x * n) / n


def quantize_gradient(dr: tf.Tensor, k_bit: int, noise: tf.Tensor) -> tf.Tensor:
    r"""DoReFa gradient quantization (Zhou et al. 2016, eq. 12), for a given noise sample.

    With m = max|dr| over every axis but the batch axis (one value per example):
    \\[
    \tilde{dr} = 2m \left(\mathrm{quantize}_k\left(\mathrm{clip}\left(\frac{dr}{2m} + \frac12 + N(k),
    0, 1\right)\right) - \frac12\right)
    \\]
    `noise` must be uniform on [−½·1/(2^k−1), +½·1/(2^k−1)] (N(k), width 1/(2^k−1)), which makes
    the rounding stochastic and unbiased. The clip to [0, 1] only acts on the measure-zero edge
    where noise pushes the extreme element past the grid (as in the reference tensorpack code).
    An all-zero example (m = 0) stays zero.
    """
    dr = tf.convert_to_tensor(dr)
    axes = list(range(1, dr.shape.rank)) if dr.shape.rank > 1 else None
    m = tf.reduce_max(tf.abs(dr), axis=axes, keepdims=True)
    scaled = tf.math.divide_no_nan(dr, 2.0 * m) + 0.5 + noise
    return 2.0 * m * (quantize_k(tf.clip_by_value(scaled, 0.0, 1.0), k_bit) - 0.5)


def gradient_noise_width(k_bit: int) -> float:
    """Width 1/(2^k − 1) of DoReFa's uniform gradient noise N(k)."""
    return 1.0 / float(max_level(k_bit))


def ternarize(x: tf.Tensor, delta: tf.Tensor) -> tf.Tensor:
    """t = +1 where x > Δ, −1 where x < −Δ, 0 elsewhere (TWN, Li & Liu 2016, eq. 6); forward only."""
    x = tf.convert_to_tensor(x)
    one = tf.ones_like(x)
    return tf.where(x > delta, one, tf.where(x < -delta, -one, tf.zeros_like(x)))


def least_squares_scale(x: tf.Tensor, levels: tf.Tensor, per_channel: bool = True) -> tf.Tensor:
    r"""α* = ⟨x, T⟩ / ⟨T, T⟩, the scale minimising ‖x − α·T‖² for fixed integer levels T.

    Zero where T is all zero (no NaN). For T = sign(x) this is E|x| (XNOR-Net); for TWN's ternary
    T it is the mean of |x| over the non-zero positions. Accumulated in float32 for 16-bit
    inputs, returned in the input dtype."""
    x = tf.convert_to_tensor(x)
    dtype = x.dtype
    x = tf.cast(x, _accumulation_dtype(dtype))
    levels = tf.cast(levels, x.dtype)
    axes = channel_reduce_axes(x, per_channel)
    scale = tf.math.divide_no_nan(
        tf.reduce_sum(x * levels, axis=axes), tf.reduce_sum(levels * levels, axis=axes)
    )
    return tf.cast(scale, dtype)


def fit_symmetric_levels(
    x: tf.Tensor,
    max_level: int,
    per_channel: bool = True,
    candidates: int = 64,
    sample: int = 128,
    refine_steps: int = 3,
):
    r"""Least-squares fit of x ≈ α·t with t ∈ {−L..L} (L = `max_level`), α ≥ 0.

    Returns (t, α), α per output channel (last axis) or a scalar, with α = ⟨x, t⟩/⟨t, t⟩.

    Derivation. For fixed α the best t is the nearest level, t_i = clip(round(x_i/α), −L, L)
    (thresholds (j − ½)α on |x|). For fixed t the error is a parabola in α, minimal at
    α = ⟨x, t⟩/⟨t, t⟩ with value ‖x‖² − ⟨x, t⟩²/⟨t, t⟩. So the best α maximises
    S(α) = ⟨|x|, t(α)⟩²/⟨t(α), t(α)⟩, which is piecewise constant with many local optima:
    alternating the two steps (Lloyd) from α₀ = E|x| alone ends up to 13× above the optimal
    error on clipped latent weights (`python benchmarks/train_step.py --fit-quality`). kbnn therefore:
    1. scores S on a grid of `candidates` values α_g = 2·max|x|·g/candidates, on a strided
       sample of at most `sample` weights per channel (all of them for small kernels), and
    2. polishes the best α_g with `refine_steps` alternating steps on all weights.
    Static shapes and only elementwise ops and reductions, so it is cheap and compiles with
    XLA (an exact solution needs sorted magnitudes: tf.sort and searchsorted cost ~100× a TWN
    quantizer step on CPU, and XLA lowers searchsorted to an n×m comparison matrix).
    Measured gap to the exact optimum (enumeration of all 2n + 1 breakpoints, float64), L = 2,
    500 random kernels of 9–3,136 weights (normal, uniform, Laplace, clipped, bimodal):
    median 0.0 %, 90th percentile 0.45 %, 99th 2.5 %, worst 9 % (a 150-weight Laplace kernel,
    sampled with stride 2) — `python benchmarks/train_step.py --fit-quality`. Cost on CPU for a
    3136×256 kernel: 2–3.5× a TWN quantizer call (`... --quantizers`).

    Forward only (no gradient rule attached). 16-bit inputs are fitted in float32 and the
    results cast back.
    """
    x = tf.convert_to_tensor(x)
    dtype = x.dtype
    x = tf.cast(x, _accumulation_dtype(dtype))
    per_channel = per_channel and len(x.shape) > 1
    columns = tf.reshape(x, (-1, x.shape[-1]) if per_channel else (-1, 1))
    magnitudes = tf.abs(columns)  # (n, C)
    n = columns.shape[0]
    stride = 1 if n is None or n <= sample else -(-n // sample)
    sampled = magnitudes[::stride]  # (m, C)
    grid = np.arange(1, candidates + 1, dtype=np.float32)[:, None, None] * (2.0 / candidates)
    alphas = grid * tf.reduce_max(magnitudes, axis=0)  # (G, 1, C)
    levels = tf.clip_by_value(tf.round(tf.math.divide_no_nan(sampled, alphas)), 0.0, max_level)
    dot = tf.reduce_sum(sampled * levels, axis=1)  # (G, C)
    norm = tf.reduce_sum(levels * levels, axis=1)
    best = tf.argmax(tf.math.divide_no_nan(dot * dot, norm), axis=0)  # (C,)
    scale = tf.gather(tf.transpose(alphas[:, 0, :]), best[:, None], batch_dims=1)[:, 0]
    if not per_channel:
        scale = scale[0]
    for _ in range(max(refine_steps, 1)):
        levels = tf.clip_by_value(tf.round(tf.math.divide_no_nan(x, scale)), -max_level, max_level)
        scale = least_squares_scale(x, levels, per_channel)
    return tf.cast(levels, dtype), tf.cast(scale, dtype)


# --------------------------------------------------------------------------------------------
# Fixed-point inputs as bit planes (BinaryNet §2.6, QNN §3)
# --------------------------------------------------------------------------------------------


def to_bit_planes(levels: tf.Tensor, bits: int, signed: bool = False) -> tf.Tensor:
    r"""Split non-negative integer levels (float dtype, values 0..2^bits − 1) into bit planes.

    Returns a tensor with a new last axis of size `bits`, least significant plane first, so
    that levels = Σ_i 2^i · plane_i (see `from_bit_planes`). With `signed=True` the planes are
    s_i = 2·b_i − 1 ∈ {−1, +1}, the form a binary (XNOR/popcount) kernel consumes; then
    levels = Σ_i 2^i · (s_i + 1)/2.
    """
    levels = tf.convert_to_tensor(levels)
    as_int = tf.cast(tf.round(levels), tf.int32)
    shifts = tf.range(bits, dtype=tf.int32)
    planes = tf.cast(
        tf.bitwise.bitwise_and(tf.bitwise.right_shift(as_int[..., None], shifts), 1), levels.dtype
    )
    return 2.0 * planes - 1.0 if signed else planes


def from_bit_planes(planes: tf.Tensor, signed: bool = False) -> tf.Tensor:
    """Inverse of `to_bit_planes`: Σ_i 2^i · b_i over the last axis."""
    planes = tf.convert_to_tensor(planes)
    if signed:
        planes = (planes + 1.0) / 2.0
    weights = tf.pow(2.0, tf.range(planes.shape[-1], dtype=planes.dtype))
    return tf.reduce_sum(planes * weights, axis=-1)


def bit_plane_sum(op: Callable[[tf.Tensor], tf.Tensor], levels: tf.Tensor, bits: int) -> tf.Tensor:
    r"""Evaluate a linear op on integer inputs plane by plane: Σ_n 2^(n−1) · op(x^n).

    This is how BinaryNet computes its first layer on 8-bit inputs with only binary products,
    s = Σ_{n=1}^{8} 2^{n−1} (x^n · w_b) (Courbariaux, Hubara et al. 2016, eq. 7), and QNN
    generalises it to any k-bit activation (Hubara et al. 2016, §3). For a linear `op` the
    result equals op(levels) exactly (up to float rounding).
    """
    planes = to_bit_planes(levels, bits)
    return tf.add_n([2.0**i * op(planes[..., i]) for i in range(bits)])


def check_bits(value, name: str, low: int = 1, high: int = 32) -> int:
    """Validate a bit width: an integer in [low, high] (`kbnn._validation.check_int`)."""
    return check_int(value, name, low=low, high=high)


def max_level(bits: int) -> int:
    """The largest level of a k-bit unsigned grid, 2^k − 1 (DoReFa's n, Zhou et al. 2016)."""
    return (1 << int(bits)) - 1
