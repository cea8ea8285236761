"""Weight sharing: k-means codebooks, centroid gradients = summed member gradients."""

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import layers as kl
from kbnn.compression import pruning, sharing

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


def _reference_kmeans(values, k, iterations=100):
    """Textbook Lloyd: linear init, brute-force nearest centroid, empty clusters stay put.

    Returns None when a value is (within float64 rounding) equidistant from two centroids at
    some step: either assignment is then correct Lloyd, and trajectories may split (e.g. 1.5e-31
    between centroids −1 and 1: brute force rounds both distances to 1.0 and takes the first)."""
    centroids = np.linspace(values.min(), values.max(), k)
    labels = None
    for _ in range(iterations):
        distances = np.abs(values[:, None] - centroids[None, :])
        distinct = np.unique(centroids)  # equal centroids are one choice, not a tie
        if distinct.size > 1:
            two = np.sort(np.abs(values[:, None] - distinct[None, :]), axis=1)[:, :2]
            if np.any(two[:, 1] - two[:, 0] <= 1e-12 * np.maximum(1.0, np.abs(values))):
                return None
        new = np.argmin(distances, axis=1)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            if np.any(labels == j):
                centroids[j] = values[labels == j].mean()
        centroids = np.sort(centroids)
    return centroids


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(
        np.float64, st.integers(2, 300), elements=st.floats(-4, 4, allow_nan=False, width=32)
    ),
    st.integers(1, 16),
)
def test_kmeans_matches_textbook_lloyd(values, k):
    reference = _reference_kmeans(values.astype(np.float64), k)
    assume(reference is not None)
    centroids, labels = sharing.kmeans_1d(values, k)
    np.testing.assert_allclose(centroids, reference.astype(np.float32), rtol=1e-5, atol=1e-6)
    assert np.all(np.diff(centroids) >= 0)
    distances = np.abs(values[:, None] - centroids[None, :].astype(np.float64))
    assert np.allclose(distances[np.arange(values.size), labels], distances.min(axis=1))


def test_linear_initialisation_keeps_the_extremes():
    # Han et al. 2016 §3.2: linear init spans [min, max], so rare large weights keep a centroid.
    values = np.r_[np.random.default_rng(0).normal(0, 0.05, 1000), [1.5, -1.4]]
    centroids, _ = sharing.kmeans_1d(values, 8)
    assert centroids.max() == pytest.approx(1.5) and centroids.min() == pytest.approx(-1.4)


def test_pruned_kernel_reserves_index_zero_for_exact_zeros():
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(30, 20)).astype(np.float32)
    kernel[rng.random(kernel.shape) < 0.7] = 0.0
    codebook, indices, zero_code = sharing.cluster_kernel(kernel, 4)
    assert zero_code and codebook.size == 16 and codebook[0] == 0.0
    np.testing.assert_array_equal(indices == 0, kernel == 0)
    shared = codebook[indices]
    assert np.all(np.abs(shared - kernel)[kernel != 0] <= np.abs(kernel).max() / 8)


def _model(conv):
    if conv:
        return tf.keras.Sequential(
            [
                tf.keras.layers.Conv2D(4, 3, input_shape=(6, 6, 2), name="conv"),
                tf.keras.layers.Flatten(),
                tf.keras.layers.Dense(3, name="out"),
            ]
        )
    return tf.keras.Sequential(
        [
            tf.keras.layers.Dense(6, input_shape=(5,), name="hidden"),
            tf.keras.layers.Dense(3, name="out"),
        ]
    )


@pytest.mark.parametrize("conv", [False, True])
def test_centroid_gradient_and_update_equal_the_summed_member_gradients(conv):
    x = np.random.default_rng(2).normal(size=(7, *((6, 6, 2) if conv else (5,)))).astype("f4")
    target = np.random.default_rng(3).normal(size=(7, 3)).astype("f4")
    shared = sharing.share_weights(pruning.magnitude_prune(_model(conv), 0.5), 3)
    wrapper = shared.layers[0]
    indices = wrapper.indices.numpy()

    # Independent reference: the same network as plain layers with the shared kernel, ∂L/∂W
    # by TensorFlow's autodiff, then summed per codebook index with numpy.
    plain = sharing.strip_sharing(shared)
    kernel = plain.layers[0].kernel

    def loss_of(model):
        return tf.reduce_sum((model(x) - target) ** 2)

    with tf.GradientTape() as tape:
        loss = loss_of(plain)
    grad_w = tape.gradient(loss, kernel).numpy()
    expected = np.array([grad_w[indices == k].sum() for k in range(8)])
    expected[0] = 0.0  # index 0 is the pruned weights' exact zero: no gradient

    with tf.GradientTape() as tape:
        loss = loss_of(shared)
    grad_c = tf.convert_to_tensor(tape.gradient(loss, wrapper.centroids)).numpy()
    np.testing.assert_allclose(grad_c, expected, rtol=1e-5, atol=1e-5)

    # One SGD step moves each centroid by −lr·Σ member gradients; indices stay fixed.
    before = wrapper.centroids.numpy().copy()
    shared.compile(optimizer=tf.keras.optimizers.SGD(0.01), loss="mse")
    shared.train_on_batch(x, target)
    scale = 1.0 / target.size  # Keras' mse is the mean (over batch and outputs) of the sum above
    np.testing.assert_allclose(
        wrapper.centroids.numpy() - before, -0.01 * scale * expected, rtol=1e-4, atol=1e-7
    )
    np.testing.assert_array_equal(wrapper.indices.numpy(), indices)


def test_fit_keeps_indices_zeros_and_codebook_size():
    x = np.random.default_rng(4).normal(size=(64, 5)).astype("f4")
    y = np.random.default_rng(5).normal(size=(64, 3)).astype("f4")
    pruned = pruning.magnitude_prune(_model(False), 0.6)
    shared = sharing.share_weights(pruned, 2)
    indices = [layer.indices.numpy().copy() for layer in shared.layers]
    shared.compile(optimizer=tf.keras.optimizers.Adam(0.05), loss="mse")
    shared.fit(x, y, epochs=3, batch_size=16, verbose=0)
    stripped = sharing.strip_sharing(shared)
    for wrapper, before, layer, source in zip(
        shared.layers, indices, stripped.layers, pruned.layers, strict=True
    ):
        np.testing.assert_array_equal(wrapper.indices.numpy(), before)
        kernel = layer.kernel.numpy()
        np.testing.assert_array_equal(kernel == 0, source.kernel.numpy() == 0)
        assert np.unique(kernel).size <= 4
    names = [w.name for w in shared.trainable_weights]
    assert not any(name.endswith("/kernel:0") for name in names)
    assert sum(name.endswith("centroids:0") for name in names) == 2
    np.testing.assert_allclose(stripped.predict(x, verbose=0), shared.predict(x, verbose=0))


def test_quantized_kernels_are_not_shared():
    layer = kl.TernaryDense(4)
    layer.build((None, 3))
    assert not sharing.is_shareable(layer)
    with pytest.raises(ValueError, match="already quantizes its kernel"):
        sharing.SharedWeights(layer, bits=4)
    with pytest.raises(ValueError, match="bits"):
        sharing.SharedWeights(tf.keras.layers.Dense(3), bits=0)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_shared_model_round_trips(tmp_path, suffix):
    x = np.random.default_rng(6).normal(size=(5, 6, 6, 2)).astype("f4")
    shared = sharing.share_weights(pruning.magnitude_prune(_model(True), 0.5), {"conv": 5})
    assert [type(layer).__name__ for layer in shared.layers] == [
        "SharedWeights",
        "Flatten",
        "Dense",
    ]
    path = str(tmp_path / f"shared{suffix}")
    shared.save(path)
    loaded = tf.keras.models.load_model(path, compile=False)
    assert loaded.layers[0].bits == 5 and loaded.layers[0].zero_code
    for a, b in zip(shared.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), shared.predict(x, verbose=0))
