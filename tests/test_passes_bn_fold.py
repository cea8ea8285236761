"""A BatchNorm after a dense layer that kbnn splits into planes is folded, through LCE.

`dense_to_conv` leaves a Reshape between the planes' sum (Add or CombineBitPlanes) and the BN;
`fold_batchnorm` looks through a Reshape that keeps the channel axis. References: LCE's
interpreter against Keras on random inputs (tight tolerance), and the flatbuffer's op counts
against the same model without its BN (a folded BN adds no op).
"""

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import layers as kl
from kbnn.converters import convert, passes
from kbnn.converters.flatbuffer import read_flatbuffer

import numpy as np
import pytest
import tensorflow as tf
from helpers import randomize_weights

L = tf.keras.layers
SAMPLES = 256


def _dense(kind):
    if kind == "dorefa_w1a2":
        return kl.DorefaDense(24, bit_w=1, bit_a=2, name="dense")
    if kind == "dorefa_w2a2":
        return kl.DorefaDense(24, bit_w=2, bit_a=2, name="dense")
    if kind == "ternary":
        return kl.TernaryDense(24, input_quantizer="ste_sign", name="dense")
    return kl.FiveLevelDense(24, input_quantizer="ste_sign", name="dense")


def _model(kind, layout, with_bn=True):
    """layout: "image" (Flatten of an image: one H×W convolution), "vector" (N, F) or
    "sequence" (N, T, F): Reshape → 1×1 convolution → Reshape."""
    shape = {"image": (4, 4, 32), "vector": (64,), "sequence": (3, 64)}[layout]
    inputs = tf.keras.Input(shape)
    x = L.Flatten()(inputs) if layout == "image" else inputs
    x = _dense(kind)(x)
    if with_bn:
        x = L.BatchNormalization(name="bn")(x)
    model = randomize_weights(tf.keras.Model(inputs, x), seed=5)
    if with_bn and kind.startswith("dorefa"):
        gamma = model.get_layer("bn").gamma  # negative multipliers must fold too
        gamma.assign(gamma.numpy() * np.where(np.arange(24) % 3, 1.0, -1.0))
    return model


def _without_bn(model, kind, layout):
    twin = _model(kind, layout, with_bn=False)
    twin.get_layer("dense").set_weights(model.get_layer("dense").get_weights())
    return twin


@pytest.mark.parametrize(
    ("kind", "layout"),
    [
        ("dorefa_w1a2", "image"),  # k-bit activations: CombineBitPlanes, one weight plane
        ("dorefa_w2a2", "sequence"),  # CombineBitPlanes after two weight planes' sum
        ("ternary", "vector"),  # two weight planes summed by an Add
        ("five_level", "image"),  # three weight planes
    ],
)
def test_bn_after_plane_split_dense_is_folded(kind, layout):
    model = _model(kind, layout)
    low = -0.2 if kind.startswith("dorefa") else -1.0
    x = np.random.default_rng(2).uniform(low, 1.2, (SAMPLES,) + model.input_shape[1:])
    conversion = convert(model, verify_with=x.astype(np.float32))
    report = conversion.report
    assert report["dense"].lowering.action == "planes"
    assert report["dense"].fused == ["bn"] and not report["bn"].ops, report
    assert "BatchNormalization" not in {
        type(layer).__name__ for layer in conversion.lowered_model.layers
    }
    (output,) = conversion.verification.outputs
    assert output.max_abs_diff <= 2e-5 * max(1.0, float(np.abs(model.predict(x, verbose=0)).max()))
    plain = convert(_without_bn(model, kind, layout))
    ops = read_flatbuffer(conversion.flatbuffer).op_counts()
    assert ops == read_flatbuffer(plain.flatbuffer).op_counts()  # no MUL/ADD left for the BN
    assert ops["LceBconv2d"] == report["dense"].lowering.bconvs


def test_reshape_that_moves_the_channel_axis_keeps_its_bn():
    inputs = tf.keras.Input((64,))
    x = kl.TernaryDense(16, input_quantizer="ste_sign", name="dense")(inputs)
    x = L.Reshape((2, 8))(x)  # BN over 8 channels ≠ the dense layer's 16 units
    x = L.BatchNormalization(name="bn")(x)
    model = randomize_weights(tf.keras.Model(inputs, x), seed=6)
    lowered = passes.lower(model)
    assert "bn" in {layer.name for layer in lowered.layers}
    x = np.random.default_rng(3).uniform(-1, 1, (32, 64)).astype(np.float32)
    np.testing.assert_allclose(lowered(x), model(x, training=False), rtol=0, atol=1e-4)
