"""kbnn.converters.convert end to end: every layer kind through LCE's converter and interpreter.

Each test builds a small model of one layer kind, converts it, runs LCE's interpreter on
random inputs and asserts agreement with Keras (argmax ≥ 99.9 %, max |diff| within float
tolerance), the expected op types in the flatbuffer and the kernel bytes against the
bit-count limit.
"""

import os

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import converters
from kbnn import layers as kl
from kbnn.converters import ConversionError, VerificationError
from kbnn.converters.passes import batchnorm_affine
from kbnn.converters.verify import lce_outputs
from kbnn.errors import UsageError
from kbnn.normalization import ShiftBatchNormalization

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from helpers import randomize_weights

SAMPLES = 1000
SIZE_LIMIT = 1.10  # kernel bytes / (weights · bits / 8)


_randomize = randomize_weights  # γ of both signs, moving means N(0, 4)


def _inputs(model, low=0.0, high=1.0, samples=SAMPLES, seed=1, index=0):
    shape = tuple(model.inputs[index].shape[1:])
    return np.random.default_rng(seed).uniform(low, high, (samples,) + shape).astype(np.float32)


def _convert_and_check(model, x, *, bconvs, forbidden=("FULLY_CONNECTED",)):
    conversion = converters.convert(model, verify_with=x)
    report = conversion.verification
    assert report.samples == len(x[0] if isinstance(x, list) else x)
    assert report.argmax_agreement >= 0.999
    for output in report.outputs:
        assert output.max_abs_diff <= output.tolerance
    assert conversion.ops.get("LceBconv2d", 0) == bconvs, conversion.report
    for op in forbidden:
        assert op not in conversion.ops, conversion.report
    assert not conversion.report.warnings, conversion.report
    return conversion


def _check_size(row):
    assert row.limit_bytes, row
    assert row.kernel_bytes <= SIZE_LIMIT * row.limit_bytes, row


# ------------------------------------------------------------------------------ binary


def test_binary_conv_and_dense_with_float_first_layer():
    """BinaryNet-style: float first layer, conv → pool → BN (reordered so BN fuses), binary
    dense layers rewritten into 1×1 binary convolutions."""
    inputs = tf.keras.Input((12, 12, 3))
    x = kl.BinaryConv2D(32, 3, padding="same", input_quantizer=None, name="first")(inputs)
    x = tf.keras.layers.MaxPool2D(2, name="pool1")(x)
    x = tf.keras.layers.BatchNormalization(name="bn1")(x)
    x = kl.BinaryConv2D(32, 3, padding="same", name="conv2")(x)
    x = tf.keras.layers.MaxPool2D(2, name="pool2")(x)
    x = tf.keras.layers.BatchNormalization(name="bn2")(x)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    x = kl.BinaryDense(64, name="dense1")(x)
    x = tf.keras.layers.BatchNormalization(name="bn3")(x)
    x = kl.BinaryDense(10, name="dense2")(x)
    x = tf.keras.layers.BatchNormalization(name="bn4")(x)
    x = tf.keras.layers.Activation("softmax", name="softmax")(x)
    model = _randomize(tf.keras.Model(inputs, x))
    for bn in ("bn1", "bn2"):  # positive multipliers: the pool/BN reorder applies
        gamma = model.get_layer(bn).gamma
        gamma.assign(np.abs(gamma.numpy()))
    conversion = _convert_and_check(model, _inputs(model), bconvs=3)
    report = conversion.report
    assert report["first"].lowering.action == "float"
    assert "inputs are not quantized" in report["first"].lowering.reason
    assert report["first"].ops == {"CONV_2D": 1}
    for name in ("conv2", "dense1", "dense2"):
        assert report[name].ops["LceBconv2d"] == 1
        _check_size(report[name])
    assert report["conv2"].fused == ["bn2"] and report["bn1"].fused_into == "first"
    assert "LceBMaxPool2d" in conversion.ops  # BN moved before the pool, sign before max
    assert "float fallback: first" in str(report)
    # Flatten + dense1 became one VALID conv on the image: both pools are binary and the
    # activations stay bit-packed between the binary layers (no float leftovers).
    assert conversion.ops["LceBMaxPool2d"] == 2
    for leftover in ("MAX_POOL_2D", "LceDequantize"):
        assert leftover not in conversion.ops, conversion.report


def test_plain_larq_sequential_model():
    """Existing larq models (no kbnn layers), Sequential API."""
    binary = dict(
        input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip"
    )
    model = tf.keras.Sequential(
        [
            tf.keras.Input((8, 8, 32)),
            lq.layers.QuantConv2D(32, 3, padding="same", pad_values=1.0, use_bias=False, **binary),
            tf.keras.layers.BatchNormalization(),
            lq.layers.QuantConv2D(32, 3, strides=2, use_bias=False, **binary),
            tf.keras.layers.BatchNormalization(),
            tf.keras.layers.GlobalAveragePooling2D(),
            lq.layers.QuantDense(10, **binary),
        ]
    )
    model = _randomize(model)
    conversion = _convert_and_check(model, _inputs(model, -1, 1), bconvs=3)
    rows = [row for row in conversion.report.layers if row.lowering is not None]
    assert [row.lowering.action for row in rows] == ["bconv"] * 3
    for row in rows:
        _check_size(row)


# ------------------------------------------------------------------------------ multi-level weights


def test_ternary_and_five_level_weights_with_binary_inputs():
    inputs = tf.keras.Input((6, 6, 32))
    x = kl.TernaryConv2D(32, 3, padding="same", input_quantizer="ste_sign", name="ternary")(inputs)
    x = tf.keras.layers.BatchNormalization(name="bn_t")(x)
    x = kl.FiveLevelConv2D(32, 3, padding="same", input_quantizer="ste_sign", name="five")(x)
    x = tf.keras.layers.BatchNormalization(name="bn_f")(x)
    x = tf.keras.layers.Flatten()(x)
    x = kl.TernaryDense(10, input_quantizer="ste_sign", name="ternary_dense")(x)
    model = _randomize(tf.keras.Model(inputs, x))
    conversion = _convert_and_check(model, _inputs(model, -1, 1), bconvs=2 + 3 + 2)
    report = conversion.report
    assert report["ternary"].ops["LceBconv2d"] == 2
    assert report["five"].ops["LceBconv2d"] == 3
    assert report["ternary_dense"].ops["LceBconv2d"] == 2
    assert report["ternary"].fused == ["bn_t"] and report["five"].fused == ["bn_f"]
    assert "MUL" not in conversion.ops  # both batch norms folded into the planes
    for name in ("ternary", "five", "ternary_dense"):
        _check_size(report[name])
    assert report["ternary"].weight_bits == 2 and report["five"].weight_bits == 3


def test_dorefa_weights_and_activations():
    """DoReFa 1/2/4-bit weights × 1/2-bit activations, one layer of each in a chain."""
    inputs = tf.keras.Input((6, 6, 32))
    x = inputs
    combos = [(1, 1), (2, 1), (4, 1), (1, 2), (2, 2), (4, 2)]
    for bit_w, bit_a in combos:
        x = kl.DorefaConv2D(
            32, 3, padding="same", bit_w=bit_w, bit_a=bit_a, name=f"w{bit_w}a{bit_a}"
        )(x)
        x = tf.keras.layers.BatchNormalization(name=f"bn_w{bit_w}a{bit_a}")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = tf.keras.layers.Dense(10, name="logits")(x)
    model = _randomize(tf.keras.Model(inputs, x))
    for layer in model.layers:  # keep activations in DoReFa's [0, 1] range, where bits matter
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([np.abs(gamma) * 0.3, beta * 0.1 + 0.5, mean, var])
    conversion = _convert_and_check(
        model, _inputs(model, -0.2, 1.2), bconvs=sum(w for w, _ in combos), forbidden=("CONV_2D",)
    )
    report = conversion.report
    for bit_w, bit_a in combos:
        row = report[f"w{bit_w}a{bit_a}"]
        assert row.ops["LceBconv2d"] == bit_w  # activation planes share one kernel copy
        assert row.weight_bits == bit_w
        _check_size(row)
        assert row.fused == [f"bn_w{bit_w}a{bit_a}"]


# ------------------------------------------------------------------------------ SBN and XNOR


def test_shift_batchnorm_and_xnor_scaling():
    inputs = tf.keras.Input((6, 6, 32))
    x = kl.BinaryConv2D(32, 3, padding="same", kernel_quantizer="xnor_weight", name="xnor")(inputs)
    x = ShiftBatchNormalization(name="sbn")(x)
    x = kl.BinaryConv2D(
        32,
        3,
        padding="same",
        kernel_quantizer="xnor_weight",
        xnor_input_scaling=True,
        name="xnor_k",
    )(x)
    x = ShiftBatchNormalization(name="sbn_k")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = tf.keras.layers.Dense(10, name="logits")(x)
    model = _randomize(tf.keras.Model(inputs, x))
    conversion = _convert_and_check(model, _inputs(model, -1, 1), bconvs=2, forbidden=("CONV_2D_",))
    report = conversion.report
    assert report["xnor"].fused == ["sbn"]  # SBN became a BN that LCE fused
    assert report["xnor_k"].ops["LceBconv2d"] == 1
    assert report["xnor_k"].ops["MUL"] >= 1  # XNOR-Net's K stays a float multiply
    for name in ("xnor", "xnor_k"):
        _check_size(report[name])


# ------------------------------------------------------------------------------ graph shapes


def test_nested_shared_multi_input_multi_output_model():
    """Inputs/outputs are matched through the flatbuffer's SignatureDef (it orders them by
    name); a nested Sequential is inlined; a shared layer is lowered once per call."""
    block = tf.keras.Sequential(
        [
            tf.keras.Input((6, 6, 32)),
            kl.BinaryConv2D(32, 3, padding="same", name="inner"),
            tf.keras.layers.BatchNormalization(name="inner_bn"),
        ],
        name="block",
    )
    zeta, alpha = tf.keras.Input((6, 6, 32), name="zeta"), tf.keras.Input((6, 6, 32), name="alpha")
    shared = kl.TernaryConv2D(32, 3, padding="same", input_quantizer="ste_sign", name="shared")
    first = block(tf.keras.layers.BatchNormalization(name="shared_bn")(shared(zeta)))
    second = shared(alpha)
    outputs = [
        tf.keras.layers.Dense(4, name="yy")(tf.keras.layers.GlobalAveragePooling2D()(first)),
        tf.keras.layers.Dense(4, name="aa")(tf.keras.layers.GlobalAveragePooling2D()(second)),
    ]
    model = _randomize(tf.keras.Model([zeta, alpha], outputs))
    block.set_weights(_randomize(block, seed=5).get_weights())
    x = [_inputs(model, -1, 1, samples=200, seed=s, index=s - 1) for s in (1, 2)]
    conversion = _convert_and_check(model, x, bconvs=2 * 2 + 1, forbidden=())
    assert [o.shape for o in conversion.verification.outputs] == [(4,), (4,)]
    assert conversion.report["shared"].ops["LceBconv2d"] == 4
    assert conversion.report["inner"].fused == ["inner_bn"]
    parsed = converters.read_flatbuffer(conversion.flatbuffer)
    assert set(parsed.signatures[0].inputs) == {"zeta", "alpha"}
    assert set(parsed.signatures[0].outputs) == {"yy", "aa"}
    assert sorted(parsed.io_positions(["yy", "aa"], "outputs")) == [0, 1]


# ------------------------------------------------------------------------------ fallbacks


def test_float_fallback_is_reported():
    """TernaryNet's layers see float activations: no exact binary decomposition exists, the
    layer stays a float convolution and the report says so."""
    inputs = tf.keras.Input((6, 6, 8))
    x = kl.TernaryConv2D(8, 3, padding="same", name="ternary_float_in")(inputs)
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(10)(x)
    model = _randomize(tf.keras.Model(inputs, x))
    conversion = _convert_and_check(model, _inputs(model, -1, 1), bconvs=0, forbidden=())
    row = conversion.report["ternary_float_in"]
    assert row.lowering.action == "float"
    assert row.ops == {"CONV_2D": 1}
    assert row.kernel_bytes == 4 * row.weights  # float32, 16x the 2-bit limit
    assert conversion.report.fallbacks == [row]


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("layer", "shape", "reason"),
    [
        (tf.keras.layers.LSTM(4, name="rnn"), (5, 3), "recurrent"),
        (tf.keras.layers.Conv3D(2, 2, name="vol"), (4, 4, 4, 1), "3-D"),
    ],
)
def test_unsupported_layers_raise_naming_the_layer(layer, shape, reason, tmp_path):
    inputs = tf.keras.Input(shape)
    model = tf.keras.Model(inputs, layer(inputs))
    with pytest.raises(ConversionError, match=f"'{layer.name}'.*{reason}"):
        converters.convert(model)


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"target": "x86"}, "target"),
        ({"input_type": tf.int16}, "input_type"),
        ({"output_type": "not a dtype"}, "output_type"),
        ({"progress": "yes"}, "progress"),
        ({"allow_unknown_layers": 1}, "allow_unknown_layers"),
    ],
)
def test_options_are_validated(options, argument):
    model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)])
    with pytest.raises(UsageError, match=argument):
        converters.convert(model, **options)
    with pytest.raises(UsageError, match="model"):
        converters.convert("model.keras")
    with pytest.raises(TypeError):
        converters.convert(model, "arm")  # options are keyword-only


def test_verify_detects_a_different_model_and_bad_inputs(tmp_path):
    def build(seed):
        return _randomize(
            tf.keras.Sequential(
                [
                    tf.keras.Input((8,)),
                    kl.BinaryDense(16),
                    tf.keras.layers.BatchNormalization(),
                    tf.keras.layers.Dense(4),
                ]
            ),
            seed,
        )

    model, other = build(0), build(1)
    conversion = converters.convert(model)
    x = _inputs(model, -1, 1, samples=200)
    assert converters.verify(model, conversion.flatbuffer, x).passed()
    with pytest.raises(ConversionError, match="int8"):  # LCE would silently keep float32 I/O
        converters.convert(model, input_type=tf.int8)
    mismatch = converters.verify(other, conversion.flatbuffer, x)
    assert not mismatch.passed()
    with pytest.raises(VerificationError, match="disagrees"):
        mismatch.check()
    with pytest.raises(ValueError, match="shape"):
        converters.verify(model, conversion.flatbuffer, np.zeros((2, 9), np.float32))
    path = conversion.save(tmp_path / "model.tflite")
    assert path.read_bytes() == conversion.flatbuffer
    with pytest.raises(
        (OSError, ValueError), match="missing"
    ):  # kbnn._io: UsageError or WriteError
        conversion.save(tmp_path / "missing" / "model.tflite")
    assert sorted(os.listdir(tmp_path)) == ["model.tflite"]  # no temporary files left


def test_benchmark_and_float_twin():
    model = _randomize(
        tf.keras.Sequential(
            [
                tf.keras.Input((8, 8, 32)),
                kl.BinaryConv2D(32, 3, padding="same"),
                tf.keras.layers.BatchNormalization(),
                tf.keras.layers.Flatten(),
                kl.BinaryDense(10),
            ]
        )
    )
    conversion = converters.convert(model)
    twin = converters.float_twin_flatbuffer(model)
    twin_ops = converters.inspect(twin).op_counts
    assert not converters.inspect(twin).custom_ops
    assert twin_ops.get("CONV_2D") == 1 and twin_ops.get("FULLY_CONNECTED") == 1
    twin_model = converters.float_twin(model)
    assert not any(getattr(layer, "kernel_quantizer", None) for layer in twin_model.layers)
    np.testing.assert_array_equal(
        twin_model.layers[1].kernel.numpy(), model.layers[0].kernel.numpy()
    )
    assert len(twin) > 20 * len(conversion.flatbuffer) / 2
    for flatbuffer, runtime in ((conversion.flatbuffer, "lce"), (twin, "tflite")):
        result = converters.benchmark(flatbuffer, None, num_threads=1, runs=5, warmup=1)
        assert result["runtime"] == runtime
        assert 0 < result["min_ms"] <= result["median_ms"] <= result["p90_ms"]
    with pytest.raises(ValueError, match="num_threads"):
        converters.benchmark(conversion.flatbuffer, None, num_threads=0)


# ------------------------------------------------------------------------------ MNIST BinaryNet


def _seed_binarynet():
    """The seed MNIST BinaryNet (TensorLayer recipe): binary conv 32 and 64 (5×5), binary
    dense 256 and 10, each followed by BN; max-pooling after the convolutions."""
    inputs = tf.keras.Input((28, 28, 1))
    x = kl.BinaryConv2D(32, 5, padding="same", input_quantizer=None, name="conv1")(inputs)
    x = tf.keras.layers.MaxPool2D(2)(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = kl.BinaryConv2D(64, 5, padding="same", name="conv2")(x)
    x = tf.keras.layers.MaxPool2D(2)(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.Flatten()(x)
    x = kl.BinaryDense(256, name="dense1")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = kl.BinaryDense(10, name="dense2")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    return _randomize(tf.keras.Model(inputs, tf.keras.layers.Activation("softmax")(x)))


@pytest.mark.slow
def test_seed_mnist_binarynet_is_20x_smaller_than_its_float_twin():
    model = _seed_binarynet()
    conversion = converters.convert(model)
    twin = converters.float_twin_flatbuffer(model)
    assert len(twin) >= 20 * conversion.size, (len(twin), conversion.size)
    assert "FULLY_CONNECTED" not in conversion.ops  # needs the dense rewrite
    for name in ("conv2", "dense1", "dense2"):
        _check_size(conversion.report[name])


# ------------------------------------------------------------------------------ sign ties


def test_sign_margins_measure_how_far_sign_inputs_are_from_zero():
    inputs = tf.keras.Input((4,))
    signs = kl.Sign(name="sign")(inputs)
    doubled = tf.keras.layers.Rescaling(2.0, name="double")(inputs)
    logits = kl.BinaryDense(3, name="bdense")(doubled)
    model = tf.keras.Model(inputs, [signs, logits])
    x = np.array([[0.5, -3.0, 0.25, 1.0], [1e-3, 0.5, -0.5, 0.5]], np.float32)
    # Sign reads x: min|x| / max(1, max|x|); bdense reads 2x: min|2x| / max(1, max|2x|).
    expected = [min(0.25 / 3.0, 0.5 / 6.0), min(1e-3 / 1.0, 2e-3 / 1.0)]
    np.testing.assert_allclose(converters.sign_margins(model, x), expected, rtol=1e-6)
    float_only = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)])
    assert np.all(np.isinf(converters.sign_margins(float_only, x)))


def test_lce_binary_conv_rounding_does_not_shrink_near_zero():
    """Why a sign right after an LceBconv2d (plus a float shortcut) can flip: LCE computes the
    float output as (2·popcount)·(−m) + (c + K·m) in float32 (the back-transformation
    K − 2·popcount folded into the bias), so every output, also one near 0, carries an absolute
    rounding error of order 2⁻²⁴·K·|m|: with u = 2⁻²⁴, storing m and c in float32 costs
    u·(K|m| + |c|), the bias c + K·m another u·(|c| + K|m|), the product u·2K|m| and the sum
    u·(|c| + K|m|), at most u·(3|c| + 5K|m|) per channel."""
    channels, size = 64, 6
    inputs = tf.keras.Input((size, size, channels))
    y = kl.BinaryConv2D(channels, 3, padding="same", name="bconv")(inputs)
    y = tf.keras.layers.BatchNormalization(name="bn")(y)
    model = _randomize(tf.keras.Model(inputs, y))
    x = _inputs(model, -1, 1, samples=8)
    conversion = converters.convert(model)
    assert conversion.ops.get("LceBconv2d") == 1 and conversion.report["bconv"].fused == ["bn"]
    actual = lce_outputs(conversion.flatbuffer, [x])[0].reshape(x.shape)

    signs = np.pad(
        np.where(x >= 0, 1.0, -1.0), ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=1.0
    )  # pad_values=1
    kernel = np.where(model.get_layer("bconv").kernel.latent_variable.numpy() >= 0, 1.0, -1.0)
    counts = sum(
        np.einsum("nhwi,io->nhwo", signs[:, a : a + size, b : b + size], kernel[a, b])
        for a in range(3)
        for b in range(3)
    )
    multiplier, offset = batchnorm_affine(model.get_layer("bn"))
    exact = counts * multiplier + offset
    error = np.abs(actual - exact)
    k = 9 * channels
    assert np.all(error <= 2.0**-24 * (3 * np.abs(offset) + 5 * k * np.abs(multiplier)))
    near_zero = np.abs(exact) < 0.05
    assert near_zero.sum() > 10
    assert error[near_zero].max() > 100 * 2.0**-24 * 0.05, "error no longer ~K·|m|: update docs"


def _residual_binary_model():
    """Bi-Real Net and ReActNet blocks exactly as the zoo builds them (real-valued shortcuts,
    approx_sign / magnitude-aware weights, 2×2 average-pool shortcuts, RSign and RPReLU
    shifts, channel doubling by concatenation), on an 8×8 input."""
    from kbnn.zoo import imagenet

    inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = tf.keras.layers.BatchNormalization(name="stem_bn")(x)
    x = imagenet._bireal_block(x, 16, 1, "batchnorm", "bireal1")
    x = imagenet._bireal_block(x, 32, 2, "batchnorm", "bireal2")
    x = imagenet._reactnet_block(x, 32, 1, "batchnorm", "react1")
    x = imagenet._reactnet_block(x, 64, 2, "batchnorm", "react2")
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = _randomize(tf.keras.Model(inputs, tf.keras.layers.Dense(10, name="logits")(x)))
    rng = np.random.default_rng(2)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.PReLU):
            layer.alpha.assign(rng.uniform(-0.5, 0.5, layer.alpha.shape))
        if isinstance(layer, tf.keras.layers.BatchNormalization):  # outputs of order 1
            conv = layer._inbound_nodes[0].inbound_layers
            fan_in = np.prod(conv.kernel.shape[:-1])
            layer.moving_variance.assign(layer.moving_variance * fan_in)
            layer.moving_mean.assign(layer.moving_mean * np.sqrt(fan_in))
    return model


def test_residual_binary_blocks_agree_tightly_away_from_sign_ties():
    """On samples whose sign inputs are all ≥ 1e-4 (relative) from 0 — far outside the float
    rounding of Keras and LCE — the converted Bi-Real/ReActNet blocks match Keras to float
    tolerance; the zoo models' random-weight disagreements are sign ties only."""
    model = _residual_binary_model()
    x = _inputs(model, samples=400)
    margins = converters.sign_margins(model, x)
    clean = x[margins >= 1e-4]
    assert len(clean) >= 100, np.sort(margins)[::40]
    conversion = converters.convert(model, verify_with=clean, allow_unknown_layers=True)
    assert conversion.ops.get("LceBconv2d") == 7
    report = conversion.verification
    assert report.argmax_agreement == 1.0
    assert report.max_abs_diff <= report.outputs[0].tolerance


@pytest.mark.parametrize(
    "input_quantizer", ["ste_tern", lq.quantizers.SteTern(threshold_value=0.2)]
)
def test_ternary_input_quantizer_is_refused_not_silently_binarized(input_quantizer):
    """LCE lowers a ternary input quantizer as sign with sign(0) = +1: refused up front."""
    inputs = tf.keras.Input((6, 6, 4))
    x = lq.layers.QuantConv2D(
        8,
        3,
        input_quantizer=input_quantizer,
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        name="tern_conv",
    )(inputs)
    model = tf.keras.Model(inputs, tf.keras.layers.Flatten()(x))
    with pytest.raises(ConversionError, match=r"'tern_conv'.*ternary.*sign\(0\) = \+1"):
        converters.convert(model)
    assert converters.levels.is_ternary_quantizer(lq.quantizers.SteTern())
    for other in (
        lq.quantizers.SteSign(),
        lq.quantizers.SteHeaviside(),
        kbnn.quantizers.DoReFaActivation(2),
    ):
        assert not converters.levels.is_ternary_quantizer(other)


def test_in_memory_lambda_is_converted_as_an_opaque_layer():
    """A Lambda between binary convolutions (a grouped-conv split, as in MeliusNet) converts and
    verifies against Keras; only *loading* a file with a Lambda is refused (kbnn._loading)."""
    inputs = tf.keras.Input((8, 8, 32))
    x = kl.BinaryConv2D(32, 3, padding="same", pad_values=1.0, name="b1")(inputs)
    x = tf.keras.layers.BatchNormalization(name="bn")(x)
    x = tf.keras.layers.Lambda(lambda t: t[..., :16] + t[..., 16:], name="split_add")(x)
    x = kl.BinaryConv2D(16, 3, name="b2")(x)
    model = tf.keras.Model(inputs, tf.keras.layers.GlobalAveragePooling2D()(x))
    randomize_weights(model, seed=5)
    x = np.random.default_rng(5).normal(size=(8, 8, 8, 32)).astype(np.float32)
    conversion = converters.convert(model, verify_with=x)
    assert conversion.ops["LceBconv2d"] == 2 and conversion.ops["STRIDED_SLICE"] == 2


@pytest.mark.parametrize("name", ["binarynet_mnist", "dorefanet_mnist", "ternarynet_mnist"])
def test_the_same_model_converts_to_the_same_bytes(name):
    # Tensor names carry quantizer names; Keras' global counters used to make them differ.
    from kbnn import zoo

    model = zoo.get(name, weights="pretrained")
    first = converters.convert(model).flatbuffer
    assert converters.convert(model).flatbuffer == first
