"""Every zoo model builds, runs forward, trains a step and converts with kbnn.converters."""

import kbnn.converters
import kbnn.zoo

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

SMALL = [name for name in kbnn.zoo.list_models() if kbnn.zoo.spec(name).dataset == "mnist"]
LARGE = [name for name in kbnn.zoo.list_models() if name not in SMALL]
# Layer types outside kbnn.converters' checked list that a definition uses on purpose.
UNCHECKED_LAYERS = {"reactnet_a"}  # kbnn.activations.LearnedShift (RSign / RPReLU shifts)


def _test_shape(name):
    spec = kbnn.zoo.spec(name)
    if spec.dataset == "mnist":
        return spec.input_shape
    return (64, 64, 3) if "alexnet" in name else (32, 32, 3)


def _build(name, **kwargs):
    return kbnn.zoo.get(name, input_shape=_test_shape(name), num_classes=10, **kwargs)


def _step_and_forward(model, shape, rng):
    x = rng.random((4, *shape), dtype=np.float32)
    y = np.array([0, 1, 2, 3])
    probabilities = model(x, training=False).numpy()
    assert probabilities.shape == (4, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)
    before = [w.numpy().copy() for w in model.trainable_weights]
    loss, accuracy = model.train_on_batch(x, y)
    assert np.isfinite(loss) and 0.0 <= accuracy <= 1.0
    changed = sum(
        not np.array_equal(b, w.numpy())
        for b, w in zip(before, model.trainable_weights, strict=True)
    )
    assert changed >= len(before) // 2, "one train step should update most variables"
    return x


def _binary_layers(model):
    return [
        layer
        for layer in model.layers
        if isinstance(layer, lq.layers.QuantConv2D | lq.layers.QuantDense)
        and getattr(layer.kernel_quantizer, "precision", None) == 1
    ]


def test_registry_lists_every_model_once_with_metadata():
    names = kbnn.zoo.list_models()
    expected = {
        "binarynet_mnist",
        "ternarynet_mnist",
        "dorefanet_mnist",
        "binarynet_mlp_mnist",
        "binarynet_cifar10",
        "xnornet_alexnet",
        "xnornet_resnet18",
        "binary_alexnet",
        "birealnet18",
        "reactnet_a",
        "quicknet_small",
        "quicknet",
        "quicknet_large",
    }
    assert expected <= set(names) and len(names) == len(set(names))
    for name in names:
        spec = kbnn.zoo.spec(name)
        assert 0.0 < spec.expected_accuracy < 1.0
        assert "20" in spec.paper  # a year: the paper is cited
        doc = spec.builder.__doc__
        assert doc and "%" in doc, f"{name}'s docstring must state the expected accuracy"
    with pytest.raises(ValueError, match="unknown zoo model 'nope'.*binarynet_mnist"):
        kbnn.zoo.get("nope")


# binarynet_mlp_mnist takes 13 CPU s here (the others 4-5 s): outside the fast lane.
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.slow) if name == "binarynet_mlp_mnist" else name
        for name in SMALL
    ],
)
def test_mnist_model_builds_steps_and_converts(name):
    rng = np.random.default_rng(0)
    model = kbnn.zoo.get(name)
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 10)
    x = _step_and_forward(model, (28, 28, 1), rng)
    conversion = kbnn.converters.convert(model, verify_with=x[:2])
    assert conversion.flatbuffer[4:8] == b"TFL3"
    if name in ("binarynet_mnist", "binarynet_mlp_mnist"):
        assert conversion.ops.get("LceBconv2d", 0) >= 2


@pytest.mark.parametrize("name", SMALL)
def test_mnist_model_options(name):
    headless = kbnn.zoo.get(name, include_top=False, compile=False)
    assert len(headless.output_shape) == 2 and headless.output_shape[-1] >= 256
    shifted = kbnn.zoo.get(name, bn="shift", compile=False)
    from kbnn.normalization import ShiftBatchNormalization

    assert any(isinstance(layer, ShiftBatchNormalization) for layer in shifted.layers)
    assert not any(
        isinstance(layer, tf.keras.layers.BatchNormalization) for layer in shifted.layers
    )
    with pytest.raises(ValueError, match="bn: expected one of"):
        kbnn.zoo.get(name, bn="layernorm")


def _check_binary_convs_are_lce_ready(model):
    for layer in _binary_layers(model):
        if isinstance(layer, lq.layers.QuantConv2D) and layer.input_quantizer is not None:
            assert layer.pad_values == 1.0 or layer.padding == "valid", layer.name
            assert layer.kernel_constraint is not None, layer.name


#: Relative distance from 0 (`kbnn.converters.sign_margins`) beyond which a sign cannot flip
#: between Keras and LCE: their float32 rounding before a sign measured ≤ 4.4e-6 relative
#: (reactnet_a, birealnet18 on random weights; docs/converters.md, "Verification").
SIGN_TIE_MARGIN = 1e-5


def _convert_and_count(model, name, x):
    """Convert, check every binary conv became an LceBconv2d, and compare with Keras.

    With random weights a value that a sign reads can lie within float rounding of 0. LCE's
    binary convolution rounds its float output differently from Keras' float convolution
    (an absolute error ~2⁻²⁴·K·|multiplier|), so such a sign can flip and that sample's
    outputs differ downstream (birealnet18: one of 137,216 sign inputs 7.1e-7 from 0 in exact
    arithmetic, LCE −4e-7, Keras +7.3e-7; 576 values off in the next block, max |diff| 0.26 in
    the probabilities). So: argmax agrees on every sample, samples whose sign inputs are all
    ≥ SIGN_TIE_MARGIN from 0 agree to float tolerance, and at least 3/4 of all samples do."""
    conversion = kbnn.converters.convert(model, allow_unknown_layers=name in UNCHECKED_LAYERS)
    binary_convs = [
        layer
        for layer in _binary_layers(model)
        if isinstance(layer, lq.layers.QuantConv2D) and layer.input_quantizer is not None
    ]
    assert conversion.ops.get("LceBconv2d", 0) >= len(binary_convs)
    extra = np.random.default_rng(2).random((12, *x.shape[1:]), dtype=np.float32)
    x = np.concatenate([x, extra])
    report = kbnn.converters.verify(model, conversion.flatbuffer, x)
    assert report.argmax_agreement == 1.0, report
    assert all(output.within_tolerance >= 0.75 for output in report.outputs), report
    margins = kbnn.converters.sign_margins(model, x)
    clean = margins >= SIGN_TIE_MARGIN
    if clean.any():
        away_from_ties = kbnn.converters.verify(model, conversion.flatbuffer, x[clean])
        assert away_from_ties.passed(), (away_from_ties, np.sort(margins))


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in LARGE if kbnn.zoo.spec(n).dataset != "imagenet"])
def test_cifar_model_builds_steps_and_converts(name):
    model = _build(name)
    x = _step_and_forward(model, _test_shape(name), np.random.default_rng(1))
    assert len(_binary_layers(model)) >= 5
    _check_binary_convs_are_lce_ready(model)
    _convert_and_count(model, name, x)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in LARGE if kbnn.zoo.spec(n).dataset == "imagenet"])
def test_imagenet_model_builds_steps_and_converts(name):
    """ImageNet-size definitions on a small input (32x32 or 64x64, 10 classes)."""
    model = _build(name)
    x = _step_and_forward(model, _test_shape(name), np.random.default_rng(1))
    assert len(_binary_layers(model)) >= 5
    _check_binary_convs_are_lce_ready(model)
    _convert_and_count(model, name, x)


def test_imagenet_default_input_is_224():
    for name in LARGE:
        spec = kbnn.zoo.spec(name)
        if spec.dataset == "imagenet":
            assert spec.input_shape == (224, 224, 3) and spec.num_classes == 1000
    model = kbnn.zoo.get("quicknet_small", compile=False)
    assert model.input_shape == (None, 224, 224, 3) and model.output_shape == (None, 1000)


def test_get_rejects_bad_arguments():
    with pytest.raises(ValueError, match="input_shape"):
        kbnn.zoo.get("binarynet_mnist", input_shape=(28, 28))
    with pytest.raises(ValueError, match="num_classes"):
        kbnn.zoo.get("binarynet_mnist", num_classes=1)
    with pytest.raises(ValueError, match="weights: expected None"):
        kbnn.zoo.get("binarynet_mnist", weights=3)
    with pytest.raises(ValueError, match="no pretrained weights for 'quicknet'"):
        kbnn.zoo.get("quicknet", weights="pretrained")


def test_info_reports_params_and_bits():
    info = kbnn.zoo.info("binarynet_mnist")
    assert info["params"]["binary"] == 5 * 5 * 32 + 5 * 5 * 32 * 64 + 3136 * 256 + 256 * 10
    assert info["bits"].startswith("W1A1")
    assert info["expected_accuracy"] == pytest.approx(0.9904)


def _round_trip(model, path, x):
    model.save(path)
    loaded = tf.keras.models.load_model(path)
    np.testing.assert_array_equal(
        loaded(x, training=False).numpy(), model(x, training=False).numpy()
    )
    return loaded


@pytest.mark.parametrize("name", ["ternarynet_mnist", "dorefanet_mnist"])
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_mnist_models_round_trip_exactly(name, suffix, tmp_path):
    model = kbnn.zoo.get(name)
    x = np.random.default_rng(3).random((4, 28, 28, 1), dtype=np.float32)
    _round_trip(model, tmp_path / f"m{suffix}", x)


def test_zoo_blocks_serialize(tmp_path):
    """LearnedShift (ReActNet) and the blur initializer (QuickNet) save and load by name."""
    from kbnn import activations, initializers

    inputs = tf.keras.Input((8, 8, 4))
    x = activations.LearnedShift(name="shift")(inputs)
    x = tf.keras.layers.DepthwiseConv2D(
        3,
        padding="same",
        use_bias=False,
        trainable=False,
        depthwise_initializer=initializers.BlurInitializer(),
    )(x)
    x = tf.keras.layers.Activation(activations.hard_tanh)(x)
    model = tf.keras.Model(inputs, x)
    model.get_layer("shift").bias.assign([0.5, -0.5, 2.0, 0.0])
    kernel = model.layers[2].depthwise_kernel.numpy()
    np.testing.assert_allclose(kernel[:, :, 0, 0], np.outer([1, 2, 1], [1, 2, 1]) / 16)
    x = np.random.default_rng(4).normal(size=(2, 8, 8, 4)).astype(np.float32)
    loaded = _round_trip(model, tmp_path / "blocks.keras", x)
    assert isinstance(loaded.get_layer("shift"), activations.LearnedShift)
    out = loaded(x).numpy()
    assert out.min() >= -1.0 and out.max() <= 1.0  # hard tanh


def test_saved_zoo_blocks_load_in_a_fresh_process_with_only_import_kbnn(tmp_path, run_fresh_python):
    """The zoo's custom objects (LearnedShift, HardTanh, BlurInitializer, in core) are registered by
    `import kbnn`, so a saved ReActNet/QuickNet loads without `import kbnn.zoo` (a reactnet_a
    file failed with "'str' object is not callable" before) and gives the same outputs."""
    from kbnn import activations, initializers

    model = tf.keras.Sequential(
        [
            tf.keras.Input((6, 6, 3)),
            activations.LearnedShift(name="shift"),
            activations.HardTanh(name="htanh"),
            tf.keras.layers.DepthwiseConv2D(
                3, depthwise_initializer=initializers.BlurInitializer(), name="blur"
            ),
        ]
    )
    model.get_layer("shift").bias.assign([0.1, -0.2, 0.3])
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", model.predict(x, verbose=0))
    model.save(tmp_path / "blocks.keras")
    code = (
        "import numpy as np, kbnn, tensorflow as tf\n"
        f"m = tf.keras.models.load_model({str(tmp_path / 'blocks.keras')!r})\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r}); y = np.load({str(tmp_path / 'y.npy')!r})\n"
        "print('MAXDIFF', float(np.max(np.abs(m.predict(x, verbose=0) - y))))\n"
    )
    result = run_fresh_python.completed("-c", code, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.split("MAXDIFF")[1]) < 1e-6
