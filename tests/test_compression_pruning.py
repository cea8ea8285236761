"""Magnitude pruning: persistent masks, no gradient at pruned weights, growing thresholds."""

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import layers as kl
from kbnn.compression import layers as klayers
from kbnn.compression import pruning

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_optimization as tfmot


def _mlp(ternary=False):
    middle = kl.TernaryDense(12, name="mid") if ternary else tf.keras.layers.Dense(12, name="mid")
    return tf.keras.Sequential(
        [
            tf.keras.layers.Dense(16, activation="relu", input_shape=(8,), name="first"),
            middle,
            tf.keras.layers.Dense(3, name="last"),
        ]
    )


def _convnet():
    return tf.keras.Sequential(
        [
            tf.keras.layers.Conv2D(6, 3, input_shape=(8, 8, 1), name="conv"),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(3, name="last"),
        ]
    )


def _data(shape, n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, *shape)).astype("float32"), rng.integers(0, 3, n)


def _compile(model, optimizer=None):
    model.compile(
        optimizer=optimizer or tf.keras.optimizers.Adam(0.05),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )


def _kernels_and_masks(model):
    for wrapper in model.layers:
        if isinstance(wrapper, pruning.PruneLowMagnitude):
            yield wrapper, klayers.kernel_variable(wrapper.layer), wrapper.kernel_mask()


@pytest.mark.parametrize(
    "build,shape", [(_mlp, (8,)), (lambda: _mlp(ternary=True), (8,)), (_convnet, (8, 8, 1))]
)
def test_masks_hold_through_fit_and_pruned_weights_get_no_gradient(build, shape):
    x, y = _data(shape)
    model = pruning.prune_low_magnitude(build(), 0.6)
    _compile(model)  # Adam: its momentum would move pruned weights if they had any gradient
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x, training=True) ** 2)
    wrapped = list(_kernels_and_masks(model))
    gradients = tape.gradient(loss, [kernel for _, kernel, _ in wrapped])
    for (wrapper, kernel, mask), gradient in zip(wrapped, gradients, strict=True):
        mask = mask.numpy()
        assert 0.35 < 1 - mask.mean() < 0.65, wrapper.name
        assert np.all(kernel.numpy()[mask == 0] == 0), wrapper.name  # zeros stay zero
        assert np.all(gradient.numpy()[mask == 0] == 0), wrapper.name  # and get no gradient
        assert np.any(gradient.numpy()[mask == 1] != 0), wrapper.name


def test_tfmot_wrapper_alone_lets_gradient_reach_pruned_weights():
    """Why kbnn subclasses tfmot's wrapper: tfmot's forward reads W, not W⊙M."""
    x, _ = _data((8,))
    base = _mlp()
    model = tfmot.sparsity.keras.prune_low_magnitude(
        base, pruning_schedule=tfmot.sparsity.keras.ConstantSparsity(0.6, 0, frequency=1)
    )
    model.optimizer = None
    for layer in model.layers:
        layer.pruning_step.assign(1)
    model(x, training=True)  # updates the masks
    wrapper = model.layers[0]
    kernel, mask = wrapper.pruning_vars[0][0], wrapper.pruning_vars[0][1]
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x, training=True) ** 2)
    gradient = tape.gradient(loss, kernel).numpy()
    assert np.any(gradient[mask.numpy() == 0] != 0)


def test_stripped_model_is_exactly_sparse_and_computes_the_same():
    x, y = _data((8,))
    model = pruning.prune_low_magnitude(_mlp(), {"first": 0.75, "last": 0.5})
    _compile(model)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    stripped = pruning.strip_pruning(model)
    assert [type(layer) for layer in stripped.layers] == [tf.keras.layers.Dense] * 3
    sparsity = pruning.kernel_sparsity(stripped)
    assert sparsity == pytest.approx({"first": 0.75, "mid": 0.0, "last": 0.5}, abs=0.01)
    kernel = stripped.get_layer("first").kernel.numpy()
    assert not np.any(np.signbit(kernel[kernel == 0]))  # +0.0, no −0.0 left by W·M
    np.testing.assert_array_equal(stripped.predict(x, verbose=0), model.predict(x, verbose=0))


def test_iterative_schedule_grows_the_threshold_and_masks_only_shrink():
    x, y = _data((8,), n=64)
    schedule = pruning.IterativeSparsity([0.3, 0.6, 0.8], steps_per_round=4)
    model = pruning.prune_low_magnitude(_mlp(), {"first": schedule})
    _compile(model)
    history = []

    class Record(tf.keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            wrapper = model.layers[0]
            history.append(
                (wrapper.kernel_mask().numpy().copy(), float(wrapper.pruning_vars[0][2].numpy()))
            )

    model.fit(
        x,
        y,
        batch_size=16,
        epochs=4,
        shuffle=False,
        verbose=0,
        callbacks=[pruning.UpdatePruningStep(), Record()],
    )
    sparsities = [1 - mask.mean() for mask, _ in history]
    assert sparsities[0] == pytest.approx(0.3, abs=0.01)
    assert sparsities[4] == pytest.approx(0.6, abs=0.01)
    assert sparsities[8] == pytest.approx(0.8, abs=0.01)
    assert sparsities[-1] == pytest.approx(0.8, abs=0.01)
    thresholds = [threshold for _, threshold in history]
    assert thresholds[0] < thresholds[4] < thresholds[8]
    for (before, _), (after, _) in zip(history, history[1:], strict=False):
        assert np.all(after <= before)  # a pruned connection never comes back


def test_iterative_schedule_values():
    schedule = pruning.IterativeSparsity([0.5, 0.75], steps_per_round=10, begin_step=1)
    calls = {step: schedule(step) for step in (0, 1, 2, 11, 12, 21, 30)}
    assert [bool(calls[s][0]) for s in (0, 1, 2, 11, 12, 21, 30)] == [
        False,
        True,
        False,
        True,
        False,
        False,
        False,
    ]
    assert float(calls[1][1]) == 0.5 and float(calls[11][1]) == 0.75
    assert float(calls[30][1]) == 0.75
    with pytest.raises(ValueError, match="must not decrease"):
        pruning.IterativeSparsity([0.8, 0.5], steps_per_round=1)
    with pytest.raises(ValueError, match="steps_per_round"):
        pruning.IterativeSparsity([0.5], steps_per_round=0)


def test_iterative_targets_prune_the_same_fraction_of_what_remains():
    targets = pruning.iterative_targets(0.9, 3)
    remaining = [1.0] + [1 - t for t in targets]
    ratios = [b / a for a, b in zip(remaining, remaining[1:], strict=False)]
    assert targets[-1] == pytest.approx(0.9)
    assert ratios == pytest.approx([0.1 ** (1 / 3)] * 3)


def test_magnitude_mask_keeps_the_largest_weights():
    weights = np.array([[0.1, -3.0, 0.5], [2.0, -0.2, 0.05]], np.float32)
    mask = pruning.magnitude_mask(weights, 0.5)
    np.testing.assert_array_equal(mask, [[0, 1, 1], [1, 0, 0]])


def test_one_shot_pruning_leaves_the_input_model_untouched():
    model = _mlp()
    before = [w.copy() for w in model.get_weights()]
    pruned = pruning.magnitude_prune(model, {"first": 0.9})
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert pruning.kernel_sparsity(pruned)["first"] == pytest.approx(0.9, abs=0.01)
    assert pruning.kernel_sparsity(pruned)["mid"] == 0.0


def test_sensitivity_scan_matches_manual_pruning():
    x, _ = _data((8,), n=32)
    model = _mlp()
    reference = model.predict(x, verbose=0)

    def evaluate(m):
        return float(np.abs(m.predict(x, verbose=0) - reference).mean())

    points = pruning.sensitivity_scan(
        model, evaluate, sparsities=(0.0, 0.5, 0.9), layers=["first", "last"]
    )
    assert [(p.layer, p.sparsity) for p in points] == [
        ("first", 0.0),
        ("first", 0.5),
        ("first", 0.9),
        ("last", 0.0),
        ("last", 0.5),
        ("last", 0.9),
    ]
    manual = pruning.magnitude_prune(model, {"last": 0.5})
    assert points[4].metric == pytest.approx(evaluate(manual))
    assert points[0].metric == 0.0 and points[1].metric < points[2].metric
    np.testing.assert_array_equal(model.predict(x, verbose=0), reference)  # restored


def test_sign_quantized_layers_are_not_prunable():
    binary = lq.layers.QuantDense(4, kernel_quantizer="ste_sign", input_shape=(3,))
    assert not pruning.is_prunable(binary)
    with pytest.raises(ValueError, match="maps a zero weight to a nonzero"):
        pruning.PruneLowMagnitude(binary)
    assert pruning.is_prunable(kl.TernaryDense(4))
    assert pruning.is_prunable(kl.FiveLevelDense(4))
    model = tf.keras.Sequential([binary, tf.keras.layers.Dense(2, name="out")])
    with pytest.raises(ValueError, match="not prunable"):
        pruning.prune_low_magnitude(model, {binary.name: 0.5})
    with pytest.raises(ValueError, match="no layer named"):
        pruning.prune_low_magnitude(model, {"nope": 0.5})
    wrapped = pruning.prune_low_magnitude(model, 0.5)  # skips the binary layer
    assert [type(layer).__name__ for layer in wrapped.layers] == ["QuantDense", "PruneLowMagnitude"]


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_wrapped_model_round_trips(tmp_path, suffix):
    x, y = _data((8,))
    schedule = pruning.IterativeSparsity([0.4, 0.7], steps_per_round=2)
    model = pruning.prune_low_magnitude(_mlp(ternary=True), schedule)
    _compile(model)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    path = str(tmp_path / f"pruned{suffix}")
    model.save(path)
    loaded = tf.keras.models.load_model(path, compile=False)
    assert isinstance(loaded.layers[1], pruning.PruneLowMagnitude)
    assert loaded.layers[0].pruning_schedule.get_config() == schedule.get_config()
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
