"""ShiftAdaMax (BinaryNet Alg. 4) against an independent numpy implementation, and its Keras life."""

import importlib.util
import math
import pathlib

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import optimizers
from kbnn.normalization import ShiftBatchNormalization
from kbnn.optimizers import LegacyShiftAdaMax, ShiftAdaMax

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from helpers import np_ap2

OPTIMIZERS = [ShiftAdaMax, LegacyShiftAdaMax]


def np_shift_adamax(theta, grads, lr, beta_1=0.9, beta_2=0.999, eps=2.0**-27, lr_scale=1.0):
    """Apply the issue's formulas for every gradient in `grads`; returns θ, m, v."""
    theta = np.array(theta, dtype=np.float64)
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        m = beta_1 * m + (1 - beta_1) * g
        v = np.maximum(beta_2 * v, np.abs(g))
        step = np_ap2(lr(t - 1) * lr_scale / (1 - beta_1**t))
        theta = theta - step * m / (np_ap2(v) + eps)
    return theta, m, v


def _variables_and_gradients(rng, steps):
    shapes = {"conv": (3, 3, 2, 4), "dense": (6, 3), "bias": (3,)}
    initial = {k: rng.uniform(-1, 1, s).astype(np.float32) for k, s in shapes.items()}
    grads = {
        k: [
            (rng.normal(size=s) * 10.0 ** rng.integers(-3, 1)).astype(np.float32)
            for _ in range(steps)
        ]
        for k, s in shapes.items()
    }
    for k in grads:  # some coordinates never see a gradient: exercises v = 0 and ε
        grads[k] = [np.where(np.arange(g.size).reshape(g.shape) % 5 == 0, 0.0, g) for g in grads[k]]
    return initial, grads


def _optimizer_slots(optimizer, variable):
    if isinstance(optimizer, LegacyShiftAdaMax):
        return optimizer.get_slot(variable, "m"), optimizer.get_slot(variable, "v")
    index = optimizer._index_dict[optimizer._var_key(variable)]
    return optimizer._m[index], optimizer._u[index]


@pytest.mark.parametrize("cls", OPTIMIZERS)
@pytest.mark.parametrize("glorot", [False, True])
def test_several_steps_match_numpy(cls, glorot):
    rng = np.random.default_rng(0)
    steps = 6
    initial, grads = _variables_and_gradients(rng, steps)
    variables = {k: tf.Variable(v) for k, v in initial.items()}
    optimizer = cls(learning_rate=0.01, beta_1=0.8, beta_2=0.95, glorot_lr_scale=glorot)
    for t in range(steps):
        optimizer.apply_gradients([(tf.constant(grads[k][t]), variables[k]) for k in variables])
    fans = {"conv": (18, 36), "dense": (6, 3), "bias": None}
    for k, variable in variables.items():
        scale = 1.0 / math.sqrt(1.5 / sum(fans[k])) if glorot and fans[k] else 1.0
        theta, m, v = np_shift_adamax(
            initial[k], grads[k], lambda _: 0.01, beta_1=0.8, beta_2=0.95, lr_scale=scale
        )
        np.testing.assert_allclose(variable.numpy(), theta, rtol=1e-5, atol=1e-6, err_msg=k)
        slot_m, slot_v = _optimizer_slots(optimizer, variable)
        np.testing.assert_allclose(slot_m.numpy(), m, rtol=1e-5, atol=1e-8, err_msg=k)
        np.testing.assert_allclose(slot_v.numpy(), v, rtol=1e-5, atol=1e-8, err_msg=k)


@pytest.mark.parametrize("cls", OPTIMIZERS)
def test_learning_rate_schedule_is_used_before_ap2(cls):
    rng = np.random.default_rng(1)
    schedule = tf.keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=1, decay_rate=0.7)
    theta0 = rng.uniform(-1, 1, (4, 3)).astype(np.float32)
    grads = [rng.normal(size=(4, 3)).astype(np.float32) for _ in range(4)]
    variable = tf.Variable(theta0)
    optimizer = cls(learning_rate=schedule)
    for g in grads:
        optimizer.apply_gradients([(tf.constant(g), variable)])
    theta, _, _ = np_shift_adamax(theta0, grads, lambda i: 0.05 * 0.7**i)
    np.testing.assert_allclose(variable.numpy(), theta, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", OPTIMIZERS)
def test_sparse_gradients_equal_their_dense_form(cls):
    rng = np.random.default_rng(2)
    table0 = rng.uniform(-1, 1, (5, 3)).astype(np.float32)
    rows = [np.array([0, 3, 3]), np.array([1, 4, 0])]
    values = [rng.normal(size=(3, 3)).astype(np.float32) for _ in rows]
    dense = []
    for r, val in zip(rows, values, strict=True):
        g = np.zeros_like(table0)
        np.add.at(g, r, val)
        dense.append(g)
    variable = tf.Variable(table0)
    optimizer = cls(learning_rate=0.03)
    for r, val in zip(rows, values, strict=True):
        slices = tf.IndexedSlices(tf.constant(val), tf.constant(r), tf.constant(table0.shape))
        optimizer.apply_gradients([(slices, variable)])
    theta, _, _ = np_shift_adamax(table0, dense, lambda _: 0.03)
    np.testing.assert_allclose(variable.numpy(), theta, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", OPTIMIZERS)
def test_latent_weights_are_clipped_by_the_kernel_constraint(cls):
    theta0 = np.array([[0.99, -0.98, 0.2, -0.5]], np.float32)
    grad = np.array([[-1.0, 1.0, 0.5, 0.0]], np.float32)
    variable = tf.Variable(theta0, constraint=lq.constraints.WeightClip(1.0))
    optimizer = cls(learning_rate=0.5)
    optimizer.apply_gradients([(tf.constant(grad), variable)])
    theta, _, _ = np_shift_adamax(theta0, [grad], lambda _: 0.5)
    np.testing.assert_allclose(variable.numpy(), np.clip(theta, -1, 1), rtol=1e-6)
    assert variable.numpy()[0, 0] == 1.0 and variable.numpy()[0, 1] == -1.0


def test_glorot_lr_scale_formula():
    assert optimizers.glorot_lr_scale((784, 256)) == pytest.approx(1 / math.sqrt(1.5 / 1040))
    conv = 1 / math.sqrt(1.5 / (5 * 5 * 32 + 5 * 5 * 64))
    assert optimizers.glorot_lr_scale((5, 5, 32, 64)) == pytest.approx(conv)
    assert optimizers.glorot_lr_scale((64,)) == 1.0
    assert optimizers.glorot_lr_scale(()) == 1.0


@pytest.mark.parametrize("cls", OPTIMIZERS)
def test_config_round_trip(cls):
    optimizer = cls(
        learning_rate=2.0**-7, beta_1=0.8, beta_2=0.99, epsilon=1e-6, glorot_lr_scale=True
    )
    config = optimizer.get_config()
    assert config["glorot_lr_scale"] is True and config["epsilon"] == 1e-6
    clone = cls.from_config(config)
    assert clone.get_config() == config
    restored = tf.keras.optimizers.deserialize(
        tf.keras.optimizers.serialize(optimizer), use_legacy_optimizer=cls is LegacyShiftAdaMax
    )
    assert type(restored) is cls and restored.get_config() == config


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"beta_1": 1.0}, "beta_1"),
        ({"beta_2": -0.1}, "beta_2"),
        ({"epsilon": 0}, "epsilon"),
        ({"glorot_lr_scale": "yes"}, "glorot_lr_scale"),
    ],
)
@pytest.mark.parametrize("cls", OPTIMIZERS)
def test_bad_arguments_are_named(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_get():
    assert type(optimizers.get("shift_adamax")) is ShiftAdaMax
    assert optimizers.get("Shift-AdaMax", learning_rate=0.1).get_config()["learning_rate"] == (
        pytest.approx(0.1)
    )
    assert type(optimizers.get("shift_adamax", legacy=True)) is LegacyShiftAdaMax
    assert type(optimizers.get("adam")) is tf.keras.optimizers.Adam
    assert type(optimizers.get("adam", legacy=True)) is tf.keras.optimizers.legacy.Adam
    bop = optimizers.get("bop")
    assert isinstance(bop, lq.optimizers.CaseOptimizer)
    assert isinstance(bop.optimizers[0], lq.optimizers.Bop)
    instance = ShiftAdaMax()
    assert optimizers.get(instance) is instance
    config = tf.keras.optimizers.serialize(ShiftAdaMax(learning_rate=0.25))
    assert optimizers.get(config).get_config()["learning_rate"] == 0.25
    with pytest.raises(ValueError, match="optimizer"):
        optimizers.get("sgdd")
    with pytest.raises(ValueError, match="optimizer"):
        optimizers.get(3)
    with pytest.raises(ValueError, match="learning_rate"):
        optimizers.get("adam", learning_rate=-1.0)


# -- inside Keras models ----------------------------------------------------------------------

BINARY = dict(
    input_quantizer="ste_sign",
    kernel_quantizer="ste_sign",
    kernel_constraint="weight_clip",
    use_bias=False,
)


def _tiny_bnn():
    inputs = tf.keras.Input((6, 6, 1))
    x = lq.layers.QuantConv2D(
        4, 3, kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False
    )(inputs)
    x = ShiftBatchNormalization()(x)
    x = tf.keras.layers.Flatten()(x)
    x = lq.layers.QuantDense(3, **BINARY)(x)
    x = ShiftBatchNormalization()(x)
    outputs = tf.keras.layers.Dense(3, activation="softmax")(x)
    return tf.keras.Model(inputs, outputs)


def _data(n=32):
    rng = np.random.default_rng(3)
    return rng.normal(size=(n, 6, 6, 1)).astype(np.float32), rng.integers(0, 3, n)


def _optimizer_state(optimizer):
    variables = optimizer.variables() if callable(optimizer.variables) else optimizer.variables
    return [v.numpy() for v in variables]


@pytest.mark.parametrize(
    "cls, suffix",
    [(ShiftAdaMax, ".keras"), (ShiftAdaMax, ".h5"), (LegacyShiftAdaMax, ".h5")],
)
def test_optimizer_state_survives_save_and_load(tmp_path, cls, suffix):
    """Training on after loading gives exactly what training on without saving gives."""
    x, y = _data()
    model = _tiny_bnn()
    model.compile(cls(glorot_lr_scale=True), "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    path = tmp_path / f"model{suffix}"
    model.save(path)
    loaded = tf.keras.models.load_model(path)
    assert type(loaded.optimizer) is cls
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    state, loaded_state = _optimizer_state(model.optimizer), _optimizer_state(loaded.optimizer)
    assert len(state) == 1 + 2 * len(model.trainable_variables) == len(loaded_state)
    for a, b in zip(state, loaded_state, strict=True):
        np.testing.assert_array_equal(a, b)
    for m in (model, loaded):
        m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cls", OPTIMIZERS)
def test_checkpoint_round_trip(tmp_path, cls):
    x, y = _data()
    model = _tiny_bnn()
    model.compile(cls(), "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(str(tmp_path / "ck"))

    other = _tiny_bnn()
    other.compile(cls(), "sparse_categorical_crossentropy")
    other.fit(x[:8], y[:8], batch_size=8, epochs=1, verbose=0)  # creates the slots
    tf.train.Checkpoint(model=other, optimizer=other.optimizer).restore(path).assert_consumed()
    for a, b in zip(
        _optimizer_state(model.optimizer), _optimizer_state(other.optimizer), strict=True
    ):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls", OPTIMIZERS)
def test_fit_with_jit_compile_keeps_binary_kernels_clipped(cls):
    x, y = _data()
    model = _tiny_bnn()
    model.compile(
        cls(learning_rate=0.5, glorot_lr_scale=True),
        "sparse_categorical_crossentropy",
        jit_compile=True,
    )
    before = [w.numpy() for w in model.trainable_weights]
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert all(np.any(a != w.numpy()) for a, w in zip(before, model.trainable_weights, strict=True))
    for layer in model.layers:
        if isinstance(layer, lq.layers.QuantConv2D | lq.layers.QuantDense):
            assert np.abs(layer.kernel.numpy()).max() <= 1.0


def test_bop_case_optimizer_with_legacy_shift_adamax():
    """larq's Bop flips the binary kernels, LegacyShiftAdaMax trains the rest; config survives."""
    x, y = _data()
    model = _tiny_bnn()
    optimizer = lq.optimizers.CaseOptimizer(
        (lq.optimizers.Bop.is_binary_variable, lq.optimizers.Bop(threshold=1e-6, gamma=1e-2)),
        default_optimizer=LegacyShiftAdaMax(),
    )
    model.compile(optimizer, "sparse_categorical_crossentropy")
    float_kernel = model.layers[-1].kernel
    before = float_kernel.numpy()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    binary_kernels = [layer.kernel.numpy() for layer in model.layers[1:5:3]]
    assert all(set(np.unique(k)) <= {-1.0, 1.0} for k in binary_kernels)
    assert np.any(float_kernel.numpy() != before)
    restored = lq.optimizers.CaseOptimizer.from_config(optimizer.get_config())
    assert type(restored.default) is LegacyShiftAdaMax
    assert restored.default.get_config() == optimizer.default.get_config()


@pytest.mark.slow
def test_seed_binarynet_learns_mnist_with_sbn_and_shift_adamax(mnist_available):
    """Smoke test: SBN + ShiftAdaMax on real MNIST, > 90% test accuracy after 250 steps."""
    from kbnn.data import mnist

    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "sbn_shift_adamax.py"
    spec = importlib.util.spec_from_file_location("sbn_shift_adamax", path)
    experiment = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(experiment)
    model = experiment.seed_binarynet("shift")
    model.compile(ShiftAdaMax(2.0**-8), "sparse_categorical_crossentropy", metrics=["accuracy"])
    train = mnist("train", batch_size=100, shuffle=True, seed=0, repeat=True)
    model.fit(train, steps_per_epoch=250, epochs=1, verbose=0)
    test = mnist("test", batch_size=1000).take(3)
    _, accuracy = model.evaluate(test, verbose=0)
    assert accuracy > 0.90
