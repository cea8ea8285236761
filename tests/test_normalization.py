"""ShiftBatchNormalization against an independent numpy implementation of BinaryNet Alg. 3."""

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import normalization
from kbnn.normalization import ShiftBatchNormalization

import larq as lq
import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf
from helpers import np_ap2
from larq_compute_engine.tflite.python.interpreter import Interpreter
from tensorflow.lite.python import schema_py_generated as tflite_schema


def np_sbn_train(x, gamma, beta, epsilon, axis=-1):
    """(y, batch mean, batch inverse std) of shift-based BN in training mode."""
    axis = axis % x.ndim
    reduce = tuple(i for i in range(x.ndim) if i != axis)
    shape = [1] * x.ndim
    shape[axis] = -1
    mean = x.mean(axis=reduce, keepdims=True)
    centred = x - mean
    variance = (centred * np_ap2(centred)).mean(axis=reduce, keepdims=True)
    inv_std = 1.0 / np.sqrt(variance + epsilon)
    y = np_ap2(gamma).reshape(shape) * centred * np_ap2(inv_std) + beta.reshape(shape)
    return y, mean.reshape(-1), inv_std.reshape(-1)


def np_sbn_inference(x, gamma, beta, moving_mean, moving_inv_std, axis=-1):
    shape = [1] * x.ndim
    shape[axis % x.ndim] = -1
    scale = (np_ap2(gamma) * np_ap2(moving_inv_std)).reshape(shape)
    return scale * (x - moving_mean.reshape(shape)) + beta.reshape(shape)


def _random_params(rng, channels):
    gamma = rng.uniform(0.2, 3.0, channels) * rng.choice([-1.0, 1.0], channels)
    beta = rng.normal(size=channels)
    moving_mean = rng.normal(size=channels)
    moving_inv_std = rng.uniform(0.05, 4.0, channels)
    return [p.astype(np.float32) for p in (gamma, beta, moving_mean, moving_inv_std)]


SHAPES = [((16, 5), -1), ((6, 5, 4, 3), -1), ((6, 3, 5, 4), 1)]


@pytest.mark.parametrize("shape, axis", SHAPES)
def test_training_forward_and_moving_statistics_match_numpy(shape, axis):
    rng = np.random.default_rng(0)
    channels = shape[axis]
    layer = ShiftBatchNormalization(axis=axis, momentum=0.8, epsilon=1e-3)
    layer.build(shape)
    gamma, beta, _, _ = _random_params(rng, channels)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)

    moving_mean, moving_inv_std = np.zeros(channels), np.ones(channels)
    for _ in range(3):
        x = (rng.normal(size=shape) * 3 + 1.5).astype(np.float32)
        y = layer(x, training=True).numpy()
        expected, mean, inv_std = np_sbn_train(x, gamma, beta, 1e-3, axis)
        np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
        moving_mean = 0.8 * moving_mean + 0.2 * mean
        moving_inv_std = 0.8 * moving_inv_std + 0.2 * inv_std
        np.testing.assert_allclose(layer.moving_mean.numpy(), moving_mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.moving_inv_std.numpy(), moving_inv_std, rtol=1e-5)


@pytest.mark.parametrize("shape, axis", SHAPES)
def test_inference_forward_matches_numpy_and_leaves_statistics(shape, axis):
    rng = np.random.default_rng(1)
    layer = ShiftBatchNormalization(axis=axis)
    layer.build(shape)
    params = _random_params(rng, shape[axis])
    layer.set_weights(params)
    x = rng.normal(size=shape).astype(np.float32)
    y = layer(x, training=False).numpy()
    np.testing.assert_allclose(y, np_sbn_inference(x, *params, axis=axis), rtol=1e-5, atol=1e-5)
    for variable, value in zip(layer.weights, params, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value)


def test_center_and_scale_off():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(8, 3)).astype(np.float32) * 5
    layer = ShiftBatchNormalization(center=False, scale=False)
    y = layer(x, training=True).numpy()
    assert [w.name.split("/")[-1].split(":")[0] for w in layer.weights] == [
        "moving_mean",
        "moving_inv_std",
    ]
    expected, _, _ = np_sbn_train(x, np.ones(3), np.zeros(3), layer.epsilon)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_gradient_is_the_straight_through_surrogate():
    """Backward, every AP2 is the identity; the rest is differentiated exactly."""
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(10, 4)) * 2, tf.float32)
    weights = tf.constant(rng.normal(size=(10, 4)), tf.float32)
    layer = ShiftBatchNormalization(epsilon=1e-3)
    layer.build(x.shape)
    gamma, beta, _, _ = _random_params(rng, 4)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)

    def ste_ap2(u):  # forward AP2 from numpy, backward identity
        value = tf.numpy_function(lambda a: np_ap2(a).astype(np.float32), [u], tf.float32)
        return u + tf.stop_gradient(value - u)

    def surrogate(x, gamma, beta):
        mean = tf.reduce_mean(x, axis=0)
        centred = x - mean
        variance = tf.reduce_mean(centred * ste_ap2(centred), axis=0)
        return ste_ap2(gamma) * centred * ste_ap2(tf.math.rsqrt(variance + 1e-3)) + beta

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x, training=True) * weights)
        reference = tf.reduce_sum(surrogate(x, layer.gamma, layer.beta) * weights)
    for ours, theirs in zip(
        tape.gradient(loss, [x, layer.gamma, layer.beta]),
        tape.gradient(reference, [x, layer.gamma, layer.beta]),
        strict=True,
    ):
        assert np.all(np.isfinite(ours.numpy()))
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-5)
    assert layer.moving_mean.trainable is False


def test_frozen_layer_uses_moving_statistics():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    layer = ShiftBatchNormalization()
    layer.build(x.shape)
    layer.set_weights(_random_params(rng, 3))
    before = [w.numpy() for w in layer.weights]
    layer.trainable = False
    np.testing.assert_allclose(
        layer(x, training=True).numpy(), np_sbn_inference(x, *before), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(layer.moving_mean.numpy(), before[2])


def _stats_model(momentum, synchronized=False):
    inputs = tf.keras.Input((4, 4, 3))
    x = ShiftBatchNormalization(momentum=momentum, synchronized=synchronized, name="sbn")(inputs)
    x = tf.keras.layers.Flatten()(x)
    outputs = tf.keras.layers.Dense(2)(x)
    return tf.keras.Model(inputs, outputs)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_updates_moving_statistics(jit_compile):
    """With momentum 0 the moving statistics after one full-batch step are the batch's own."""
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(32, 4, 4, 3)) * 2 + 0.5).astype(np.float32)
    y = rng.normal(size=(32, 2)).astype(np.float32)
    model = _stats_model(momentum=0.0)
    model.compile("sgd", "mse", jit_compile=jit_compile)
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    sbn = model.get_layer("sbn")
    gamma, beta = sbn.gamma.numpy(), sbn.beta.numpy()
    _, mean, inv_std = np_sbn_train(x, gamma, beta, sbn.epsilon)
    np.testing.assert_allclose(sbn.moving_mean.numpy(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sbn.moving_inv_std.numpy(), inv_std, rtol=1e-5)


@pytest.mark.parametrize("synchronized", [False, True])
def test_config_round_trip(synchronized):
    layer = ShiftBatchNormalization(
        axis=1,
        momentum=0.7,
        epsilon=1e-2,
        center=False,
        gamma_constraint="non_neg",
        name="s",
        synchronized=synchronized,
    )
    config = layer.get_config()
    assert config["synchronized"] is synchronized
    clone = ShiftBatchNormalization.from_config(config)
    assert clone.get_config() == config
    assert (clone.axis, clone.momentum, clone.epsilon, clone.center) == (1, 0.7, 1e-2, False)
    assert clone.synchronized is synchronized
    serialized = tf.keras.layers.serialize(layer)
    deserialized = tf.keras.layers.deserialize(serialized)
    assert type(deserialized) is ShiftBatchNormalization
    assert deserialized.synchronized is synchronized


def test_config_without_synchronized_loads_unsynchronized():
    """Configs saved before the option existed (the pretrained zoo files) still load."""
    config = ShiftBatchNormalization(name="s").get_config()
    del config["synchronized"]
    assert ShiftBatchNormalization.from_config(config).synchronized is False


def test_synchronized_without_strategy_is_bit_identical():
    rng = np.random.default_rng(9)
    x = (rng.normal(size=(16, 4, 4, 3)) * 2 + 0.5).astype(np.float32)
    layers = [ShiftBatchNormalization(momentum=0.5, synchronized=s) for s in (False, True)]
    params = _random_params(rng, 3)
    for layer in layers:
        layer.build(x.shape)
        layer.set_weights(params)
    plain, synced = ([layer(x, training=True).numpy(), *layer.get_weights()] for layer in layers)
    for a, b in zip(plain, synced, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "suffix, synchronized", [(".keras", False), (".h5", False), (".keras", True), (".h5", True)]
)
def test_save_load_round_trip(tmp_path, suffix, synchronized):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(16, 4, 4, 3)).astype(np.float32)
    model = _stats_model(momentum=0.5, synchronized=synchronized)
    model.compile("adam", "mse")
    model.fit(x, rng.normal(size=(16, 2)), batch_size=8, epochs=2, verbose=0)
    path = tmp_path / f"sbn{suffix}"
    model.save(path)
    loaded = tf.keras.models.load_model(path)
    assert type(loaded.get_layer("sbn")) is ShiftBatchNormalization
    assert loaded.get_layer("sbn").synchronized is synchronized
    for a, b in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert loaded.get_layer("sbn").moving_inv_std.numpy().tolist() != [1.0, 1.0, 1.0]
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"axis": "channels"}, "axis"),
        ({"axis": [1, 2]}, "axis"),
        ({"momentum": 1.5}, "momentum"),
        ({"epsilon": 0.0}, "epsilon"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ShiftBatchNormalization(**kwargs)


def test_bad_input_shapes_are_named():
    with pytest.raises(ValueError, match="axis"):
        ShiftBatchNormalization(axis=4).build((2, 3, 3, 5))
    with pytest.raises(ValueError, match="axis"):
        ShiftBatchNormalization(axis=0).build((2, 5))
    with pytest.raises(ValueError, match="must be known"):
        ShiftBatchNormalization().build((2, None))
    with pytest.raises(ValueError, match="channel axis"):
        ShiftBatchNormalization().build((5,))


def test_get_builds_either_normalisation():
    assert type(normalization.get("shift", momentum=0.5)) is ShiftBatchNormalization
    assert normalization.get("SBN").momentum == 0.9
    bn = normalization.get("batchnorm", epsilon=1e-4)
    assert type(bn) is tf.keras.layers.BatchNormalization and bn.epsilon == 1e-4
    layer = ShiftBatchNormalization()
    assert normalization.get(layer) is layer
    with pytest.raises(ValueError, match="bn"):
        normalization.get("layernorm")
    assert kbnn.layers.ShiftBatchNormalization is ShiftBatchNormalization


# -- LCE conversion ---------------------------------------------------------------------------

BINARY = dict(
    input_quantizer="ste_sign",
    kernel_quantizer="ste_sign",
    kernel_constraint="weight_clip",
    padding="same",
    pad_values=1.0,
    use_bias=False,
)


def _op_names(flatbuffer):
    """The name of every operator in the flatbuffer's main graph, in order."""
    model = tflite_schema.Model.GetRootAsModel(flatbuffer, 0)
    builtin = {v: k for k, v in vars(tflite_schema.BuiltinOperator).items() if k.isupper()}
    codes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        if code.CustomCode():
            codes.append(code.CustomCode().decode())
        else:
            codes.append(builtin[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())])
    graph = model.Subgraphs(0)
    return [codes[graph.Operators(i).OpcodeIndex()] for i in range(graph.OperatorsLength())]


def _converted(layers, rng):
    model = tf.keras.Sequential([tf.keras.Input((8, 8, 32)), *layers])
    sbn = next(layer for layer in model.layers if isinstance(layer, ShiftBatchNormalization))
    sbn.set_weights(_random_params(rng, 32))
    flatbuffer = lce.convert_keras_model(model)
    x = rng.normal(size=(2, 8, 8, 32)).astype(np.float32)
    expected = model(x, training=False).numpy()
    got = Interpreter(flatbuffer).predict(x)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3 * np.abs(expected).max())
    return _op_names(flatbuffer)


def test_lce_fuses_inference_form_into_bconv():
    ops = _converted(
        [lq.layers.QuantConv2D(32, 3, **BINARY), ShiftBatchNormalization()],
        np.random.default_rng(7),
    )
    assert "LceBconv2d" in ops
    assert "MUL" not in ops and "ADD" not in ops, ops


def test_lce_converts_seed_order_to_float_ops():
    """Seed BinaryNet order conv → maxpool → SBN: the SBN stays one MUL + ADD."""
    ops = _converted(
        [
            lq.layers.QuantConv2D(32, 3, **BINARY),
            tf.keras.layers.MaxPool2D(),
            ShiftBatchNormalization(),
            lq.layers.QuantConv2D(32, 3, **BINARY),
        ],
        np.random.default_rng(8),
    )
    assert ops.count("LceBconv2d") == 2
    assert "MUL" in ops and "ADD" in ops
