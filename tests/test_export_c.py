"""kbnn export-c: generated C vs the numpy integer reference (bit-exact scores), the reference
vs Keras, compile checks (host gcc -pedantic, arm-none-eabi-gcc for the Cortex-M4), prefixes,
popcount variants and error cases."""

from __future__ import annotations

import shutil
import subprocess

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import layers as kl
from kbnn.activations import HardTanh
from kbnn.converters.c_export import ExportError, export_c, lower
from kbnn.converters.c_export import reference as ref
from kbnn.quantizers import DoReFaActivation

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from c_export_helpers import ARM_FLAGS, build_host, run_host


def _randomize(model, seed: int):
    """Random latent kernels and BN parameters: γ of both signs with one γ = 0 per layer, so
    every comparison direction, the pool-before-BN min and the constant channel are exercised."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            gamma = rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 2.0, n)
            gamma[0] = 0.0
            layer.set_weights(
                [gamma, rng.normal(0, 1, n), rng.normal(0, 2, n), rng.uniform(0.2, 2.0, n)]
            )
        elif hasattr(layer, "kernel"):
            layer.set_weights([rng.uniform(-1, 1, w.shape) for w in layer.get_weights()])
    return model


def binary_model():
    """Raw image (2 channels) → ±1 conv (40 ch: two words, a masked tail) → BN → pool →
    sign → binary conv (pad +1) → pool → BN (pool before BN) → sign → binary dense → BN."""
    x = inputs = tf.keras.Input((12, 12, 2))
    x = kl.BinaryConv2D(40, 3, padding="same", input_quantizer=None, name="c1")(x)
    x = tf.keras.layers.BatchNormalization(name="b1")(x)
    x = tf.keras.layers.MaxPool2D(2, name="p1")(x)
    x = kl.BinaryConv2D(33, 3, padding="same", name="c2")(x)
    x = tf.keras.layers.MaxPool2D(2, name="p2")(x)
    x = tf.keras.layers.BatchNormalization(name="b2")(x)
    x = tf.keras.layers.Flatten()(x)
    x = kl.BinaryDense(10, name="d1")(x)
    x = tf.keras.layers.BatchNormalization(name="b3")(x)
    return _randomize(tf.keras.Model(inputs, x), 1)


def mixed_model():
    """DoReFa 2-bit image → binary conv; 2-bit planes × ternary conv; signs × ternary conv
    (pad +1); hard tanh → float dense (int8 fixed point)."""
    x = inputs = tf.keras.Input((10, 10, 1))
    x = lq.layers.QuantConv2D(
        8,
        3,
        padding="same",
        input_quantizer=DoReFaActivation(2),
        kernel_quantizer="ste_sign",
        use_bias=False,
        name="c1",
    )(x)
    x = tf.keras.layers.BatchNormalization(name="b1")(x)
    x = tf.keras.layers.MaxPool2D(2, name="p1")(x)
    x = lq.layers.QuantConv2D(
        12,
        3,
        padding="same",
        input_quantizer=DoReFaActivation(2),
        kernel_quantizer="ste_tern",
        use_bias=False,
        name="c2",
    )(x)
    x = tf.keras.layers.BatchNormalization(name="b2")(x)
    x = lq.layers.QuantConv2D(
        9,
        3,
        padding="same",
        input_quantizer="ste_sign",
        pad_values=1.0,
        kernel_quantizer="ste_tern",
        use_bias=False,
        name="c3",
    )(x)
    x = tf.keras.layers.BatchNormalization(name="b3")(x)
    x = HardTanh(name="h3")(x)
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(10, use_bias=False, name="d1")(x)
    x = tf.keras.layers.BatchNormalization(name="b4")(x)
    return _randomize(tf.keras.Model(inputs, x), 2)


def _images(shape, n=300, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


@pytest.fixture(scope="module")
def binary_export(tmp_path_factory):
    tf.keras.utils.set_random_seed(7)
    model = binary_model()
    out = tmp_path_factory.mktemp("binary")
    result = export_c(model, out)
    return model, result, out


def test_c_scores_equal_the_integer_reference_bit_for_bit(binary_export, tmp_path):
    model, result, out = binary_export
    images = _images((12, 12, 2))
    best, scores = run_host(build_host(out, tmp_path), images)
    expected = ref.scores(result.network, images)
    np.testing.assert_array_equal(scores, expected)
    np.testing.assert_array_equal(best, np.argmax(expected, axis=1))


def test_reference_agrees_with_keras_layer_by_layer(binary_export):
    """Signs after the first block equal Keras' sign(pool(BN(conv))) and the scores are Keras'
    logits times 2^m up to the documented rounding bound."""
    model, result, _ = binary_export
    images = _images((12, 12, 2), n=200, seed=3)
    x = images.astype(np.float32) / np.float32(255)
    first = tf.keras.Model(model.inputs, model.get_layer("p1").output)(x).numpy()
    keras_signs = np.where(first >= 0, 1, -1)
    outputs = ref.layer_outputs(result.network, images)
    assert np.mean(outputs[0] == keras_signs) > 0.999  # float32 ties aside
    last = result.network.layers[-1]
    assert last.thresholds is None and last.mult is not None
    m = last.shift
    logits = model(x).numpy().astype(np.float64)
    close = np.all(np.abs(outputs[-1][:, 0, 0] / 2**m - logits) < 1e-3, axis=1)
    assert close.mean() > 0.97
    assert np.mean(np.argmax(outputs[-1][:, 0, 0], 1) == np.argmax(logits, 1)) > 0.97


def test_lowering_folds_directions_pools_and_constant_channels(binary_export):
    _, result, _ = binary_export
    c1, c2, d1 = result.network.layers
    assert (c1.in_format, c1.out_format, c2.in_format, d1.out_format) == (
        "u8",
        "sign",
        "sign",
        "scores",
    )
    assert c2.pad_value == 1 and c1.pad_value == 0
    assert not c1.pool_min.any()  # BN before the pool: always a max (OR of bits)
    assert c2.pool_min.any() and not c2.pool_min.all()  # pool before a negative-γ BN: min
    assert abs(c1.thresholds[0, 0]) > np.abs(c1.kernel[..., 0]).sum() * 255  # γ = 0: constant
    assert result.arena_bytes == 4 * (6 * 6 * 2 + 3 * 3 * 2 + 4 * 4 * 2)  # maps + window


def test_bit_planes_ternary_and_int8_paths(tmp_path):
    model = mixed_model()
    result = export_c(model, tmp_path / "mixed")
    formats = [(la.in_format, la.weight_format, la.out_format) for la in result.network.layers]
    assert formats == [
        ("u8", "binary", "planes"),
        ("planes", "ternary", "sign"),
        ("sign", "ternary", "i8"),
        ("i8", "int8", "scores"),
    ]
    images = _images((10, 10, 1), n=300, seed=4)
    _, scores = run_host(build_host(tmp_path / "mixed", tmp_path), images)
    expected = ref.scores(result.network, images)
    np.testing.assert_array_equal(scores, expected)
    logits = model(images.astype(np.float32) / np.float32(255)).numpy()
    assert np.mean(np.argmax(expected, 1) == np.argmax(logits, 1)) > 0.95  # int8 last layer


@pytest.mark.parametrize("variant", [1, 2])
def test_popcount_variants_give_the_same_scores(binary_export, tmp_path, variant):
    _, _, out = binary_export
    images = _images((12, 12, 2), n=50, seed=5)
    swar = run_host(build_host(out, tmp_path / "swar"), images)[1]
    other = run_host(
        build_host(out, tmp_path / "v", defines=(f"KBNN_POPCOUNT={variant}",)), images
    )[1]
    np.testing.assert_array_equal(swar, other)


def test_compiles_for_cortex_m4(binary_export, tmp_path):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi)")
    _, _, out = binary_export
    obj = tmp_path / "model.o"
    subprocess.run(
        ["arm-none-eabi-gcc", *ARM_FLAGS, "-c", str(out / "kbnn_model.c"), "-o", str(obj)],
        check=True,
        capture_output=True,
        text=True,
    )
    assert obj.stat().st_size > 0


def test_two_prefixed_models_link_into_one_program(binary_export, tmp_path):
    model, _, _ = binary_export
    export_c(model, tmp_path, prefix="first")
    export_c(model, tmp_path, prefix="second")
    text = (tmp_path / "first_model.c").read_text() + (tmp_path / "first_model.h").read_text()
    assert "kbnn" not in text.replace("kbnn export-c", "").lower().replace("kbnn_model", "")
    main = tmp_path / "main.c"
    main.write_text(
        '#include "first_model.h"\n#include "second_model.h"\n'
        "int main(void) { static uint8_t x[FIRST_INPUT_SIZE]; "
        "int32_t a[FIRST_NUM_CLASSES], b[SECOND_NUM_CLASSES]; int i; "
        "int r = first_infer(x, a) - second_infer(x, b);\n"
        "for (i = 0; i < FIRST_NUM_CLASSES; i++) r |= a[i] != b[i];\n"
        "return r != 0; }\n"
    )
    exe = tmp_path / "two"
    subprocess.run(
        [
            "gcc",
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-I",
            str(tmp_path),
            str(main),
            str(tmp_path / "first_model.c"),
            str(tmp_path / "second_model.c"),
            "-o",
            str(exe),
        ],
        check=True,
    )
    assert subprocess.run([str(exe)]).returncode == 0


def test_unsupported_layer_is_named_and_nothing_is_written(tmp_path):
    x = inputs = tf.keras.Input((8, 8, 1))
    x = kl.BinaryConv2D(4, 3, input_quantizer=None, name="c1")(x)
    x = tf.keras.layers.Dropout(0.5, name="my_dropout")(x)
    x = tf.keras.layers.Flatten()(x)
    x = kl.BinaryDense(3, name="d1")(x)
    with pytest.raises(ExportError, match="my_dropout.*Dropout"):
        export_c(tf.keras.Model(inputs, x), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_strided_convolution_is_refused():
    x = inputs = tf.keras.Input((8, 8, 1))
    x = kl.BinaryConv2D(4, 3, strides=2, input_quantizer=None, name="strided")(x)
    with pytest.raises(ExportError, match="strided.*stride 1"):
        lower(tf.keras.Model(inputs, tf.keras.layers.Flatten()(x)))


def test_dense_on_an_unflattened_map_is_refused():
    x = inputs = tf.keras.Input((6, 6, 1))
    x = kl.BinaryConv2D(4, 3, input_quantizer=None, name="c1")(x)
    x = kl.BinaryDense(3, name="per_pixel")(x)
    with pytest.raises(ExportError, match="per_pixel.*Flatten"):
        lower(tf.keras.Model(inputs, x))


def test_bad_prefix_and_existing_files(binary_export, tmp_path):
    model, _, _ = binary_export
    with pytest.raises(ExportError, match="bad prefix"):
        export_c(model, tmp_path, prefix="9lives")
    with pytest.raises(ExportError, match="bad prefix"):
        export_c(model, tmp_path, prefix="a-b")
    export_c(model, tmp_path)
    before = (tmp_path / "kbnn_model.c").read_bytes()
    (tmp_path / "kbnn_model.c").write_text("mine")
    with pytest.raises(ExportError, match="already exists"):
        export_c(model, tmp_path)
    assert (tmp_path / "kbnn_model.c").read_text() == "mine"
    export_c(model, tmp_path, overwrite=True)
    assert (tmp_path / "kbnn_model.c").read_bytes() == before


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    from kbnn.cli import main

    (tmp_path / "kbnn_model.h").write_text("x")
    assert main(["export-c", "binarynet_mnist", "-o", str(tmp_path), "--prefix", "1x"]) == 2
    assert main(["export-c", "no_such_model", "-o", str(tmp_path)]) == 2
    assert main(["export-c", str(tmp_path / "missing.keras"), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("kbnn export-c: error:") for line in err)
    assert "prefix" in err[0] and "no_such_model" in err[1] and "missing.keras" in err[2]
