"""kbnn.converters.levels: quantizer classification and exact binary-plane decompositions."""

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import quantizers as kq
from kbnn.converters import levels
from kbnn.converters.layers import (
    ActivationBitPlanes,
    CombineBitPlanes,
    DequantizedActivation,
)

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# ------------------------------------------------------------------------------ weight planes


@pytest.mark.parametrize(
    ("level_set", "planes"),
    [
        ((-1, 1), 1),  # binary
        ((-1, 0, 1), 2),  # ternary: t = (b1 + b2)/2
        ((-2, -1, 0, 1, 2), 3),  # five-level: 3 planes, not 4
        ((-3, -1, 1, 3), 2),  # DoReFa 2-bit weights (odd levels, n = 3)
        (tuple(range(-15, 16, 2)), 4),  # DoReFa 4-bit weights
    ],
)
def test_weight_planes_count_equals_bit_count(level_set, planes):
    grid = np.array(level_set, dtype=np.float32)
    decomposition = levels.weight_planes(grid)
    assert len(decomposition) == planes
    np.testing.assert_array_equal(decomposition.reconstruct(), grid)
    for plane in decomposition.planes:
        assert set(np.unique(plane)) <= {-1.0, 1.0}


def test_ternary_planes_are_the_hand_checked_ones():
    t = np.array([-1.0, 0.0, 1.0])
    decomposition = levels.weight_planes(t)
    assert decomposition.coefficients == [0.5, 0.5]
    # b1 = sign(t + 1/2), b2 = sign(t - 1/2) up to the order of the planes.
    expected = {tuple(np.sign(t + 0.5)), tuple(np.sign(t - 0.5))}
    assert {tuple(p) for p in decomposition.planes} == expected


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 40),
    odd=st.booleans(),
    data=st.data(),
)
def test_weight_planes_exact_for_any_integer_levels(n, odd, data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=5))
    if odd:
        n = 2 * (n // 2) + 1
        values = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(-n, n)))
        values = np.where(values % 2 == 0, values + np.where(values < n, 1, -1), values)
    else:
        values = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(-n, n)))
    values = values.astype(np.float32)
    decomposition = levels.weight_planes(values)
    np.testing.assert_array_equal(decomposition.reconstruct(), values)
    top = int(np.abs(values).max(initial=0))
    if top and np.all(values.astype(int) % 2):
        assert len(decomposition) == max(1, int(np.ceil(np.log2(top + 1))))
    else:
        assert len(decomposition) == 1 + (max(1, int(np.ceil(np.log2(2 * top)))) if top else 1)


def test_weight_planes_rejects_fractions():
    with pytest.raises(ValueError, match="integer"):
        levels.weight_planes(np.array([0.5, 1.0]))


# ------------------------------------------------------------------------------ kernel levels


def _layer(kernel_quantizer, kernel, input_quantizer="ste_sign"):
    layer = lq.layers.QuantConv2D(
        kernel.shape[-1],
        kernel.shape[:2],
        input_quantizer=input_quantizer,
        kernel_quantizer=kernel_quantizer,
        use_bias=False,
    )
    layer.build((None, 6, 6, kernel.shape[2]))
    layer.kernel.assign(kernel)
    return layer


@pytest.mark.parametrize(
    ("quantizer", "bits", "max_level"),
    [
        ("ste_sign", 1, 1),
        (kq.XnorWeight(), 1, 1),
        (kq.TernaryWeight(), 2, 1),
        (kq.FiveLevelWeight(), 3, 2),
        (kq.DoReFaWeight(1), 1, 1),
        (kq.DoReFaWeight(2), 2, 3),
        (kq.DoReFaWeight(4), 4, 15),
        (lq.quantizers.MagnitudeAwareSign(), 1, 1),
        (lq.quantizers.SteTern(), 2, 1),
        (lq.quantizers.DoReFa(k_bit=3, mode="weights"), 3, 7),
    ],
)
def test_kernel_levels_reproduce_the_quantized_kernel(quantizer, bits, max_level):
    kernel = np.random.default_rng(0).uniform(-1, 1, (3, 3, 8, 6)).astype(np.float32)
    layer = _layer(quantizer, kernel)
    found = levels.kernel_levels(layer)
    assert found is not None
    assert found.bits == bits
    assert found.max_level <= max_level
    np.testing.assert_array_equal(found.levels, np.round(found.levels))
    quantized = np.asarray(layer.kernel_quantizer(tf.constant(kernel)))
    np.testing.assert_allclose(found.quantized(), quantized, rtol=1e-6, atol=1e-7)


def test_float_kernel_has_no_levels():
    kernel = np.random.default_rng(1).normal(size=(3, 3, 4, 4)).astype(np.float32)
    assert levels.kernel_levels(_layer(None, kernel)) is None
    assert levels.infer_levels(kernel) is None


def test_infer_levels_per_channel_and_missing_unit_level():
    # channel 0 uses only ±3 and ±5 (no ±1): the scale is found by dividing the smallest level.
    quantized = np.stack([np.array([3, -5, 5, -3]) / 7, np.array([1, -1, 3, -7]) / 7], axis=-1)
    found = levels.infer_levels(quantized.astype(np.float32))
    assert found is not None
    recovered, scale = found
    np.testing.assert_allclose(recovered * scale, quantized, rtol=1e-6)


# ------------------------------------------------------------------------------ input encodings


@pytest.mark.parametrize(
    ("quantizer", "kind", "bits"),
    [
        (None, "float", 32),
        ("ste_sign", "sign", 1),
        ("approx_sign", "sign", 1),
        (kq.StochasticSign(seed=1), "sign", 1),
        (kq.DoReFaActivation(1), "unsigned", 1),
        (kq.DoReFaActivation(2), "unsigned", 2),
        (kq.FixedPointInput(8), "unsigned", 8),
        (kq.FixedPointInput(8, signed=True), "signed", 8),
        (kq.FixedPointInput(1, signed=True), "signed", 1),
        (lq.quantizers.DoReFa(k_bit=3, mode="activations"), "unsigned", 3),
        (lq.quantizers.SteHeaviside(), "unsigned", 1),
        (lq.quantizers.SteTern(), "unknown", 2),
    ],
)
def test_input_encoding(quantizer, kind, bits):
    layer = lq.layers.QuantDense(4, input_quantizer=quantizer)
    encoding = levels.input_encoding(layer)
    assert (encoding.kind, encoding.bits) == (kind, bits)


# ------------------------------------------------------------------------------ activation planes


@pytest.mark.parametrize("bits", [1, 2, 3])
def test_activation_bit_plane_identity_with_zero_padding(bits):
    """conv(a, W) = ΣW/2 − Σ_j 2^j/(2n)·conv(s_j, W) with s_j padded by +1 — independent
    reference: TensorFlow's float conv of the DoReFa-quantized input with zero SAME padding."""
    rng = np.random.default_rng(bits)
    n = 2**bits - 1
    quantizer = kq.DoReFaActivation(bits)
    a = rng.uniform(-0.3, 1.3, (2, 5, 5, 3)).astype(np.float32)
    w = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
    reference = tf.nn.conv2d(quantizer(a), w, 1, "SAME").numpy()

    stacked = ActivationBitPlanes(bits, quantizer)(a)  # ½ − u_j, stacked on the batch axis
    signs = np.where(stacked.numpy() >= 0, 1.0, -1.0).astype(np.float32)
    padded = np.pad(signs, [(0, 0), (1, 1), (1, 1), (0, 0)], constant_values=1.0)
    convs = tf.nn.conv2d(padded, w, 1, "VALID")
    combine = CombineBitPlanes([-(2.0**j) / (2 * n) for j in range(bits)])
    combine.build(convs.shape)
    combine.set_weights([np.ones(4), w.sum(axis=(0, 1, 2)) / 2])
    np.testing.assert_allclose(combine(convs).numpy(), reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bits", [1, 3, 4])
def test_activation_bit_planes_are_the_quantizer_levels_bits(bits):
    """½ − u_j with u_j bit j of Q = n·q(x), checked on levels, half-way ties and out-of-range
    inputs against numpy's integer bits of the quantizer's own output."""
    n = 2**bits - 1
    quantizer = kq.DoReFaActivation(bits)
    grid = np.concatenate([np.arange(n + 1) / n, (np.arange(n) + 0.5) / n, [-5, -1, 1.5, 7]])
    x = np.concatenate([grid, np.random.default_rng(0).uniform(-0.5, 1.5, 200)]).astype(np.float32)
    levels = np.rint(quantizer(x).numpy() * n).astype(np.int64)
    planes = ActivationBitPlanes(bits, quantizer)(x).numpy().reshape(bits, -1)
    for j in range(bits):
        np.testing.assert_array_equal(planes[j], 0.5 - ((levels >> j) & 1))


@pytest.mark.parametrize("bits", [1, 2, 3, 8])
def test_dequantized_activation_is_the_quantizer_bit_for_bit(bits):
    """DequantizedActivation (RELU_N1_TO_1 form) equals DoReFaActivation's own output exactly,
    on the levels, the rounding midpoints, values outside [0, 1] and random inputs."""
    n = 2**bits - 1
    quantizer = kq.DoReFaActivation(bits)
    grid = np.concatenate([np.arange(n + 1) / n, (np.arange(n) + 0.5) / n, [-5, -1, 1.5, 7]])
    x = np.concatenate([grid, np.random.default_rng(bits).uniform(-0.5, 1.5, 500)])
    x = x.astype(np.float32)
    np.testing.assert_array_equal(DequantizedActivation(quantizer)(x), quantizer(x))


def test_dequantized_activation_of_a_signed_fixed_point_input_is_bit_for_bit():
    quantizer = kq.FixedPointInput(3, signed=True)
    grid = np.concatenate([(2 * np.arange(8) - 7) / 7, (2 * np.arange(8) - 6) / 7, [-3, 2.5]])
    x = np.concatenate([grid, np.random.default_rng(4).uniform(-1.5, 1.5, 500)])
    x = x.astype(np.float32)
    np.testing.assert_array_equal(DequantizedActivation(quantizer)(x), quantizer(x))


def test_dequantized_activation_serializes_and_refuses_other_quantizers():
    layer = DequantizedActivation(kq.DoReFaActivation(2), name="d")
    again = DequantizedActivation.from_config(layer.get_config())
    x = tf.constant([[-0.5, 0.2, 0.5, 0.9, 3.0]])
    np.testing.assert_array_equal(layer(x), again(x))
    with pytest.raises(ValueError, match="DoReFa"):
        DequantizedActivation("ste_sign")


def test_bit_plane_layers_serialize():
    planes = ActivationBitPlanes(2, kq.DoReFaActivation(2), name="p")
    again = ActivationBitPlanes.from_config(planes.get_config())
    x = tf.constant([[0.0, 0.4, 0.7, 1.0]])
    np.testing.assert_array_equal(planes(x), again(x))
    combine = CombineBitPlanes([0.5, -1.0], name="c")
    assert CombineBitPlanes.from_config(combine.get_config()).coefficients == [0.5, -1.0]
    with pytest.raises(ValueError, match="bits"):
        ActivationBitPlanes(0, "ste_sign")
    with pytest.raises(ValueError, match="coefficients"):
        CombineBitPlanes([])


# ------------------------------------------------------------------------------ verify helpers


def test_argmax_agreement_counts_float_ties_only():
    from kbnn.converters.verify import argmax_agreement

    keras = np.array([[1.0, 3.0, 3.0], [0.0, 2.0, 1.0], [5.0, 1.0, 4.99995]])
    lce = np.array([[1.0, 2.9999999, 3.0], [0.0, 1.0, 2.0], [4.9999, 1.0, 5.0]])
    # row 0: a tie (agrees), row 1: a real disagreement, row 2: within 1e-4 of the maximum
    assert argmax_agreement(keras, lce, atol=1e-4) == pytest.approx(2 / 3)
    assert argmax_agreement(keras, lce, atol=0.0) == pytest.approx(1 / 3)
