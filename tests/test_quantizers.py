"""kbnn.quantizers: contract tests over every alias, numpy references, statistics, errors."""

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import layers as kl
from kbnn import quantizers as kq

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

ALIASES = sorted(kq.ALIASES)
KERNEL_SHAPE = (3, 3, 2, 4)


def _kernel(seed=0, scale=0.5, shape=KERNEL_SHAPE):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype(np.float32)


def _forward_and_grad(quantizer, x, upstream=None, **call_kwargs):
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = quantizer(x, **call_kwargs)
        loss = tf.reduce_sum(y * (1.0 if upstream is None else upstream))
    return y.numpy(), tape.gradient(loss, x).numpy()


def _config(quantizer):
    return {k: v for k, v in quantizer.get_config().items() if k != "name"}


def _clip_mask(x, clip=1.0):
    return (np.abs(x) <= clip).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Contract: every registered alias
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alias", ALIASES)
def test_alias_resolves_with_precision(alias):
    quantizer = kq.get(alias)
    assert isinstance(quantizer, kq.ALIASES[alias])
    assert isinstance(quantizer, lq.quantizers.Quantizer)
    assert isinstance(quantizer.precision, int) and 1 <= quantizer.precision <= 32
    assert lq.quantizers.get(alias).__class__ is quantizer.__class__  # larq layers accept it


@pytest.mark.parametrize("alias", ALIASES)
def test_serialize_round_trip_identical_outputs(alias):
    quantizer = kq.get(alias)
    restored = kq.deserialize(kq.serialize(quantizer))
    assert type(restored) is type(quantizer)
    assert restored.get_config() == quantizer.get_config()
    clone = type(quantizer).from_config(quantizer.get_config())
    w = _kernel()
    for other in (restored, clone):
        np.testing.assert_array_equal(other(w, training=False), quantizer(w, training=False))


@pytest.mark.parametrize("alias", ALIASES)
def test_graph_and_xla_match_eager(alias):
    quantizer = kq.get(alias)
    w = tf.constant(_kernel(1))

    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = quantizer(x, training=False)
            loss = tf.reduce_sum(y * y)
        return y, tape.gradient(loss, x)

    eager_y, _ = step(w)
    for fn in (tf.function(step), tf.function(step, jit_compile=True)):
        y, grad = fn(w)
        np.testing.assert_allclose(y, eager_y, atol=1e-6)
        assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("alias", [a for a in ALIASES if hasattr(kq.ALIASES[a], "integer_levels")])
def test_integer_levels_contract(alias):
    quantizer = kq.get(alias)
    w = _kernel(2)
    levels, scale = (t.numpy() for t in quantizer.integer_levels(w))
    np.testing.assert_array_equal(levels, np.round(levels))
    np.testing.assert_allclose(levels * scale, quantizer(w, training=False), atol=1e-6)
    assert scale.shape in ((), (KERNEL_SHAPE[-1],))
    if isinstance(quantizer, kq.DoReFaActivation):
        assert set(np.unique(levels)) <= set(range(quantizer.n + 1))
    else:
        assert set(np.unique(levels)) <= set(quantizer.levels)


def test_model_with_every_quantizer_saves_and_loads(tmp_path):
    """One branch per alias, as input and as kernel quantizer; .keras and .h5, no custom_objects."""
    inputs = tf.keras.Input((6,))
    branches = [
        lq.layers.QuantDense(
            3,
            input_quantizer=alias,
            kernel_quantizer=alias,
            kernel_constraint="weight_clip",
            name=f"dense_{alias}",
        )(inputs)
        for alias in ALIASES
    ]
    model = tf.keras.Model(inputs, tf.keras.layers.Concatenate()(branches))
    x = np.random.default_rng(0).uniform(-1, 1, size=(5, 6)).astype(np.float32)
    expected = model(x, training=False).numpy()
    for ext in ("keras", "h5"):
        path = tmp_path / f"model.{ext}"
        model.save(path)
        loaded = tf.keras.models.load_model(path)
        np.testing.assert_array_equal(loaded(x, training=False), expected)
        for alias in ALIASES:
            layer = loaded.get_layer(f"dense_{alias}")
            assert type(layer.kernel_quantizer) is kq.ALIASES[alias]
            assert _config(layer.kernel_quantizer) == _config(kq.get(alias))


# ---------------------------------------------------------------------------------------------
# Formulas against numpy
# ---------------------------------------------------------------------------------------------


def test_ste_sign_is_larqs_with_binarynet_gradient():
    assert kq.ste_sign is lq.quantizers.ste_sign
    x = np.array([-1.5, -1.0, -0.2, 0.0, 0.3, 1.0, 2.0], np.float32)
    y, grad = _forward_and_grad(kq.get("ste_sign"), x)
    np.testing.assert_array_equal(y, np.where(x >= 0, 1.0, -1.0))  # sign(0) = +1
    # clipped identity, not the derivative of tanh: exactly 1 inside, 0 outside
    np.testing.assert_array_equal(grad, _clip_mask(x))


def test_stochastic_sign_mean_matches_hard_sigmoid():
    values = np.array([-1.5, -0.6, -0.2, 0.0, 0.3, 0.8, 1.2], np.float32)
    samples = 4000
    x = np.repeat(values[None, :], samples, axis=0)
    y, grad = _forward_and_grad(kq.StochasticSign(seed=3), x, training=True)
    assert set(np.unique(y)) <= {-1.0, 1.0}
    sigma = np.clip((values + 1) / 2, 0, 1)
    expected = 2 * sigma - 1
    stderr = np.sqrt(np.maximum(1 - expected**2, 1e-12) / samples)
    assert np.all(np.abs(y.mean(axis=0) - expected) <= 4 * stderr + 1e-9)
    np.testing.assert_array_equal(grad, _clip_mask(x))


def test_stochastic_sign_inference_is_ste_sign_and_seedable():
    x = np.random.default_rng(4).normal(size=(8, 16)).astype(np.float32)
    x[0, 0] = 0.0
    np.testing.assert_array_equal(kq.StochasticSign()(x, training=False), lq.quantizers.ste_sign(x))
    first = kq.StochasticSign(seed=7)(x, training=True).numpy()
    again = kq.StochasticSign(seed=7)(x, training=True).numpy()
    other = kq.StochasticSign(seed=8)(x, training=True).numpy()
    np.testing.assert_array_equal(first, again)
    assert np.any(first != other)


def test_stochastic_sign_follows_training_flag_inside_a_model():
    layer = lq.layers.QuantDense(
        4, input_quantizer=kq.StochasticSign(seed=1), kernel_initializer="ones"
    )
    model = tf.keras.Sequential([tf.keras.Input((64,)), layer])
    x = np.zeros((64, 64), np.float32)  # σ(0) = 1/2: a coin flip per input in training
    inference = model(x, training=False).numpy()
    np.testing.assert_array_equal(inference, 64.0)  # sign(0) = +1 everywhere
    training = model(x, training=True).numpy()
    assert np.abs(training).max() < 64 and np.abs(training.mean()) < 8


def test_xnor_weight_matches_numpy():
    w = _kernel(5)
    w[0, 0, 0, 0] = 0.0
    y, grad = _forward_and_grad(kq.XnorWeight(), w)
    alpha = np.abs(w).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(y, np.where(w >= 0, 1.0, -1.0) * alpha, rtol=1e-6)
    np.testing.assert_array_equal(grad, _clip_mask(w))


def _numpy_twn(w, factor, per_channel):
    axes = tuple(range(w.ndim - 1)) if per_channel else None
    delta = factor * np.abs(w).mean(axis=axes)
    t = np.where(w > delta, 1.0, np.where(w < -delta, -1.0, 0.0))
    above = np.abs(w) > delta
    alpha = (np.abs(w) * above).sum(axis=axes) / above.sum(axis=axes)
    return alpha * t, t


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("factor", [0.7, 0.4])
def test_twn_matches_numpy(per_channel, factor):
    w = _kernel(6, scale=0.8)
    quantizer = kq.TernaryWeight(threshold_factor=factor, per_channel=per_channel)
    y, grad = _forward_and_grad(quantizer, w)
    expected, t = _numpy_twn(w, factor, per_channel)
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    assert 0 < np.mean(t == 0) < 1
    np.testing.assert_array_equal(grad, _clip_mask(w))


@pytest.mark.parametrize("seed,dist", [(0, "normal"), (1, "uniform"), (2, "laplace")])
def test_five_level_is_near_least_squares_optimal(seed, dist):
    rng = np.random.default_rng(seed)
    w = getattr(rng, dist)(size=(4, 4, 8, 3))
    w = ((2 * w - 1 if dist == "uniform" else w) * 0.3).astype(np.float32)
    quantizer = kq.FiveLevelWeight()
    y, grad = _forward_and_grad(quantizer, w)
    levels, alpha = (t.numpy() for t in quantizer.integer_levels(w))
    np.testing.assert_array_equal(grad, _clip_mask(w))
    for c in range(w.shape[-1]):
        wc, yc = w[..., c].ravel(), y[..., c].ravel()
        # brute force over a fine grid of α, each weight at its nearest level (independent)
        grid = np.linspace(0.005, 2.0, 8000)[:, None] * np.abs(wc).max()
        best = np.min(np.sum((wc - grid * np.clip(np.round(wc / grid), -2, 2)) ** 2, axis=1))
        assert np.sum((wc - yc) ** 2) <= best * 1.02
        lc = levels[..., c].ravel()
        np.testing.assert_allclose(alpha[c], wc @ lc / (lc @ lc), rtol=1e-5)  # LS α for t
    assert set(np.unique(levels)) == {-2.0, -1.0, 0.0, 1.0, 2.0}


def test_five_level_per_tensor_and_zero_kernel():
    w = _kernel(7)
    _, alpha = kq.FiveLevelWeight(per_channel=False).integer_levels(w)
    assert alpha.shape == ()
    np.testing.assert_array_equal(kq.FiveLevelWeight()(np.zeros((3, 2), np.float32)), 0.0)


def test_dorefa_weight_one_bit_matches_numpy():
    w = _kernel(8, scale=1.0)
    y, grad = _forward_and_grad(kq.DoReFaWeight(1), w)
    np.testing.assert_allclose(y, np.abs(w).mean() * np.where(w >= 0, 1.0, -1.0), rtol=1e-6)
    np.testing.assert_array_equal(grad, np.ones_like(w))  # plain STE, not clipped


@pytest.mark.parametrize("shape", [KERNEL_SHAPE, (784, 256), (5, 5, 32, 64)])
def test_dorefa_weight_one_bit_is_pinned_to_mean_abs_times_sign(shape):
    """k = 1 (the pretrained dorefanet_mnist): q(W) = E|W|·sign(W), one E|W| for the whole
    kernel (not per channel), sign(0) = +1; the same bits in eager and graph mode (XLA sums
    in another order: E|W| within an ulp)."""
    w = _kernel(11, scale=0.4, shape=shape)
    w.flat[::7] = 0.0
    alpha = np.float32(np.abs(w.astype(np.float64)).mean())
    quantizer = kq.DoReFaWeight(1)
    y = quantizer(w).numpy()
    assert np.unique(np.abs(y)).size == 1  # one scale for the whole tensor
    got_alpha = np.abs(y).flat[0]
    assert abs(got_alpha - alpha) <= 2 * np.spacing(alpha)  # float32 summation order only
    np.testing.assert_array_equal(y, np.where(w >= 0, got_alpha, -got_alpha))
    np.testing.assert_array_equal(tf.function(quantizer)(tf.constant(w)).numpy(), y)
    xla = tf.function(quantizer, jit_compile=True)(tf.constant(w)).numpy()
    np.testing.assert_allclose(xla, y, rtol=1e-6)


@pytest.mark.parametrize("k_bit", range(2, 9))
def test_dorefa_weight_k_bit_is_larqs_bit_for_bit(k_bit):
    """k ≥ 2 keeps larq's `DoReFa(mode="weights")` forward and gradient exactly."""
    w = _kernel(12, scale=0.7, shape=(3, 3, 8, 16))
    upstream = np.random.default_rng(13).normal(size=w.shape).astype(np.float32)
    ours = _forward_and_grad(kq.DoReFaWeight(k_bit), w, upstream)
    larqs = _forward_and_grad(lq.quantizers.DoReFa(k_bit, mode="weights"), w, upstream)
    for a, b in zip(ours, larqs, strict=True):
        np.testing.assert_array_equal(a, b)


def _numpy_dorefa_weight(w, k_bit):
    """Zhou et al. 2016, eq. 9, in float64: 2·quantize_k(tanh w/(2 max|tanh w|) + ½) − 1."""
    n = 2**k_bit - 1
    t = np.tanh(w.astype(np.float64))
    return 2 * np.round((t / (2 * np.abs(t).max()) + 0.5) * n) / n - 1


@pytest.mark.parametrize(
    "k_bit, max_diff",
    [
        (1, 0.0),
        (2, 0.0),
        (3, 0.0),
        (4, 2 / 15),
        (5, 4 / 31),
        (6, 6 / 63),
        (7, 14 / 127),
        (8, 28 / 255),
    ],
)
def test_dorefa_weight_idempotent_only_up_to_three_bits(k_bit, max_diff):
    """q(q(W)) ≠ q(W) for k ≥ 4 is the paper's formula (tanh of the levels), as documented."""
    w = np.linspace(-1.0, 1.0, 4001, dtype=np.float32)  # every level occurs
    quantizer = kq.DoReFaWeight(k_bit)
    once = quantizer(w).numpy()
    twice = quantizer(once).numpy()
    if k_bit == 1:  # E|q| = E|W| up to the float32 sum
        np.testing.assert_allclose(twice, once, rtol=1e-5)
        return
    np.testing.assert_allclose(
        twice, _numpy_dorefa_weight(_numpy_dorefa_weight(w, k_bit), k_bit), atol=1e-6
    )
    assert np.abs(twice - once).max() == pytest.approx(max_diff, abs=1e-6)


@pytest.mark.parametrize("k_bit", [2, 3, 4])
def test_dorefa_weight_k_bit_matches_numpy(k_bit):
    w = _kernel(9, scale=0.6)
    upstream = np.random.default_rng(10).normal(size=w.shape).astype(np.float32)
    y, grad = _forward_and_grad(kq.DoReFaWeight(k_bit), w, upstream)
    n = 2**k_bit - 1
    m = np.abs(np.tanh(w)).max()
    normed = np.tanh(w) / (2 * m) + 0.5
    np.testing.assert_allclose(y, 2 * np.round(normed * n) / n - 1, atol=1e-6)
    # identity at the rounding, chain rule through tanh/(2m), then ×2 (m held constant)
    np.testing.assert_allclose(grad, upstream * (1 - np.tanh(w) ** 2) / m, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("k_bit", [1, 2, 3])
def test_dorefa_activation_matches_numpy(k_bit):
    x = np.linspace(-0.5, 1.5, 41, dtype=np.float32)
    quantizer = kq.DoReFaActivation(k_bit)
    y, grad = _forward_and_grad(quantizer, x)
    n = 2**k_bit - 1
    np.testing.assert_allclose(y, np.round(np.clip(x, 0, 1) * n) / n, atol=1e-7)
    np.testing.assert_array_equal(grad, ((x >= 0) & (x <= 1)).astype(np.float32))
    planes = quantizer.bit_planes(x).numpy()
    np.testing.assert_allclose((planes * 2.0 ** np.arange(k_bit)).sum(-1) / n, y, atol=1e-6)


def test_fixed_point_input_bit_planes_rebuild_the_first_layer():
    pixels = np.random.default_rng(11).integers(0, 256, size=(2, 5, 5, 1))
    x = (pixels / 255.0).astype(np.float32)
    quantizer = kq.FixedPointInput()
    assert quantizer.bits == quantizer.precision == 8
    levels, scale = quantizer.integer_levels(x)
    np.testing.assert_array_equal(levels, pixels)  # n·x is the pixel value itself
    w_b = np.where(np.random.default_rng(12).normal(size=(3, 3, 1, 2)) >= 0, 1.0, -1.0)
    w_b = w_b.astype(np.float32)
    planes = quantizer.bit_planes(x).numpy()
    # s = Σ_n 2^(n-1) (x^n · w_b) with binary products only, checked against numpy on pixels
    s = sum(2.0**i * tf.nn.conv2d(planes[..., i], w_b, 1, "VALID").numpy() for i in range(8))
    ref = np.zeros((2, 3, 3, 2))
    for i in range(3):
        for j in range(3):
            ref[:, i, j] = np.tensordot(pixels[:, i : i + 3, j : j + 3], w_b, axes=3)
    np.testing.assert_allclose(s, ref, atol=1e-3)
    np.testing.assert_allclose(quantizer(x), x, atol=1e-6)


def test_dorefa_gradient_is_unbiased_on_grid_and_seedable():
    k_bit = 3
    n = 2**k_bit - 1
    dr = np.array([[0.3, -0.1, 0.05, -0.6], [2.0, 1.0, -0.5, 0.25]], np.float32)
    draws = 3000
    quantizer = kq.DoReFaGradient(k_bit, seed=5)
    x = tf.zeros((draws, 2, 4))
    upstream = np.broadcast_to(dr, (draws, 2, 4)).reshape(draws, 2, 4)
    y, grad = _forward_and_grad(quantizer, x, upstream)
    np.testing.assert_array_equal(y, 0.0)  # identity forward
    # per example (batch axis 0) the grid is 2m(j/n - 1/2), m = max over that example's dr
    m = np.abs(dr).max()
    j = (grad / (2 * m) + 0.5) * n
    np.testing.assert_allclose(j, np.round(j), atol=1e-4)
    # stochastic rounding is unbiased: E[quantized] = dr
    stderr = 2 * m / n / 2 / np.sqrt(draws)
    assert np.all(np.abs(grad.mean(axis=0) - dr) <= 5 * stderr)
    again = _forward_and_grad(kq.DoReFaGradient(k_bit, seed=5), x, upstream)[1]
    np.testing.assert_array_equal(grad, again)


# ---------------------------------------------------------------------------------------------
# larq's flip-ratio metric on the integer levels
# ---------------------------------------------------------------------------------------------

LEVEL_QUANTIZERS = {
    "twn": kq.TernaryWeight,
    "five_level": kq.FiveLevelWeight,
    "xnor_weight": kq.XnorWeight,
    "dorefa_1": lambda: kq.DoReFaWeight(1),
    "dorefa_2": lambda: kq.DoReFaWeight(2),
    "dorefa_8": lambda: kq.DoReFaWeight(8),  # levels up to ±255: more than int8
}


@pytest.mark.parametrize("name", LEVEL_QUANTIZERS)
def test_flip_ratio_counts_level_flips(name):
    """Latent magnitudes in [0.8, 1] (every level non-zero, scales < 1 so α·t casts to int8 0);
    flipping the sign of exactly 30 % of them keeps every scale and flips 30 % of the levels."""
    rng = np.random.default_rng(14)
    shape = (40, 5)
    w0 = (rng.uniform(0.8, 1.0, shape) * rng.choice([-1.0, 1.0], shape)).astype(np.float32)
    flipped = np.zeros(w0.size, bool)
    flipped[rng.permutation(w0.size)[: int(0.3 * w0.size)]] = True
    w1 = np.where(flipped.reshape(shape), -w0, w0)
    with lq.context.metrics_scope(["flip_ratio"]):
        layer = lq.layers.QuantDense(5, kernel_quantizer=LEVEL_QUANTIZERS[name]())
    layer.build((None, 40))
    x = np.ones((1, 40), np.float32)
    for w in (w0, w1):
        layer.kernel.assign(w)
        layer(x)
    metric = layer.kernel_quantizer.flip_ratio
    assert float(metric.result()) == pytest.approx(0.3, abs=1e-6)
    assert [m.name for m in layer.metrics] == [metric.name]


def test_ternary_dense_flip_ratio_in_fit_history():
    """In `fit` under metrics_scope: the share of TWN levels (numpy, Li & Liu 2016) that the
    first of two steps changed."""
    with lq.context.metrics_scope(["flip_ratio"]):
        model = tf.keras.Sequential([tf.keras.Input((8,)), kl.TernaryDense(6, name="t")])
    model.compile(tf.keras.optimizers.SGD(0.5), "mse")
    rng = np.random.default_rng(15)
    x, y = rng.normal(size=(16, 8)).astype(np.float32), rng.normal(size=(16, 6)) * 3

    def levels():
        w = model.get_layer("t").kernel.latent_variable.numpy()
        delta = 0.7 * np.abs(w).mean(axis=0)
        return np.where(w > delta, 1, np.where(w < -delta, -1, 0))

    before, after = levels(), []
    record = tf.keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: batch == 0 and after.append(levels())
    )
    history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[record])
    (key,) = [k for k in history.history if k.startswith("flip_ratio/")]
    expected = np.mean(before != after[0])
    assert expected > 0.05
    assert history.history[key][0] == pytest.approx(expected, abs=1e-6)


# ---------------------------------------------------------------------------------------------
# AutoGraph
# ---------------------------------------------------------------------------------------------

AUTOGRAPH_SCRIPT = """
import linecache
import os
import sys
import kbnn
import kbnn.math
import kbnn.quantizers as kq
import numpy as np
import tensorflow as tf

# AutoGraph reads a function's source through linecache: hide kbnn's, as a .pyc-only install
# (or a module edited on disk after import) does. Only kbnn's own folder: a path test such as
# `"kbnn" in name` also hid tf_keras when the venv lived under /tmp/kbnn-ci.XXXX (CI).
root = os.path.dirname(os.path.abspath(kbnn.__file__)) + os.sep
getlines = linecache.getlines
linecache.getlines = lambda name, *a: [] if name.startswith(root) else getlines(name, *a)
linecache.clearcache()
w = tf.constant(np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32))
for quantizer in (kq.TernaryWeight(), kq.FiveLevelWeight(), kq.XnorWeight(), kq.DoReFaWeight(1),
                  kq.DoReFaWeight(2), kq.StochasticSign(), kq.DoReFaGradient()):
    tf.function(quantizer)(w)
    tf.function(lambda x: quantizer(x, training=True))(w)
print("QUANTIZERS DONE", file=sys.stderr, flush=True)  # where AutoGraph's warnings go
tf.function(kbnn.math.ap2)(w)  # control: a kbnn function AutoGraph does convert
"""


def test_quantizer_calls_are_not_autographed(tmp_path, run_fresh_python):
    """No "AutoGraph could not transform" warning for the quantizers where the source is
    unreadable, while a converted kbnn function in the same process does warn."""
    script = tmp_path / "autograph.py"
    script.write_text(AUTOGRAPH_SCRIPT)
    output = run_fresh_python(script, timeout=300)
    quantizers, control = output.split("QUANTIZERS DONE", 1)
    assert "could not transform" not in quantizers, quantizers[-3000:]
    assert "could not transform <function ap2" in control, control[-3000:]


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [kq.DoReFaWeight, kq.DoReFaActivation, kq.DoReFaGradient])
@pytest.mark.parametrize("k_bit", [0, 33, -1, 2.5])
def test_bad_k_bit(cls, k_bit):
    with pytest.raises(ValueError, match="k_bit"):
        cls(k_bit)


@pytest.mark.parametrize("factor", [0, -0.5, "0.7"])
def test_bad_threshold_factor(factor):
    with pytest.raises(ValueError, match="threshold_factor"):
        kq.TernaryWeight(threshold_factor=factor)


def test_signed_fixed_point_input_is_the_identity_on_rescaled_8_bit_pixels():
    """y = 2x − 1 of 8-bit pixels lies on the grid (2Q − n)/n with Q the pixel value: q(y) = y
    exactly, Q = the pixel, and y = Σ_m 2^m·(2·x^m − 1)/n from Q's bit planes (numpy)."""
    pixels = np.arange(256)
    y = 2.0 * (pixels / 255.0).astype(np.float32) - 1.0
    quantizer = kq.FixedPointInput(8, signed=True)
    np.testing.assert_array_equal(quantizer(y), y)
    levels, scale = quantizer.integer_levels(y)
    np.testing.assert_array_equal(levels, pixels)
    assert np.isclose(scale, 1 / 255)
    bits = (pixels[:, None] >> np.arange(8)) & 1
    np.testing.assert_allclose((2.0 ** np.arange(8) * (2 * bits - 1)).sum(-1) / 255, y, atol=1e-6)


def test_signed_fixed_point_input_grid_gradient_and_config():
    quantizer = kq.FixedPointInput(2, signed=True)
    x = tf.constant([-3.0, -1.0, -0.4, -0.3, 0.0, 0.2, 0.4, 1.0, 2.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = quantizer(x)
    np.testing.assert_allclose(y, [-1, -1, -1 / 3, -1 / 3, 1 / 3, 1 / 3, 1 / 3, 1, 1], atol=1e-6)
    np.testing.assert_array_equal(tape.gradient(y, x), [0, 1, 1, 1, 1, 1, 1, 1, 0])
    again = kq.FixedPointInput.from_config(quantizer.get_config())
    assert again.signed and again.bits == 2
    assert not kq.FixedPointInput.from_config(kq.FixedPointInput(3).get_config()).signed


def test_bad_other_arguments():
    with pytest.raises(ValueError, match="bits"):
        kq.FixedPointInput(bits=0)
    with pytest.raises(ValueError, match="signed"):
        kq.FixedPointInput(signed="yes")
    with pytest.raises(ValueError, match="clip_value"):
        kq.XnorWeight(clip_value=-1)


def test_unknown_alias_lists_known_ones():
    with pytest.raises(ValueError, match="Known aliases") as err:
        kq.get("tern_weight")
    for alias in ALIASES:
        assert alias in str(err.value)
