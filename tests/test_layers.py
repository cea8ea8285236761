"""kbnn.layers: defaults, numpy references, serialization, training (graph and XLA)."""

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import layers as kl
from kbnn import quantizers as kq

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

CONV_LAYERS = {
    "BinaryConv2D": lambda: kl.BinaryConv2D(4, 3, padding="same"),
    "BinaryConv2D-xnor": lambda: kl.BinaryConv2D(
        4, 3, padding="same", kernel_quantizer="xnor_weight", xnor_input_scaling=True
    ),
    "TernaryConv2D": lambda: kl.TernaryConv2D(4, 3, padding="same"),
    "FiveLevelConv2D": lambda: kl.FiveLevelConv2D(4, 3),
    "DorefaConv2D": lambda: kl.DorefaConv2D(4, 3, bit_w=2, bit_a=2, padding="same"),
}
DENSE_LAYERS = {
    "BinaryDense": lambda: kl.BinaryDense(5),
    "TernaryDense": lambda: kl.TernaryDense(5),
    "FiveLevelDense": lambda: kl.FiveLevelDense(5),
    "DorefaDense": lambda: kl.DorefaDense(5, bit_w=1, bit_a=3),
    "Sign": lambda: kl.Sign(),
    "GradientQuantizer": lambda: kl.GradientQuantizer(4, seed=1),
}


def _sign(x):
    return np.where(x >= 0, 1.0, -1.0)


def _np_conv(x, w, pad=0, pad_value=0.0):
    """Stride-1 2D correlation in numpy, input padded with `pad_value` on each side."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=pad_value)
    kh, kw = w.shape[:2]
    out_h, out_w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = np.zeros((x.shape[0], out_h, out_w, w.shape[-1]))
    for i in range(out_h):
        for j in range(out_w):
            out[:, i, j] = np.tensordot(x[:, i : i + kh, j : j + kw], w, axes=3)
    return out


def _image(seed=0, shape=(2, 6, 6, 3)):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Defaults
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layer,base,kernel_quantizer,input_quantizer",
    [
        (
            kl.BinaryConv2D(4, 3),
            lq.layers.QuantConv2D,
            lq.quantizers.SteSign,
            lq.quantizers.SteSign,
        ),
        (kl.BinaryDense(4), lq.layers.QuantDense, lq.quantizers.SteSign, lq.quantizers.SteSign),
        (kl.TernaryConv2D(4, 3), lq.layers.QuantConv2D, kq.TernaryWeight, type(None)),
        (kl.TernaryDense(4), lq.layers.QuantDense, kq.TernaryWeight, type(None)),
        (kl.FiveLevelConv2D(4, 3), lq.layers.QuantConv2D, kq.FiveLevelWeight, type(None)),
        (kl.FiveLevelDense(4), lq.layers.QuantDense, kq.FiveLevelWeight, type(None)),
        (kl.DorefaConv2D(4, 3), lq.layers.QuantConv2D, kq.DoReFaWeight, kq.DoReFaActivation),
        (kl.DorefaDense(4), lq.layers.QuantDense, kq.DoReFaWeight, kq.DoReFaActivation),
    ],
)
def test_layer_defaults(layer, base, kernel_quantizer, input_quantizer):
    assert isinstance(layer, base)
    assert isinstance(layer.kernel_quantizer, kernel_quantizer)
    assert isinstance(layer.input_quantizer, input_quantizer)
    assert isinstance(layer.kernel_constraint, lq.constraints.WeightClip)
    assert layer.kernel_constraint.clip_value == 1
    assert layer.use_bias is False


def test_pad_values_follow_the_input_quantizer():
    assert kl.BinaryConv2D(4, 3, padding="same").pad_values == 1.0  # LCE-convertible
    assert kl.BinaryConv2D(4, 3, input_quantizer="stochastic_sign").pad_values == 1.0
    assert kl.BinaryConv2D(4, 3, input_quantizer=None).pad_values == 0.0  # float first layer
    assert kl.BinaryConv2D(4, 3, input_quantizer=kq.DoReFaActivation(1)).pad_values == 0.0
    assert kl.TernaryConv2D(4, 3).pad_values == 0.0
    assert kl.DorefaConv2D(4, 3).pad_values == 0.0
    assert kl.BinaryConv2D(4, 3, pad_values=0.0).pad_values == 0.0


def test_larq_layers_and_shift_batchnorm_are_reexported():
    assert kl.QuantConv2D is lq.layers.QuantConv2D
    assert kl.QuantDense is lq.layers.QuantDense
    assert kl.QuantDepthwiseConv2D is lq.layers.QuantDepthwiseConv2D
    from kbnn.normalization import ShiftBatchNormalization

    assert kl.ShiftBatchNormalization is ShiftBatchNormalization


# ---------------------------------------------------------------------------------------------
# Forward against numpy
# ---------------------------------------------------------------------------------------------


def test_binary_conv2d_matches_numpy_with_plus_one_padding():
    x = _image(1)
    layer = kl.BinaryConv2D(4, 3, padding="same")
    y = layer(x).numpy()
    w = layer.kernel.latent_variable.numpy()
    np.testing.assert_allclose(y, _np_conv(_sign(x), _sign(w), pad=1, pad_value=1.0), atol=1e-4)


def test_binary_conv2d_xnor_input_scaling_matches_numpy():
    x = _image(2)
    layer = kl.BinaryConv2D(
        4, 3, padding="same", kernel_quantizer="xnor_weight", xnor_input_scaling=True
    )
    y = layer(x).numpy()
    w = layer.kernel.latent_variable.numpy()
    alpha = np.abs(w).mean(axis=(0, 1, 2))
    binary = _np_conv(_sign(x), _sign(w) * alpha, pad=1, pad_value=1.0)
    # K = (mean_c |x|) ⊛ box(3×3)/9, zero padded
    k = _np_conv(np.abs(x).mean(-1, keepdims=True), np.full((3, 3, 1, 1), 1 / 9), pad=1)
    np.testing.assert_allclose(y, binary * k, rtol=1e-5, atol=1e-5)


def test_binary_dense_and_sign_match_numpy():
    x = _image(3, (4, 7))
    x[0, 0] = 0.0
    layer = kl.BinaryDense(3)
    y = layer(x).numpy()
    w = layer.kernel.latent_variable.numpy()
    np.testing.assert_allclose(y, _sign(x) @ _sign(w), atol=1e-5)
    np.testing.assert_array_equal(kl.Sign()(x), _sign(x))


def test_ternary_dense_matches_numpy_twn():
    x = _image(4, (3, 10))
    layer = kl.TernaryDense(6)
    y = layer(x).numpy()
    w = layer.kernel.latent_variable.numpy()
    delta = 0.7 * np.abs(w).mean(axis=0)
    t = np.where(w > delta, 1.0, np.where(w < -delta, -1.0, 0.0))
    alpha = (np.abs(w) * (t != 0)).sum(0) / (t != 0).sum(0)
    np.testing.assert_allclose(y, x @ (alpha * t), rtol=1e-5, atol=1e-5)


def test_dorefa_dense_matches_numpy():
    x = np.random.default_rng(5).uniform(-0.3, 1.3, size=(3, 8)).astype(np.float32)
    layer = kl.DorefaDense(4, bit_w=1, bit_a=3)
    y = layer(x).numpy()
    w = layer.kernel.latent_variable.numpy()
    a = np.round(np.clip(x, 0, 1) * 7) / 7
    np.testing.assert_allclose(y, a @ (np.abs(w).mean() * _sign(w)), rtol=1e-5, atol=1e-5)


def test_dorefa_conv2d_bit_planes_equal_the_layer():
    """QNN: a k-bit input layer is the 2^i-weighted sum of its binary input planes."""
    x = np.random.default_rng(6).uniform(0, 1, size=(2, 5, 5, 2)).astype(np.float32)
    layer = kl.DorefaConv2D(3, 3, bit_w=1, bit_a=3)
    y = layer(x).numpy()
    kernel = layer.kernel_quantizer(layer.kernel.latent_variable).numpy()
    planes = layer.input_quantizer.bit_planes(x).numpy()
    planes_sum = sum(2.0**i * _np_conv(planes[..., i], kernel) for i in range(3)) / 7
    np.testing.assert_allclose(y, planes_sum, rtol=1e-5, atol=1e-5)


def test_gradient_quantizer_quantizes_the_gradient_into_the_layer_below():
    dense = tf.keras.layers.Dense(6, kernel_initializer="glorot_normal")
    quantizer = kl.GradientQuantizer(2, seed=3)
    x = _image(7, (4, 5))
    upstream = _image(8, (4, 6))
    with tf.GradientTape() as tape:
        h = dense(x)
        tape.watch(h)
        y = quantizer(h)
        loss = tf.reduce_sum(y * upstream)
    np.testing.assert_array_equal(y, h)
    grad_h = tape.gradient(loss, h).numpy()
    m = np.abs(upstream).max(axis=1, keepdims=True)
    j = (grad_h / (2 * m) + 0.5) * 3  # 2-bit grid per example
    np.testing.assert_allclose(j, np.round(j), atol=1e-4)
    assert np.abs(grad_h - upstream).max() <= 2 * m.max() / 3 + 1e-6


# ---------------------------------------------------------------------------------------------
# Serialization
# ---------------------------------------------------------------------------------------------


def _all_layers_model():
    image = tf.keras.Input((6, 6, 3))
    conv_outputs = [tf.keras.layers.Flatten()(factory()(image)) for factory in CONV_LAYERS.values()]
    features = tf.keras.layers.Concatenate()(conv_outputs)
    dense_outputs = [factory()(features) for factory in DENSE_LAYERS.values()]
    return tf.keras.Model(image, tf.keras.layers.Concatenate()(dense_outputs))


def test_every_layer_round_trips_keras_and_h5(tmp_path):
    model = _all_layers_model()
    x = _image(9)
    expected = model(x, training=False).numpy()
    for ext in ("keras", "h5"):
        path = tmp_path / f"all.{ext}"
        model.save(path)
        loaded = tf.keras.models.load_model(path)  # no custom_objects
        np.testing.assert_array_equal(loaded(x, training=False), expected)
        for original, restored in zip(model.layers, loaded.layers, strict=True):
            assert type(original) is type(restored)
            assert original.get_config() == restored.get_config()


@pytest.mark.parametrize("name", sorted({**CONV_LAYERS, **DENSE_LAYERS}))
def test_layer_serialize_deserialize(name):
    layer = {**CONV_LAYERS, **DENSE_LAYERS}[name]()
    x = _image(10) if name in CONV_LAYERS else _image(10, (2, 8))
    y = layer(x)
    config = tf.keras.layers.serialize(layer)
    clone = tf.keras.layers.deserialize(config)
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(x), y)


def test_sequential_model_round_trip(tmp_path):
    model = tf.keras.Sequential(
        [
            tf.keras.Input((6, 6, 1)),
            kl.BinaryConv2D(4, 3, input_quantizer=None, padding="same"),
            tf.keras.layers.BatchNormalization(),
            kl.Sign(),
            tf.keras.layers.Flatten(),
            kl.DorefaDense(3),
        ]
    )
    x = _image(11, (2, 6, 6, 1))
    path = tmp_path / "seq.h5"
    model.save(path)
    np.testing.assert_array_equal(tf.keras.models.load_model(path)(x), model(x))


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def _tiny_binarynet():
    """The seed BinaryNet's shape at toy width: binary conv/dense, BN + htanh, sign."""
    return tf.keras.Sequential(
        [
            tf.keras.Input((12, 12, 1)),
            kl.BinaryConv2D(4, 5, padding="same", input_quantizer=None),
            tf.keras.layers.MaxPool2D(2),
            tf.keras.layers.BatchNormalization(),
            tf.keras.layers.Activation("hard_tanh"),
            kl.BinaryConv2D(8, 5, padding="same"),
            tf.keras.layers.MaxPool2D(2),
            tf.keras.layers.BatchNormalization(),
            tf.keras.layers.Flatten(),
            kl.BinaryDense(16),
            tf.keras.layers.BatchNormalization(),
            kl.BinaryDense(10),
            tf.keras.layers.BatchNormalization(),
            tf.keras.layers.Activation("softmax"),
        ]
    )


def _tiny_mixed_functional():
    """Ternary, five-level, DoReFa, stochastic sign and gradient quantizer with float layers."""
    image = tf.keras.Input((12, 12, 1))
    h = kl.TernaryConv2D(4, 3, padding="same")(image)
    h = tf.keras.layers.ReLU()(h)
    h = kl.FiveLevelConv2D(4, 3)(h)
    h = tf.keras.layers.BatchNormalization()(h)
    h = kl.DorefaConv2D(4, 3, bit_w=1, bit_a=2, padding="same")(h)
    h = kl.GradientQuantizer(4, seed=0)(h)
    h = tf.keras.layers.GlobalAveragePooling2D()(h)
    h = kl.DorefaDense(8, bit_w=2, bit_a=3)(h)
    h = kl.BinaryDense(8, input_quantizer=kq.StochasticSign(seed=2))(h)
    h = tf.keras.layers.Dense(10, activation="softmax")(h)
    return tf.keras.Model(image, h)


@pytest.mark.parametrize(
    "jit_compile", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["graph", "xla"]
)
@pytest.mark.parametrize("build", [_tiny_binarynet, _tiny_mixed_functional])
def test_fit_graph_and_xla(build, jit_compile):
    model = build()
    model.compile(
        tf.keras.optimizers.Adam(0.05),
        "sparse_categorical_crossentropy",
        jit_compile=jit_compile,
    )
    rng = np.random.default_rng(12)
    x = rng.uniform(0, 1, size=(16, 12, 12, 1)).astype(np.float32)
    y = rng.integers(0, 10, size=16)
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    changed = [
        not np.array_equal(b, w.numpy())
        for b, w in zip(before, model.trainable_weights, strict=True)
    ]
    assert all(changed)
    for layer in model.layers:
        if getattr(layer, "kernel_constraint", None) is not None:
            assert np.abs(layer.kernel.latent_variable.numpy()).max() <= 1.0


# ---------------------------------------------------------------------------------------------
# LCE
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "input_quantizer,kernel_quantizer",
    [
        ("ste_sign", "ste_sign"),
        (kq.StochasticSign(seed=1), "xnor_weight"),  # inference forward is larq's sign
        ("ste_sign", kq.DoReFaWeight(1)),  # ±E|W|: one scale per layer
    ],
)
def test_binary_conv_defaults_convert_to_lce_bconv(input_quantizer, kernel_quantizer):
    import larq_compute_engine as lce
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    model = tf.keras.Sequential(
        [
            tf.keras.Input((8, 8, 32)),
            kl.BinaryConv2D(
                32,
                3,
                padding="same",
                input_quantizer=input_quantizer,
                kernel_quantizer=kernel_quantizer,
            ),
            tf.keras.layers.BatchNormalization(),
        ]
    )
    flatbuffer = lce.convert_keras_model(model)
    assert b"LceBconv2d" in flatbuffer
    x = _image(13, (1, 8, 8, 32))
    np.testing.assert_allclose(Interpreter(flatbuffer).predict(x), model(x), atol=1e-4)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_bad_layer_configuration():
    with pytest.raises(ValueError, match="bit_w"):
        kl.DorefaConv2D(4, 3, bit_w=0)
    with pytest.raises(ValueError, match="bit_a"):
        kl.DorefaDense(4, bit_a=33)
    with pytest.raises(ValueError, match="input_quantizer"):
        kl.DorefaDense(4, input_quantizer="ste_sign")
    with pytest.raises(ValueError, match="Known aliases"):
        kl.BinaryConv2D(4, 3, kernel_quantizer="binary")
    with pytest.raises(ValueError, match="xnor_input_scaling"):
        kl.BinaryConv2D(4, 3, xnor_input_scaling=True, data_format="channels_first")
    with pytest.raises(ValueError, match="k_bit"):
        kl.GradientQuantizer(0)


# ---------------------------------------------------------------------------------------------
# Examples (the seed's three MNIST recipes) train with model.fit on real MNIST
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("script", ["binarynet_mnist", "ternarynet_mnist", "dorefanet_mnist"])
def test_example_trains_on_mnist(script, mnist_available, monkeypatch, capsys):
    import importlib.util
    import pathlib

    examples = pathlib.Path(__file__).resolve().parents[1] / "examples"
    monkeypatch.syspath_prepend(str(examples))
    spec = importlib.util.spec_from_file_location(script, examples / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    recipe = importlib.import_module("_mnist_recipe")
    argv = ["--epochs", "1", "--steps", "3", "--batch-size", "32", "--eval-steps", "2"]
    accuracy = recipe.run(module.build_model, script, learning_rate=1e-3, argv=argv)
    assert 0.0 <= accuracy <= 1.0
    assert "test accuracy" in capsys.readouterr().out


def test_larq_padding_patch_stays_in_its_thread():
    """larq swaps `padding` to "valid" around its padded convolution; MirroredStrategy can switch
    replica threads inside that window (a metric's merge_call). Another thread must still read
    the layer's own padding, and the patch must not outlive the call."""
    import threading

    layer = kl.BinaryConv2D(4, 3, padding="same")
    assert layer.padding == "same" and layer.pad_values == 1.0
    inside, resume, seen = threading.Event(), threading.Event(), {}

    def replica():
        with lq.utils.patch_object(layer, "padding", "valid"):
            seen["patched"] = layer.padding
            inside.set()
            resume.wait(5)

    thread = threading.Thread(target=replica)
    thread.start()
    inside.wait(5)
    seen["other thread"] = layer.padding
    with lq.utils.patch_object(layer, "padding", "valid"):
        pass
    resume.set()
    thread.join(5)
    assert seen == {"patched": "valid", "other thread": "same"}
    assert layer.padding == "same"
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype(np.float32)
    assert layer(x).shape == (2, 6, 6, 4) and layer.padding == "same"
    assert layer.get_config()["padding"] == "same"
    # a failing call (wrong channel count) does not leave larq's "valid" behind
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError)):
        layer(np.zeros((2, 6, 6, 5), np.float32))
    assert layer.padding == "same"
