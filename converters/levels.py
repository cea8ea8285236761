r"""What a layer's quantizers produce, and binary-plane decompositions of integer levels.

LCE's binary convolution computes bconv(x, w) for x ∈ {−1, +1} and a kernel that is ±α per
output channel. Everything kbnn lowers is rewritten into sums of such convolutions, using two
exact identities (all arithmetic on integers, so no approximation is involved):

Weights. An integer level tensor L with |L| ≤ n is a weighted sum of ±1 planes b_i,
L = Σ_i c_i·b_i (`weight_planes`):

- all levels odd (DoReFa k-bit weights, n = 2^k − 1, and binary weights): c_i = 2^i for
  i < m = ⌈log₂(n + 1)⌉, with U = (L + 2^m − 1)/2 ∈ [0, 2^m − 1] and b_i = 2·bit_i(U) − 1;
- otherwise (ternary {−1, 0, 1}, five-level {−2..2}): one plane with c = ½ and
  b = sign(L) (sign(0) = +1) takes L to the half-integers r = L − b/2, |r| ≤ n − ½, and
  m = max(1, ⌈log₂ 2n⌉) planes with c_i = 2^(i−1) represent r as above.

Ternary weights need 2 planes (t = (b₁ + b₂)/2 with b₁ = sign(t + ½), b₂ = sign(t − ½)),
five-level weights 3 planes (not 4: t = b₁ + (b₂ + b₃)/2), k-bit DoReFa weights k planes —
always the quantizer's bit count, which is what keeps the flatbuffer at the bit-count limit.

Activations. Unsigned k-bit activations a = Q/n, Q = Σ_j 2^j·u_j, u_j ∈ {0, 1}, are handled
in `kbnn.converters.layers.ActivationBitPlanes` with s_j = 1 − 2·u_j ∈ {−1, +1}.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kbnn import quantizers as kq
from kbnn.kernels import kernel_quantizer, kernel_variable, quantized_kernel
from kbnn.math import max_level

import larq as lq
import numpy as np
import tensorflow as tf

#: Input quantizers whose inference forward is sign(x) with sign(0) = +1, which LCE lowers to
#: its bit-packing `LceQuantize` (larq's `ste_sign`, `approx_sign`, `swish_sign`; kbnn's
#: stochastic sign is `ste_sign` at inference).
SIGN_QUANTIZER_CLASSES = (
    lq.quantizers.SteSign,
    lq.quantizers.ApproxSign,
    lq.quantizers.SwishSign,
    kq.StochasticSign,
)
SIGN_QUANTIZER_FUNCTIONS = (
    lq.quantizers.ste_sign,
    lq.quantizers.approx_sign,
    lq.quantizers.swish_sign,
)

#: Largest |level| accepted as "discrete"; beyond it a kernel is treated as float.
MAX_LEVEL = 255

_PROBE = np.concatenate(
    [np.linspace(-2.0, 3.0, 2001), [0.0, 0.5, 1.0, -1e-7, 1e-7, 0.25, 0.75]]
).astype(np.float32)


def quantizer_name(quantizer) -> str:
    if quantizer is None:
        return "none"
    name = getattr(quantizer, "__name__", None) or type(quantizer).__name__
    precision = getattr(quantizer, "precision", None)
    if isinstance(quantizer, lq.quantizers.DoReFa) or (
        precision and precision > 1 and "bit" not in name
    ):
        return f"{name}({precision}-bit)"
    return name


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputEncoding:
    """What a layer sees after its input quantizer.

    kind: "float" (no quantizer), "sign" (±1), "unsigned" (levels i/n, i = 0..n, n = 2^bits − 1),
    "signed" (levels (2i − n)/n) or "unknown" (a quantizer kbnn cannot decompose exactly).
    """

    kind: str
    bits: int
    quantizer: str

    @property
    def n(self) -> int:
        return max_level(self.bits)

    def describe(self) -> str:
        return {
            "float": "float inputs",
            "sign": "±1 inputs",
            "unsigned": f"{self.bits}-bit inputs",
            "signed": f"{self.bits}-bit signed fixed-point inputs",
            "unknown": f"inputs quantized by {self.quantizer}",
        }[self.kind]


def is_sign_quantizer(quantizer) -> bool:
    return isinstance(quantizer, SIGN_QUANTIZER_CLASSES) or quantizer in SIGN_QUANTIZER_FUNCTIONS


def input_encoding(layer) -> InputEncoding:
    """Classify `layer.input_quantizer` (layers without one see float inputs)."""
    quantizer = getattr(layer, "input_quantizer", None)
    name = quantizer_name(quantizer)
    if quantizer is None:
        return InputEncoding("float", 32, name)
    if is_sign_quantizer(quantizer):
        return InputEncoding("sign", 1, name)
    bits = unsigned_bits(quantizer)
    if bits is not None:
        return InputEncoding("unsigned", bits, name)
    bits = signed_bits(quantizer)
    if bits is not None:
        return InputEncoding("signed", bits, name)
    return InputEncoding("unknown", getattr(quantizer, "precision", None) or 32, name)


def is_ternary_quantizer(quantizer) -> bool:
    """True when `quantizer` maps the probe grid onto exactly {−a, 0, +a} (e.g. larq's
    SteTern): LCE's converter lowers such input quantizers as sign, with sign(0) = +1."""
    if quantizer is None or is_sign_quantizer(quantizer):
        return False
    try:
        outputs = np.asarray(quantizer(tf.constant(_PROBE)), dtype=np.float64)
    except Exception:  # a quantizer that cannot run eagerly on a vector is not classified
        return False
    values = np.unique(np.round(outputs, 6))
    return values.size == 3 and values[1] == 0.0 and np.isclose(values[0], -values[2])


def unsigned_bits(quantizer) -> int | None:
    """k when `quantizer` maps every input to one of i/n, i = 0..n, n = 2^k − 1 (checked on a
    probe grid that covers both ends, the rounding midpoints and values outside [0, 1])."""
    return _grid_bits(quantizer, signed=False)


def signed_bits(quantizer) -> int | None:
    """k when `quantizer` maps every input to one of (2i − n)/n, i = 0..n: the unsigned grid
    on [−1, 1] (a signed `FixedPointInput`)."""
    return _grid_bits(quantizer, signed=True)


def _grid_bits(quantizer, signed: bool) -> int | None:
    precision = getattr(quantizer, "precision", None)
    if not isinstance(precision, int) or not 1 <= precision <= 16:
        return None
    if signed and not hasattr(quantizer, "integer_levels"):
        return None  # Q is read from `integer_levels`, not derived from the outputs
    n = 2**precision - 1
    try:
        outputs = np.asarray(quantizer(tf.constant(_PROBE)), dtype=np.float64)
    except Exception:  # a quantizer that cannot run eagerly on a vector is not decomposable
        return None
    levels = (outputs * n + n) / 2 if signed else outputs * n
    if outputs.shape != _PROBE.shape or not np.allclose(levels, np.round(levels), atol=1e-4):
        return None
    levels = np.round(levels)
    if levels.min() != 0 or levels.max() != n:
        return None
    if hasattr(quantizer, "integer_levels"):
        integer, _ = quantizer.integer_levels(tf.constant(_PROBE))
        if not np.array_equal(np.asarray(integer), levels):
            return None
    return precision


def integer_activation_levels(quantizer, x: tf.Tensor, bits: int) -> tf.Tensor:
    """Q with quantizer(x) = Q/n as a float tensor of integers 0..n (graph-friendly)."""
    if hasattr(quantizer, "integer_levels"):
        return quantizer.integer_levels(x)[0]
    return tf.round(quantizer(x) * float(max_level(bits)))


# ----------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------


@dataclass
class KernelLevels:
    """q(W) = levels · scale, levels integer-valued (kernel shape), scale per output channel."""

    levels: np.ndarray
    scale: np.ndarray
    bits: int

    @property
    def max_level(self) -> int:
        return int(np.abs(self.levels).max()) if self.levels.size else 0

    def quantized(self) -> np.ndarray:
        return (self.levels * self.scale).astype(np.float32)


def kernel_levels(layer) -> KernelLevels | None:
    """Integer levels of `layer`'s quantized kernel, or None for float / undecomposable kernels.

    Uses the quantizer's `integer_levels` when it has one (kbnn quantizers); otherwise the
    levels are recovered from q(W) (larq's sign, magnitude-aware sign, ternary, DoReFa) and
    must reproduce it exactly. Kernels without a quantizer count when their values already
    are ±α per output channel (what the passes emit).
    """
    kernel = kernel_variable(layer, required=False)
    if kernel is None:
        return None
    quantizer = kernel_quantizer(layer)
    quantized = quantized_kernel(layer)
    channels = quantized.shape[-1]
    if quantizer is not None and hasattr(quantizer, "integer_levels"):
        levels, scale = quantizer.integer_levels(tf.convert_to_tensor(kernel))
        levels = np.asarray(levels, np.float32)
        scale = _per_channel(np.asarray(scale, np.float32), channels)
        if scale is not None and _reproduces(levels, scale, quantized):
            return KernelLevels(levels, scale, _bits(quantizer, levels))
    found = infer_levels(quantized)
    if found is None:
        return None
    levels, scale = found
    if quantizer is None and not _is_binary(levels):
        return None  # a float kernel that happens to lie on a grid stays a float kernel
    return KernelLevels(levels, scale, _bits(quantizer, levels))


def _reproduces(levels: np.ndarray, scale: np.ndarray, quantized: np.ndarray) -> bool:
    """levels·scale ≈ q(W) (rtol 1e-6, atol 1e-7), checked block by block."""
    if levels.shape != quantized.shape:
        return False
    channels = quantized.shape[-1]
    expected = quantized.reshape(-1, channels)
    for start, block in _blocks(levels.reshape(-1, channels)):
        want = expected[start : start + len(block)]
        if not np.allclose(block * scale, want, rtol=1e-6, atol=1e-7):
            return False
    return True


def infer_levels(quantized: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(levels, per-channel scale) with quantized = levels·scale and integer |levels| ≤ 255.

    Tries one scale for the whole tensor (DoReFa) and then one per output channel (XNOR, TWN),
    each from the smallest non-zero magnitude divided by 1..8 (a channel may lack level ±1).
    The checks are element-wise, so they run block by block (cache-sized, in float64) and stop
    at the first block that fails: a wrong candidate costs one block, not the whole kernel.
    """
    values = np.asarray(quantized)
    if not np.issubdtype(values.dtype, np.floating):
        values = values.astype(np.float64)
    channels = values.shape[-1]
    flat = values.reshape(-1, channels)
    if flat.shape[0] > 2:
        magnitudes = channel_magnitudes(flat)
        if magnitudes is not None:
            return _signed_levels(flat, magnitudes, values.shape)
    smallest, has_nonzero = _smallest_magnitudes(flat)
    candidates = []
    if has_nonzero.any():
        candidates.append(np.full(channels, smallest[has_nonzero].min()))
    candidates.append(np.where(has_nonzero, smallest, 1.0))  # 1.0 for an all-zero channel
    for base in candidates:
        for divisor in range(1, 9):
            scale = base / divisor
            found = _levels_at(flat, scale)
            if found is _TOO_LARGE:
                break
            if found is not None:
                return found.reshape(values.shape), scale.astype(np.float32)
    return None


def channel_magnitudes(kernel: np.ndarray) -> np.ndarray | None:
    """α with |kernel[..., c]| = α_c everywhere (the last axis is the output channel: XNOR and
    sign kernels), or None."""
    magnitudes = np.abs(kernel)
    alpha = magnitudes.reshape(-1, kernel.shape[-1]).max(axis=0)
    return alpha if np.array_equal(magnitudes, np.broadcast_to(alpha, kernel.shape)) else None


def _signed_levels(flat: np.ndarray, alpha: np.ndarray, shape) -> tuple | None:
    """`infer_levels` of a kernel whose channel c holds only ±α_c, from the two rows ±α: each
    check of the search is element-wise and symmetric in the sign (|·|, round half to even),
    and every block of rows holds ±α_c in each channel, so each candidate scale passes or
    fails on ±α exactly as on the whole kernel. Then level = sign(q)·level(α_c)."""
    found = infer_levels(np.stack([alpha, -alpha]))
    if found is None:
        return None
    levels, scale = found
    signed = np.sign(flat).astype(np.float32) * levels[0]
    return signed.reshape(shape), scale


#: Elements per block of the element-wise checks (2 MB in float64).
_BLOCK_ELEMENTS = 1 << 18
_TOO_LARGE = object()


def _blocks(flat: np.ndarray):
    """(start row, rows) blocks of a (rows, channels) array, about _BLOCK_ELEMENTS each."""
    step = max(1, _BLOCK_ELEMENTS // max(flat.shape[1], 1))
    for start in range(0, flat.shape[0], step):
        yield start, flat[start : start + step]


def _smallest_magnitudes(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per channel: the smallest non-zero |value| (float64; exact, as |·| and min are), and
    whether the channel has one."""
    smallest = np.full(flat.shape[1], np.inf)
    has_nonzero = np.zeros(flat.shape[1], bool)
    for _, block in _blocks(flat):
        magnitude = np.abs(block)
        nonzero = magnitude > 0
        block_min = np.where(nonzero, magnitude, np.inf).min(axis=0, initial=np.inf)
        smallest = np.minimum(smallest, block_min.astype(np.float64))
        has_nonzero |= nonzero.any(axis=0)
    return smallest, has_nonzero


def _levels_at(flat: np.ndarray, scale: np.ndarray):
    """round(q / scale) (float32) when it is integer-valued (to 1e-4) and reproduces q;
    `_TOO_LARGE` when some |level| exceeds MAX_LEVEL; else None. A block that fails ends the
    search for this scale: None where a later block would say `_TOO_LARGE` only makes
    `infer_levels` try a smaller scale, whose levels are larger still and fail too."""
    result = np.empty(flat.shape, np.float32)
    for start, block in _blocks(flat):
        q = block.astype(np.float64)
        levels = q / scale
        rounded = np.round(levels)
        if np.abs(rounded).max(initial=0) > MAX_LEVEL:
            return _TOO_LARGE
        if not (
            np.allclose(levels, rounded, atol=1e-4)
            and np.allclose(rounded * scale, q, rtol=1e-6, atol=1e-9)
        ):
            return None
        result[start : start + len(block)] = rounded
    return result


def _bits(quantizer, levels: np.ndarray) -> int:
    precision = getattr(quantizer, "precision", None)
    if isinstance(precision, int) and 1 <= precision <= 32:
        return precision
    if _is_binary(levels):
        return 1
    distinct = np.unique(levels).size
    return max(1, math.ceil(math.log2(max(distinct, 2))))


def _per_channel(scale: np.ndarray, channels: int) -> np.ndarray | None:
    if scale.size == 1:
        return np.full(channels, float(scale.reshape(-1)[0]), np.float32)
    if scale.size == channels:
        return scale.reshape(channels)
    return None


# ----------------------------------------------------------------------------------------------
# Binary planes
# ----------------------------------------------------------------------------------------------


@dataclass
class WeightPlanes:
    """levels = Σ_i coefficients[i] · planes[i], every plane ±1 (see the module docstring)."""

    coefficients: list[float]
    planes: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.planes)

    def reconstruct(self) -> np.ndarray:
        return sum(c * p for c, p in zip(self.coefficients, self.planes, strict=True))


def plane_count(levels: np.ndarray) -> int:
    """`len(weight_planes(levels))`, without building the planes."""
    if _is_binary(levels):
        return 1
    integer = _integer_levels(levels)
    n = int(np.abs(integer).max(initial=0))
    if _all_odd(integer, n):
        return _unsigned_bits(n + 1)
    return 1 + (_unsigned_bits(2 * n) if n > 0 else 1)


def weight_planes(levels: np.ndarray) -> WeightPlanes:
    """Decompose integer `levels` into the fewest ±1 planes of the schemes above (exact)."""
    if _is_binary(levels):  # the common case, one plane: what the general path gives, faster
        return WeightPlanes([1.0], [np.asarray(levels, np.float32)])
    integer = _integer_levels(levels)
    n = int(np.abs(integer).max(initial=0))
    coefficients: list[float] = []
    planes: list[np.ndarray] = []
    if _all_odd(integer, n):
        m = _unsigned_bits(n + 1)
        unsigned = (integer + 2**m - 1) // 2
        for i in range(m):
            coefficients.append(float(2**i))
            planes.append(_bit_plane(unsigned, i))
    else:
        extra = 1 - 2 * (integer < 0).astype(integer.dtype)  # sign(L), sign(0) = +1
        coefficients.append(0.5)
        planes.append(extra.astype(np.float32))
        m = _unsigned_bits(2 * n) if n > 0 else 1
        # r = L − extra/2 is a half-integer; U = r + (2^m − 1)/2 is an integer in [0, 2^m − 1].
        unsigned = (2 * integer - extra + 2**m - 1) // 2
        for i in range(m):
            coefficients.append(float(2 ** (i - 1)))
            planes.append(_bit_plane(unsigned, i))
    result = WeightPlanes(coefficients, planes)
    if not _reconstructs(result, integer):  # pragma: no cover - a bug guard
        raise AssertionError("binary-plane decomposition is not exact")
    return result


def _reconstructs(planes: WeightPlanes, integer: np.ndarray) -> bool:
    """`planes.reconstruct() == integer`, block by block (the same float32 sums)."""
    flat = [plane.reshape(-1) for plane in planes.planes]
    expected = integer.reshape(-1)
    for start in range(0, expected.size, _BLOCK_ELEMENTS):
        block = slice(start, start + _BLOCK_ELEMENTS)
        total = sum(c * p[block] for c, p in zip(planes.coefficients, flat, strict=True))
        if not np.array_equal(total, expected[block]):
            return False
    return True


def _is_binary(levels) -> bool:
    """Every level is ±1 (one plane, coefficient 1)."""
    levels = np.asarray(levels)
    return levels.size > 0 and bool(np.all(np.abs(levels) == 1))


def _integer_levels(levels: np.ndarray) -> np.ndarray:
    """`levels` as integers: int32 when |L| < 2^29 (room for 2·L + 2^m), else int64."""
    levels = np.asarray(levels)
    rounded = np.round(levels)
    if not np.array_equal(levels, rounded):
        raise ValueError("`levels` must be integer-valued.")
    small = rounded.size == 0 or np.abs(rounded).max() < 2**29
    return rounded.astype(np.int32 if small else np.int64)


def _all_odd(integer: np.ndarray, n: int) -> bool:
    return n > 0 and bool(np.all(integer & 1))


def _unsigned_bits(count: int) -> int:
    """m = max(1, ⌈log₂ count⌉): bits of an unsigned integer with `count` values."""
    return max(1, math.ceil(math.log2(count)))


def _bit_plane(unsigned: np.ndarray, bit: int) -> np.ndarray:
    return (2 * ((unsigned >> bit) & 1) - 1).astype(np.float32)
