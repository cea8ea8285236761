"""Each graph pass alone, in Keras: the structure it promises and exact outputs (no LCE here)."""

import functools

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import layers as kl
from kbnn import quantizers as kq
from kbnn.converters import convert, passes
from kbnn.converters.errors import ConversionError
from kbnn.converters.flatbuffer import read_flatbuffer
from kbnn.converters.graph import origin, rebuild
from kbnn.converters.layers import ActivationBitPlanes, CombineBitPlanes
from kbnn.converters.plan import plan_layer
from kbnn.normalization import ShiftBatchNormalization

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from helpers import randomize_weights

RNG = np.random.default_rng(7)


# Positive γ, moving means N(0, 9), sub-models randomized with seed + 1.
_randomize = functools.partial(randomize_weights, signed_gamma=False, mean_scale=3.0, nested=True)


def _same_outputs(original, rewritten, shape, atol=1e-4, low=-1.0, high=1.5):
    x = RNG.uniform(low, high, (16,) + shape).astype(np.float32)
    want = original(x, training=False).numpy()
    got = rewritten(x, training=False).numpy()
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=0, atol=atol * scale)


def _types(model):
    return [type(layer).__name__ for layer in model.layers]


def _bn():
    return tf.keras.layers.BatchNormalization()


# ------------------------------------------------------------------------------ rebuild


def test_rebuild_copies_without_touching_the_original():
    inputs = tf.keras.Input((6, 6, 4))
    x = kl.BinaryConv2D(8, 3, padding="same", name="conv")(inputs)
    x = _bn()(x)
    model = _randomize(tf.keras.Model(inputs, x))
    nodes = {layer.name: len(layer._inbound_nodes) for layer in model.layers}
    copy = rebuild(model)
    assert {layer.name: len(layer._inbound_nodes) for layer in model.layers} == nodes
    assert all(a is not b for a, b in zip(model.layers, copy.layers, strict=True))
    _same_outputs(model, copy, (6, 6, 4), atol=0)


def test_rebuild_inlines_nested_and_sequential_models():
    block = tf.keras.Sequential(
        [tf.keras.Input((6, 6, 4)), kl.BinaryConv2D(4, 3, padding="same", name="inner"), _bn()],
        name="block",
    )
    inputs = tf.keras.Input((6, 6, 4))
    model = _randomize(tf.keras.Model(inputs, block(block(inputs))))
    flat = rebuild(model)
    assert not any(isinstance(layer, tf.keras.Model) for layer in flat.layers)
    assert len([t for t in _types(flat) if t == "BinaryConv2D"]) == 1  # shared layer, one clone
    _same_outputs(model, flat, (6, 6, 4), atol=0)


def test_rebuild_rejects_subclassed_and_unbuilt_models():
    class Net(tf.keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ConversionError, match="subclassed"):
        rebuild(Net())
    with pytest.raises(ConversionError, match="input shape"):
        rebuild(tf.keras.Sequential([tf.keras.layers.Dense(2)]))


# ------------------------------------------------------------------------------ 1. shift BN


def test_fold_shift_batchnorm_keeps_outputs():
    inputs = tf.keras.Input((5, 5, 6))
    x = kl.BinaryConv2D(6, 3, padding="same")(inputs)
    x = ShiftBatchNormalization(name="sbn")(x)
    model = _randomize(tf.keras.Model(inputs, x))
    folded = passes.fold_shift_batchnorm(model)
    assert type(folded.get_layer("sbn")) is tf.keras.layers.BatchNormalization
    _same_outputs(model, folded, (5, 5, 6), atol=1e-5)


# ------------------------------------------------------------------------------ 2. pool / BN


def _pool_bn_model(sign):
    inputs = tf.keras.Input((6, 6, 4))
    x = kl.BinaryConv2D(4, 3, padding="same", name="conv")(inputs)
    x = tf.keras.layers.MaxPool2D(2, name="pool")(x)
    x = tf.keras.layers.BatchNormalization(name="bn")(x)
    model = _randomize(tf.keras.Model(inputs, x))
    bn = model.get_layer("bn")
    bn.gamma.assign(sign * np.abs(bn.gamma.numpy()))
    return model


def test_reorder_pool_batchnorm_with_positive_multipliers():
    model = _pool_bn_model(+1)
    reordered = passes.reorder_pool_batchnorm(model)
    assert _types(reordered)[-2:] == ["BatchNormalization", "MaxPooling2D"]
    _same_outputs(model, reordered, (6, 6, 4), atol=1e-6)


def test_reorder_pool_batchnorm_leaves_negative_multipliers():
    model = _pool_bn_model(-1)
    assert passes.reorder_pool_batchnorm(model) is model


# ------------------------------------------------------------------------------ 3. dense → conv


@pytest.mark.parametrize("sequential", [False, True])
def test_dense_to_conv(sequential):
    layers = [
        tf.keras.layers.Flatten(input_shape=(4, 4, 2)),
        kl.BinaryDense(12, name="d1", use_bias=True),
        _bn(),
        lq.layers.QuantDense(
            5,
            input_quantizer="ste_sign",
            kernel_quantizer="ste_sign",
            name="d2",
            kernel_constraint="weight_clip",
            activation="softmax",
        ),
    ]
    if sequential:
        model = tf.keras.Sequential(layers)
    else:
        inputs = tf.keras.Input((4, 4, 2))
        x = inputs
        for layer in layers[1:]:
            x = layer(tf.keras.layers.Flatten()(x) if x is inputs else x)
        model = tf.keras.Model(inputs, x)
    model = _randomize(model)
    rewritten = passes.dense_to_conv(model)
    types = _types(rewritten)
    assert "QuantDense" not in types and "BinaryDense" not in types
    convs = [layer for layer in rewritten.layers if isinstance(layer, lq.layers.QuantConv2D)]
    # Flatten + dense on the (4, 4, 2) image: one 4×4 VALID conv on the image itself.
    assert [c.kernel_size for c in convs] == [(4, 4), (1, 1)]
    assert convs[0].padding == "valid" and "Flatten" not in _types(rewritten)
    assert {origin(c.name) for c in convs} == {"d1", "d2"}
    _same_outputs(model, rewritten, (4, 4, 2), atol=1e-5)


def test_k_bit_dense_on_a_flattened_thin_image_keeps_its_bit_planes():
    """An 8-bit fixed-point dense on a flattened 1-channel image stays a flat 1×1 convolution
    (784 channels, 25 words per plane), so its bit planes pay off, instead of a 28×28 VALID
    convolution with 1 useful bit per word that would fall back to float."""
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Flatten()(inputs)
    x = lq.layers.QuantDense(
        16, input_quantizer=kq.FixedPointInput(8), kernel_quantizer="ste_sign", name="d"
    )(x)
    model = _randomize(tf.keras.Model(inputs, x))
    lowered = passes.lower(model)
    convs = [layer for layer in lowered.layers if isinstance(layer, lq.layers.QuantConv2D)]
    assert [c.kernel_size for c in convs] == [(1, 1)]
    assert "ActivationBitPlanes" in _types(lowered)
    pixels = np.random.default_rng(0).integers(0, 256, (8, 28, 28, 1)) / 255.0
    np.testing.assert_allclose(
        lowered.predict(pixels, verbose=0), model.predict(pixels, verbose=0), rtol=1e-5, atol=1e-4
    )


def test_signed_fixed_point_dense_is_exact_bit_planes_without_a_constant():
    """2x − 1 of 8-bit pixels through a signed FixedPointInput dense: 8 ±1 planes with
    coefficients −2^j/n and no ΣW/2 term, equal to Keras on the pixels."""
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Rescaling(2.0, offset=-1.0)(inputs)
    x = tf.keras.layers.Flatten()(x)
    quantizer = kq.FixedPointInput(8, signed=True)
    x = lq.layers.QuantDense(
        16, input_quantizer=quantizer, kernel_quantizer="ste_sign", use_bias=True, name="d"
    )(x)
    model = _randomize(tf.keras.Model(inputs, x))
    lowered = passes.lower(model)
    assert "ActivationBitPlanes" in _types(lowered)
    combine = next(layer for layer in lowered.layers if isinstance(layer, CombineBitPlanes))
    assert combine.coefficients == [-(2.0**j) / 255 for j in range(8)]
    np.testing.assert_allclose(combine.get_weights()[1], model.get_layer("d").bias.numpy())
    pixels = np.random.default_rng(1).integers(0, 256, (8, 28, 28, 1)) / 255.0
    np.testing.assert_allclose(
        lowered.predict(pixels, verbose=0), model.predict(pixels, verbose=0), rtol=1e-5, atol=1e-4
    )


def test_signed_fixed_point_conv_with_same_padding_stays_float():
    inputs = tf.keras.Input((6, 6, 64))
    x = lq.layers.QuantConv2D(
        4,
        3,
        padding="same",
        input_quantizer=kq.FixedPointInput(4, signed=True),
        kernel_quantizer="ste_sign",
        name="c",
    )(inputs)
    model = _randomize(tf.keras.Model(inputs, x))
    assert "pad is not a level" in plan_layer(model.get_layer("c")).reason
    lowered = passes.lower(model)
    assert "ActivationBitPlanes" not in _types(lowered)
    _same_outputs(model, lowered, (6, 6, 64), atol=1e-4)


def test_dense_to_conv_on_sequence_inputs_and_float_dense_untouched():
    inputs = tf.keras.Input((3, 8))
    x = kl.BinaryDense(4, name="binary")(inputs)  # (N, 3, 8) -> (N, 3, 4)
    x = tf.keras.layers.Dense(2, name="float")(x)
    model = _randomize(tf.keras.Model(inputs, x))
    rewritten = passes.dense_to_conv(model)
    assert "Dense" in _types(rewritten) and "BinaryDense" not in _types(rewritten)
    _same_outputs(model, rewritten, (3, 8), atol=1e-5)


# ------------------------------------------------------------------------------ 4. activation planes


@pytest.mark.parametrize(("bit_w", "bit_a"), [(1, 1), (2, 2), (4, 2)])
def test_split_activation_planes_exact_with_borders(bit_w, bit_a):
    inputs = tf.keras.Input((5, 5, 8))  # enough channels for planes to pay off on ARM
    x = kl.DorefaConv2D(4, 3, padding="same", bit_w=bit_w, bit_a=bit_a, use_bias=True, name="c")(
        inputs
    )
    model = _randomize(tf.keras.Model(inputs, x))
    split = passes.split_activation_planes(model)
    assert _types(split)[1:] == ["ActivationBitPlanes", "QuantConv2D", "CombineBitPlanes"]
    conv = split.layers[2]
    assert conv.pad_values == 1.0 and lq.quantizers.serialize(conv.input_quantizer)
    _same_outputs(model, split, (5, 5, 8), atol=1e-5, low=-0.3, high=1.3)


def test_split_activation_planes_shares_the_planes_of_one_input():
    inputs = tf.keras.Input((4, 4, 8))
    a = kl.DorefaConv2D(2, 3, bit_w=1, bit_a=2, name="a")(inputs)
    b = kl.DorefaConv2D(2, 3, bit_w=1, bit_a=2, name="b")(inputs)
    model = _randomize(tf.keras.Model(inputs, tf.keras.layers.Add()([a, b])))
    split = passes.split_activation_planes(model)
    assert _types(split).count("ActivationBitPlanes") == 1
    _same_outputs(model, split, (4, 4, 8), atol=1e-5, low=0, high=1)


@pytest.mark.parametrize(("channels", "planes"), [(1, False), (3, False), (8, True), (64, True)])
def test_k_bit_inputs_on_few_channels_stay_a_float_convolution(channels, planes):
    """3-bit planes cost 3·⌈C/32⌉ binary word-MACs against C float MACs (ARM-measured ratio
    1.6): a 1- or 3-channel image keeps an exact float convolution of its dequantized input."""
    inputs = tf.keras.Input((6, 6, channels))
    x = kl.DorefaConv2D(4, 3, padding="same", bit_w=1, bit_a=3, name="c")(inputs)
    model = _randomize(tf.keras.Model(inputs, x))
    lowered = passes.lower(model)
    assert ("ActivationBitPlanes" in _types(lowered)) is planes
    if not planes:
        conv = lowered.get_layer("c")
        assert conv.kernel_quantizer is None and conv.input_quantizer is None
        assert _types(lowered)[1:] == ["DequantizedActivation", "QuantConv2D"]
        assert "float convolution costs fewer ARM" in plan_layer(model.get_layer("c")).reason
    _same_outputs(model, lowered, (6, 6, channels), atol=1e-5, low=-0.2, high=1.2)


def test_float_k_bit_input_has_no_broadcasting_minimum():
    """The DoReFa input of a float-kept layer is clipped with TFLite's fused RELU_N1_TO_1, not
    the broadcasting MINIMUM of clip(x, 0, 1) (about 65 aarch64 instructions per element on a
    28×28 image, docs/arm64.md); the flatbuffer still computes the Keras model's outputs."""
    inputs = tf.keras.Input((8, 8, 1))
    x = kl.DorefaConv2D(4, 3, padding="same", bit_w=1, bit_a=3, name="c")(inputs)
    model = _randomize(tf.keras.Model(inputs, x))
    conversion = convert(
        model, verify_with=np.random.default_rng(0).uniform(-0.2, 1.2, (8, 8, 8, 1))
    )
    ops = read_flatbuffer(conversion.flatbuffer).op_counts()
    assert "MINIMUM" not in ops and ops.get("CONV_2D") == 1


# ------------------------------------------------------------------------------ 5. weight planes


@pytest.mark.parametrize(
    ("quantizer", "planes"),
    [
        ("ste_sign", 1),
        ("xnor_weight", 1),
        ("twn", 2),
        ("five_level", 3),
        (lq.quantizers.DoReFa(3, "weights"), 3),
    ],
)
def test_split_weight_planes(quantizer, planes):
    inputs = tf.keras.Input((5, 5, 8))
    x = lq.layers.QuantConv2D(
        6,
        3,
        padding="same",
        pad_values=1.0,
        input_quantizer="ste_sign",
        kernel_quantizer=quantizer,
        use_bias=True,
        name="conv",
    )(inputs)
    model = _randomize(tf.keras.Model(inputs, x))
    split = passes.split_weight_planes(model)
    convs = [layer for layer in split.layers if isinstance(layer, lq.layers.QuantConv2D)]
    assert len(convs) == planes
    for conv in convs:
        assert conv.kernel_quantizer is None
        magnitudes = np.abs(conv.kernel.numpy()).reshape(-1, 6)
        np.testing.assert_allclose(magnitudes, magnitudes[:1].repeat(len(magnitudes), 0))
    assert ("Add" in _types(split)) == (planes > 1)
    _same_outputs(model, split, (5, 5, 8), atol=1e-5)


def test_split_weight_planes_leaves_float_inputs():
    inputs = tf.keras.Input((5, 5, 8))
    x = kl.TernaryConv2D(4, 3, name="float_in")(inputs)
    model = tf.keras.Model(inputs, x)
    assert passes.split_weight_planes(model) is model


# ------------------------------------------------------------------------------ 6. BN folding


def test_fold_batchnorm_into_planes_and_combine():
    inputs = tf.keras.Input((5, 5, 8))
    x = kl.TernaryConv2D(8, 3, padding="same", input_quantizer="ste_sign", name="t")(inputs)
    x = tf.keras.layers.BatchNormalization(name="bn_t")(x)
    x = kl.DorefaConv2D(4, 3, padding="same", bit_w=2, bit_a=2, name="d")(x)
    x = tf.keras.layers.BatchNormalization(name="bn_d")(x)
    model = _randomize(tf.keras.Model(inputs, x))
    for bn in ("bn_t", "bn_d"):  # negative multipliers must fold too
        gamma = model.get_layer(bn).gamma
        gamma.assign(gamma.numpy() * np.where(np.arange(gamma.shape[0]) % 2, -1, 1))
    planes = passes.split_weight_planes(passes.split_activation_planes(model))
    folded = passes.fold_batchnorm(planes)
    assert "BatchNormalization" in _types(planes)
    assert "BatchNormalization" not in _types(folded)
    _same_outputs(model, folded, (5, 5, 8), atol=1e-4)


# ------------------------------------------------------------------------------ 7. fallbacks


def test_freeze_float_fallbacks_stores_the_quantized_kernel():
    inputs = tf.keras.Input((6, 6, 1))
    x = kl.BinaryConv2D(4, 3, input_quantizer=None, name="first")(inputs)  # float inputs
    model = _randomize(tf.keras.Model(inputs, x))
    frozen = passes.freeze_float_fallbacks(model)
    layer = frozen.get_layer("first")
    assert layer.kernel_quantizer is None
    assert set(np.unique(layer.kernel.numpy())) == {-1.0, 1.0}
    _same_outputs(model, frozen, (6, 6, 1), atol=1e-6)


# ------------------------------------------------------------------------------ all passes


def test_lower_is_exact_on_a_mixed_model():
    inputs = tf.keras.Input((8, 8, 3))
    x = kl.BinaryConv2D(32, 3, padding="same", input_quantizer=None, name="first")(inputs)
    x = tf.keras.layers.MaxPool2D(2)(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = kl.BinaryConv2D(32, 3, padding="same", kernel_quantizer="xnor_weight", name="xnor")(x)
    x = ShiftBatchNormalization()(x)
    x = kl.FiveLevelConv2D(16, 3, padding="same", input_quantizer="ste_sign", name="five")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = kl.DorefaConv2D(16, 3, padding="same", bit_w=2, bit_a=2, name="dorefa")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.Flatten()(x)
    x = kl.BinaryDense(10, name="dense")(x)
    model = _randomize(tf.keras.Model(inputs, x))
    lowered = passes.lower(model)
    assert not any(getattr(layer, "kernel_quantizer", None) for layer in lowered.layers)
    assert {origin(layer.name) for layer in lowered.layers} <= {
        layer.name for layer in model.layers
    } | {model.input_names[0]}
    _same_outputs(model, lowered, (8, 8, 3), atol=1e-4, low=0, high=1)
    assert isinstance(lowered.get_layer("dorefa_kb_bits"), ActivationBitPlanes)
    assert isinstance(lowered.get_layer("dorefa_kb_combine"), CombineBitPlanes)


# ------------------------------------------------------------------------------ 1b. hard tanh


def test_drop_hard_tanh_before_sign_only():
    from kbnn.activations import hard_tanh

    inputs = tf.keras.Input((6, 6, 4))
    x = kl.BinaryConv2D(8, 3, padding="same", name="a")(inputs)
    x = _bn()(x)
    x = tf.keras.layers.Activation(hard_tanh, name="htanh_to_sign")(x)
    x = tf.keras.layers.MaxPool2D(2)(x)
    x = kl.BinaryConv2D(8, 3, padding="same", name="b")(x)
    x = _bn()(x)
    y = tf.keras.layers.Activation(lq.activations.hard_tanh, name="htanh_to_float")(x)
    y = tf.keras.layers.Flatten()(y)
    y = tf.keras.layers.Dense(3)(y)
    model = _randomize(tf.keras.Model(inputs, y))
    dropped = passes.drop_hard_tanh_before_sign(model)
    names = {layer.name for layer in dropped.layers}
    assert "htanh_to_sign" not in names and "htanh_to_float" in names
    _same_outputs(model, dropped, (6, 6, 4), atol=1e-6)
    relu = tf.keras.layers.ReLU()
    assert passes.is_hard_tanh(tf.keras.layers.ReLU(max_value=1.0, negative_slope=0.0)) is False
    assert passes.is_hard_tanh(relu) is False
