"""kbnn.math against independent numpy formulas (forward and gradient)."""

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import math as kmath

import numpy as np
import pytest
import tensorflow as tf


def _grad(fn, x):
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
    return y.numpy(), tape.gradient(y, x).numpy()


def test_ap2_matches_numpy_power_of_two():
    x = np.array([-5.0, -0.3, 0.0, 0.7, 1.0, 3.0, 1e-3], np.float32)
    expected = np.sign(x) * 2.0 ** np.round(np.log2(np.where(x == 0, 1, np.abs(x))))
    y, dy = _grad(kmath.ap2, x)
    np.testing.assert_allclose(y, expected)
    np.testing.assert_array_equal(dy, np.ones_like(x))


@pytest.mark.parametrize("clip_value", [1.0, 0.5, None])
def test_ste_forward_and_clipped_gradient(clip_value):
    x = np.array([-2.0, -1.0, -0.4, 0.0, 0.5, 1.0, 1.5], np.float32)
    y, dy = _grad(lambda t: kmath.ste(t, lambda u: tf.round(3 * u), clip_value), x)
    np.testing.assert_array_equal(y, np.round(3 * x))
    mask = np.ones_like(x) if clip_value is None else (np.abs(x) <= clip_value).astype(np.float32)
    np.testing.assert_array_equal(dy, mask)


def test_mean_abs_per_channel_and_per_tensor():
    w = np.random.default_rng(0).normal(size=(3, 3, 2, 4)).astype(np.float32)
    np.testing.assert_allclose(kmath.mean_abs(w), np.abs(w).mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(kmath.mean_abs(w, per_channel=False), np.abs(w).mean(), rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("shape", [(100_003,), (50_000, 2, 3)])
def test_mean_abs_of_16_bit_tensors_above_the_float16_range(dtype, shape):
    """More than 65,504 elements per reduction: a 16-bit reduce_mean gives NaN or 0."""
    w = tf.cast(np.random.default_rng(1).normal(size=shape), dtype)
    exact = np.abs(w.numpy().astype(np.float64))  # the 16-bit values themselves, in float64
    channel_axes = tuple(range(len(shape) - 1)) or None  # a vector is one "channel"
    for per_channel, axes in ((True, channel_axes), (False, None)):
        got = kmath.mean_abs(w, per_channel=per_channel)
        assert got.dtype == w.dtype
        # rounding the exact mean to 16 bits: ≤ half an ulp, 2^-11 (float16) / 2^-8 (bfloat16)
        np.testing.assert_allclose(
            got.numpy().astype(np.float64),
            exact.mean(axis=axes),
            rtol=2.0**-10 if dtype == "float16" else 2.0**-7,
        )


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_least_squares_scale_and_level_fit_of_16_bit_tensors(dtype):
    """Σ x·t and Σ t² over 100,000 weights overflow float16; the scales stay the float64 ones."""
    rng = np.random.default_rng(2)
    w = tf.cast(rng.normal(size=(100_000, 2)) * 0.5, dtype)
    w64 = w.numpy().astype(np.float64)
    rtol = 2.0**-10 if dtype == "float16" else 2.0**-7
    t = np.sign(w64)
    alpha = kmath.least_squares_scale(w, t)
    assert alpha.dtype == w.dtype
    np.testing.assert_allclose(
        alpha.numpy().astype(np.float64), (w64 * t).sum(0) / (t * t).sum(0), rtol=rtol
    )
    alpha = kmath.least_squares_scale(w, t, per_channel=False)
    np.testing.assert_allclose(float(alpha.numpy()), (w64 * t).sum() / (t * t).sum(), rtol=rtol)

    levels, alpha = kmath.fit_symmetric_levels(w, 2)
    assert levels.dtype == alpha.dtype == w.dtype
    levels = levels.numpy().astype(np.float64)
    assert set(np.unique(levels)) == {-2.0, -1.0, 0.0, 1.0, 2.0}
    np.testing.assert_allclose(
        alpha.numpy().astype(np.float64),
        (w64 * levels).sum(0) / (levels * levels).sum(0),
        rtol=rtol,
    )
    # the same levels as the float32 fit of the same values
    levels32, _ = kmath.fit_symmetric_levels(tf.cast(w, tf.float32), 2)
    np.testing.assert_array_equal(levels, levels32.numpy())


@pytest.mark.parametrize("k_bit", [1, 2, 3, 8])
def test_quantize_k_grid(k_bit):
    x = np.linspace(0, 1, 101, dtype=np.float32)
    n = 2**k_bit - 1
    q = kmath.quantize_k(x, k_bit).numpy()
    np.testing.assert_allclose(q, np.round(x * n) / n, atol=1e-7)
    assert len(np.unique(q)) == min(n + 1, len(x))


def _numpy_quantize_gradient(dr, k_bit, noise):
    n = 2**k_bit - 1
    m = np.abs(dr).reshape(dr.shape[0], -1).max(axis=1).reshape((-1,) + (1,) * (dr.ndim - 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.where(m > 0, dr / (2 * m), 0.0) + 0.5 + noise
    return 2 * m * (np.round(np.clip(scaled, 0, 1) * n) / n - 0.5)


@pytest.mark.parametrize("k_bit", [2, 4, 6])
def test_quantize_gradient_matches_numpy(k_bit):
    rng = np.random.default_rng(k_bit)
    dr = rng.normal(size=(3, 4, 5)).astype(np.float32) * np.array([1e-3, 1.0, 0.0])[:, None, None]
    dr = dr.astype(np.float32)
    width = kmath.gradient_noise_width(k_bit)
    noise = rng.uniform(-width / 2, width / 2, size=dr.shape).astype(np.float32)
    got = kmath.quantize_gradient(dr, k_bit, noise).numpy()
    np.testing.assert_allclose(got, _numpy_quantize_gradient(dr, k_bit, noise), atol=1e-6)
    np.testing.assert_array_equal(got[2], 0.0)  # an all-zero example stays zero
    # each example on its own grid 2m(j/n - 1/2)
    n = 2**k_bit - 1
    for example, grad in zip(dr[:2], got[:2], strict=True):
        m = np.abs(example).max()
        j = (grad / (2 * m) + 0.5) * n
        np.testing.assert_allclose(j, np.round(j), atol=1e-3)


def test_ternarize_and_least_squares_scale():
    w = np.array([[0.9, -0.1], [-0.5, 0.05], [0.2, -0.8]], np.float32)
    delta = np.array([0.3, 0.3], np.float32)
    t = kmath.ternarize(w, delta).numpy()
    np.testing.assert_array_equal(t, [[1, 0], [-1, 0], [0, -1]])
    alpha = kmath.least_squares_scale(w, t).numpy()
    np.testing.assert_allclose(alpha, [(0.9 + 0.5) / 2, 0.8], rtol=1e-6)
    # all-zero levels: scale 0, not NaN
    np.testing.assert_array_equal(kmath.least_squares_scale(w, np.zeros_like(w)).numpy(), 0.0)


@pytest.mark.parametrize("signed", [False, True])
def test_bit_planes_round_trip(signed):
    levels = np.arange(256, dtype=np.float32).reshape(16, 16)
    planes = kmath.to_bit_planes(levels, 8, signed=signed).numpy()
    assert planes.shape == (16, 16, 8)
    expected_bits = (levels.astype(np.int64)[..., None] >> np.arange(8)) & 1
    np.testing.assert_array_equal(planes, 2 * expected_bits - 1 if signed else expected_bits)
    np.testing.assert_array_equal(kmath.from_bit_planes(planes, signed=signed).numpy(), levels)


def test_bit_plane_sum_equals_direct_first_layer_conv():
    """BinaryNet eq. 7: conv of 8-bit ints = Σ 2^(n-1) · conv(bit plane n, binary W)."""
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, size=(2, 6, 6, 1)).astype(np.float32)
    w_b = np.where(rng.normal(size=(3, 3, 1, 4)) >= 0, 1.0, -1.0).astype(np.float32)

    def conv(x):
        return tf.nn.conv2d(x, w_b, 1, "VALID")

    direct = conv(pixels).numpy()
    np.testing.assert_allclose(kmath.bit_plane_sum(conv, pixels, 8).numpy(), direct, atol=1e-3)
    # numpy reference of the direct conv (independent of TF)
    ref = np.zeros((2, 4, 4, 4), np.float32)
    for i in range(4):
        for j in range(4):
            ref[:, i, j, :] = np.tensordot(pixels[:, i : i + 3, j : j + 3, :], w_b, axes=3)
    np.testing.assert_allclose(direct, ref, atol=1e-3)


def test_check_bits_accepts_numpy_integers():
    assert kmath.check_bits(np.int64(4), "k_bit") == 4


@pytest.mark.parametrize("bad", [0, 33, 2.5, True, "4", None])
def test_check_bits_names_the_argument(bad):
    with pytest.raises(ValueError, match="bit_w"):
        kmath.check_bits(bad, "bit_w")


def _brute_force_error(w, max_level):
    """min over a fine α grid of ‖w − α·nearest_levels(w/α)‖² (independent of kbnn)."""
    grid = np.linspace(1e-3, 2.5, 20000)[:, None] * np.abs(w).max()
    nearest = np.clip(np.round(w / grid), -max_level, max_level)
    return np.min(np.sum((w - grid * nearest) ** 2, axis=1))


def _lloyd_error(w, max_level, steps=10):
    """Plain alternating assignment/α steps from α = E|w| (what kbnn improves on)."""
    alpha = np.abs(w).mean()
    for _ in range(steps):
        t = np.clip(np.round(w / alpha), -max_level, max_level)
        alpha = w @ t / (t @ t)
    t = np.clip(np.round(w / alpha), -max_level, max_level)
    return np.sum((w - alpha * t) ** 2)


@pytest.mark.parametrize("max_level", [1, 2, 3])
@pytest.mark.parametrize("size", [1, 5, 40, 300])
def test_fit_symmetric_levels_near_least_squares_optimum(max_level, size):
    rng = np.random.default_rng(size * 10 + max_level)
    w = rng.laplace(size=(size, 2)).astype(np.float32)
    levels, alpha = (t.numpy() for t in kmath.fit_symmetric_levels(w, max_level))
    assert set(np.unique(levels)) <= set(range(-max_level, max_level + 1))
    for c in range(2):
        err = np.sum((w[:, c] - alpha[c] * levels[:, c]) ** 2)
        # all weights scored when size ≤ 128; above, a strided sample (documented gap ≤ 9 %)
        tolerance = 1.02 if size <= 128 else 1.10
        assert err <= _brute_force_error(w[:, c], max_level) * tolerance + 1e-9
        # α is the least-squares scale of the returned levels
        lc = levels[:, c]
        np.testing.assert_allclose(alpha[c], w[:, c] @ lc / max(lc @ lc, 1e-12), rtol=1e-5)


def test_fit_symmetric_levels_escapes_lloyds_local_optima_on_clipped_weights():
    """Latent weights clipped to [−1, 1] pile up at ±1; alternating steps alone get stuck."""
    w = np.clip(np.random.default_rng(0).normal(size=(100, 4)) * 2.0, -1, 1).astype(np.float32)
    levels, alpha = (t.numpy() for t in kmath.fit_symmetric_levels(w, 2))
    for c in range(4):
        brute = _brute_force_error(w[:, c].astype(np.float64), 2)
        assert _lloyd_error(w[:, c].astype(np.float64), 2) > 1.5 * brute
        assert np.sum((w[:, c] - alpha[c] * levels[:, c]) ** 2) <= 1.001 * brute
