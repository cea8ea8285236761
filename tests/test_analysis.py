"""kbnn.analysis: unique binary kernels on constructed layers, and the flip-ratio wiring."""

import itertools

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import layers as kl
from kbnn.analysis import enable_flip_ratio, unique_kernels
from kbnn.kernels import integer_levels, quantized_kernel

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

A = np.array([[1, -1, 1], [1, 1, -1], [-1, -1, 1]], dtype=np.float32)
B = np.array([[1, 1, 1], [-1, 1, -1], [1, -1, -1]], dtype=np.float32)


def _binary_conv_model(kernel, input_hw=5, **layer_kwargs):
    kh, kw, cin, cout = kernel.shape
    layer = lq.layers.QuantConv2D(
        cout,
        (kh, kw),
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
        name="bconv",
        **layer_kwargs,
    )
    model = tf.keras.Sequential([tf.keras.Input((input_hw, input_hw, cin)), layer])
    layer.set_weights([kernel])
    return model


def _known_duplicates_kernel():
    """Input channel 0 sees (A, A, −A), channel 1 sees (B, A, B); magnitudes vary, a 0 is +1."""
    rng = np.random.default_rng(0)
    patterns = {(0, 0): A, (0, 1): A, (0, 2): -A, (1, 0): B, (1, 1): A, (1, 2): B}
    kernel = np.zeros((3, 3, 2, 3), np.float32)
    for (i, o), pattern in patterns.items():
        kernel[:, :, i, o] = pattern * rng.uniform(0.1, 1.0, size=(3, 3))
    kernel[0, 0, 1, 1] = 0.0  # A has +1 there: sign(0) must count as +1 (ste_sign)
    return kernel


def test_unique_kernels_on_constructed_layer():
    report = unique_kernels(_binary_conv_model(_known_duplicates_kernel()))
    assert len(report) == 1
    x = report["bconv"]
    assert (x.total, x.input_channels, x.output_channels) == (6, 2, 3)
    assert x.possible == 2**9 == 512
    assert x.unique == 3  # {A, −A, B}
    assert x.unique_up_to_sign == 2  # {±A, B}
    assert x.unique_per_channel == 2 + 2  # ch0 {A, −A}, ch1 {B, A}
    assert x.unique_per_channel_up_to_sign == 1 + 2
    assert x.ratio == pytest.approx(3 / 6)
    assert x.ratio_per_channel_up_to_sign == pytest.approx(3 / 6)
    pixels = 3 * 3  # 5×5 input, 3×3 VALID
    assert x.output_pixels == pixels
    assert x.ops == 6 * 9 * pixels == 486
    assert x.ops_saved == (6 - 4) * 9 * pixels == 162
    assert x.ops_saved_up_to_sign == (6 - 3) * 9 * pixels == 243
    assert x.partial_sum_adds == 6 * pixels
    data = report.as_dict()
    assert data["layers"][0]["ops_saved"] == 162 and data["layers"][0]["possible"] == 512
    assert "bconv" in report.table()


def _reference_counts(signs):
    """Brute force with Python sets: kernels as tuples; negation-canonical = min(t, −t)."""
    kh, kw, cin, cout = signs.shape
    kernels = {
        (i, o): tuple(signs[:, :, i, o].ravel().tolist()) for i in range(cin) for o in range(cout)
    }

    def canon(t):
        return min(t, tuple(-v for v in t))

    per_channel = [{kernels[i, o] for o in range(cout)} for i in range(cin)]
    return {
        "unique": len(set(kernels.values())),
        "unique_up_to_sign": len({canon(t) for t in kernels.values()}),
        "unique_per_channel": sum(len(s) for s in per_channel),
        "unique_per_channel_up_to_sign": sum(len({canon(t) for t in s}) for s in per_channel),
    }


@pytest.mark.parametrize("seed", [1, 2])
def test_unique_kernels_match_brute_force(seed):
    # 2×2 kernels: only 16 patterns, so 8×16 = 128 kernels repeat a lot.
    rng = np.random.default_rng(seed)
    kernel = rng.normal(size=(2, 2, 8, 16)).astype(np.float32)
    x = unique_kernels(_binary_conv_model(kernel, input_hw=4, padding="same", pad_values=1.0))[0]
    signs = np.where(kernel >= 0, 1.0, -1.0)
    expected = _reference_counts(signs)
    assert {k: getattr(x, k) for k in expected} == expected
    assert x.output_pixels == 16
    assert x.ops_saved == (128 - expected["unique_per_channel"]) * 4 * 16


def test_xnor_scales_do_not_split_equal_patterns():
    # Same sign pattern in both output channels, very different magnitudes (α per channel).
    kernel = np.stack([A, A * 0.05], axis=-1)[:, :, None, :].astype(np.float32)
    layer = kl.QuantConv2D(
        2,
        3,
        input_quantizer="ste_sign",
        kernel_quantizer="xnor_weight",
        kernel_constraint="weight_clip",
        use_bias=False,
    )
    model = tf.keras.Sequential([tf.keras.Input((4, 4, 1)), layer])
    layer.set_weights([kernel])
    np.testing.assert_array_equal(integer_levels(layer)[:, :, 0, 1], A)
    x = unique_kernels(model)[0]
    assert (x.total, x.unique) == (2, 1)


def test_layer_selection():
    model = tf.keras.Sequential(
        [
            tf.keras.Input((6, 6, 1)),
            kl.BinaryConv2D(2, 3, input_quantizer=None, name="binary"),
            kl.TernaryConv2D(2, 3, name="ternary"),
            tf.keras.layers.Conv2D(2, 1, name="float"),
            tf.keras.layers.Flatten(),
            kl.BinaryDense(2, name="dense"),
        ]
    )
    assert [x.layer for x in unique_kernels(model)] == ["binary"]
    both = unique_kernels(model, max_bits=2)
    assert [x.layer for x in both] == ["binary", "ternary"]
    ternary = both["ternary"]
    assert ternary.num_levels == 3 and ternary.possible == 3**9
    levels = integer_levels(model.get_layer("ternary"))
    assert set(np.unique(levels)) <= {-1.0, 0.0, 1.0}
    with pytest.raises(ValueError, match="max_bits"):
        unique_kernels(model, max_bits=0)
    with pytest.raises(ValueError, match="tf.keras.Model"):
        unique_kernels([model])


def _tiny_classifier():
    return tf.keras.Sequential(
        [
            tf.keras.Input((8,)),
            kl.BinaryDense(16, input_quantizer=None, name="b1"),
            tf.keras.layers.BatchNormalization(name="bn"),
            kl.TernaryDense(8, name="t"),
            kl.BinaryDense(3, name="b2"),
        ]
    )


def test_flip_ratio_equals_fraction_of_flipped_levels():
    """With 2 steps per epoch larq's FlipRatio is the share of levels step 1's update flipped.

    The reference is computed here from the latent weights before training and after the first
    step: signs for the binary kernels, TWN levels (t ∈ {−1, 0, 1}, not α·t) for the ternary one.
    """
    model = _tiny_classifier()
    names = ("b1", "t", "b2")
    assert enable_flip_ratio(model) == [f"flip_ratio/{name}" for name in names]
    model.compile(
        tf.keras.optimizers.Adam(0.2),
        tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 8)).astype(np.float32), rng.integers(0, 3, 32)

    def levels_of(name):
        latent = model.get_layer(name).kernel.latent_variable.numpy()
        if name == "t":  # TWN, Li & Liu 2016: Δ = 0.7·E|W| per output channel
            delta = 0.7 * np.abs(latent).mean(axis=0)
            return np.where(latent > delta, 1, np.where(latent < -delta, -1, 0))
        return np.where(latent >= 0, 1, -1)

    before = {name: levels_of(name) for name in names}
    after_first_step = {}
    record = tf.keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: (
            batch == 0 and after_first_step.update({name: levels_of(name) for name in names})
        )
    )
    history = model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[record])
    for name in names:
        expected = np.mean(before[name] != after_first_step[name])
        assert history.history[f"flip_ratio/{name}"][0] == pytest.approx(expected, abs=1e-6)
        assert expected > 0, name
    # analysing the model does not disturb the metric
    metric = model.get_layer("b1").kernel_quantizer.flip_ratio
    state = [v.numpy().copy() for v in metric.variables]
    integer_levels(model.get_layer("b1"))
    quantized_kernel(model.get_layer("b1"))
    for value, variable in zip(state, metric.variables, strict=True):
        np.testing.assert_array_equal(value, variable.numpy())
    assert enable_flip_ratio(model) == [f"flip_ratio/{name}" for name in names]  # idempotent


@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
def test_flip_ratio_model_still_round_trips(tmp_path):
    model = _tiny_classifier()
    enable_flip_ratio(model)
    x = np.random.default_rng(1).normal(size=(4, 8)).astype(np.float32)
    for suffix in ("keras", "h5"):
        path = tmp_path / f"model.{suffix}"
        model.save(path)
        loaded = tf.keras.models.load_model(path)
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_constructed_kernels_cover_every_pattern_once():
    # All 16 sign patterns of a 2×2 kernel, once each on one input channel: nothing repeats,
    # negation pairs them up 8 ways.
    patterns = np.array(list(itertools.product([-1.0, 1.0], repeat=4)), np.float32)
    kernel = patterns.T.reshape(2, 2, 1, 16)
    x = unique_kernels(_binary_conv_model(kernel, input_hw=3))[0]
    assert (x.unique, x.unique_up_to_sign, x.unique_per_channel) == (16, 8, 16)
    assert x.ops_saved == 0 and x.ops_saved_up_to_sign == 8 * 4 * 4


def test_random_kernels_match_the_occupancy_formula():
    # C_out kernels drawn uniformly from N = 512 patterns: E[distinct] = N·(1 − (1 − 1/N)^C_out).
    rng = np.random.default_rng(3)
    cin, cout, n = 16, 256, 512
    kernel = rng.normal(size=(3, 3, cin, cout)).astype(np.float32)
    x = unique_kernels(_binary_conv_model(kernel, input_hw=3))[0]
    expected = n * (1 - (1 - 1 / n) ** cout) / cout
    assert x.ratio_per_channel == pytest.approx(expected, abs=0.02)
    assert x.unique == pytest.approx(n * (1 - (1 - 1 / n) ** (cin * cout)), abs=3)  # ≈ 511.8
