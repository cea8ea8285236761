"""`factor_kernel_scales`: a binary convolution's ±α kernel becomes ±1 plus a per-channel multiply.

References: Keras outputs before and after the pass (the identity conv(x, α·B) = α·conv(x, B)),
and, through LCE, the flatbuffer that LCE makes from the unfactored ±α kernel (the form kbnn
emitted before this pass): same op counts and the same outputs in LCE's interpreter.
"""

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn.converters import levels, passes
from kbnn.converters.flatbuffer import read_flatbuffer
from kbnn.converters.graph import rebuild
from kbnn.converters.layers import CombineBitPlanes
from kbnn.converters.passes._common import quantized_weights, with_constant_kernel

import larq as lq
import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf
from helpers import randomize_weights
from larq_compute_engine.tflite.python.interpreter import Interpreter

L = tf.keras.layers
CHANNELS = 12


def _model(kernel_quantizer="magnitude_aware_sign", *, bias=False, bn=True, zero_channel=False):
    inputs = tf.keras.Input((7, 7, 40))
    x = lq.layers.QuantConv2D(
        CHANNELS, 3, padding="same", pad_values=1.0, input_quantizer="ste_sign",
        kernel_quantizer=kernel_quantizer, use_bias=bias, name="conv",
    )(inputs)  # fmt: skip
    if bn:
        x = L.BatchNormalization(name="bn")(x)
    x = L.GlobalAveragePooling2D()(x)
    model = randomize_weights(tf.keras.Model(inputs, x), seed=3)
    if zero_channel:
        kernel = model.get_layer("conv").kernel
        kernel.assign(kernel.numpy() * (np.arange(CHANNELS) != 4))  # channel 4: α = 0
    return model


def _inputs(count=64):
    return np.random.default_rng(11).uniform(-1, 1, (count, 7, 7, 40)).astype(np.float32)


def _unfactored(model):
    kept = tuple(p for p in passes.PASSES if p is not passes.factor_kernel_scales)
    return passes.lower(model, passes=kept)


def _scaled(model):
    """`model` with conv's kernel frozen to the constant q(W) = ±α (no kernel quantizer): the
    form a single binary plane had before `split_weight_planes` emitted B plus the multiply,
    and the form `fold_batchnorm` leaves for plane sums."""

    def freeze(layer, args, kwargs):
        if layer.name != "conv":
            return None
        kernel, *bias = quantized_weights(layer)
        return with_constant_kernel(layer, args[0], kernel, bias[0] if bias else None)

    return rebuild(model, freeze)


@pytest.mark.parametrize(
    ("bias", "bn", "zero_channel"),
    [(False, True, False), (True, True, False), (True, False, False), (False, True, True)],
)
def test_scales_leave_the_kernel_and_keras_outputs_stay(bias, bn, zero_channel):
    model = _model(bias=bias, bn=bn, zero_channel=zero_channel)
    before = _scaled(model)
    convs = [layer.name for layer in before.layers if isinstance(layer, lq.layers.QuantConv2D)]
    assert convs == ["conv"]
    after = passes.factor_kernel_scales(before)
    for name in convs:
        scaled = before.get_layer(name).kernel.numpy()
        kernel = after.get_layer(name).kernel.numpy()
        assert set(np.unique(kernel)) <= {-1.0, 1.0}
        np.testing.assert_array_equal(kernel, np.where(scaled < 0, -1.0, 1.0))
    scales = [layer for layer in after.layers if isinstance(layer, CombineBitPlanes)]
    assert len(scales) == len(convs)
    assert not any(isinstance(layer, L.BatchNormalization) for layer in after.layers)
    if not bn:
        alpha = np.abs(before.get_layer(convs[0]).kernel.numpy()).reshape(-1, CHANNELS).max(0)
        np.testing.assert_array_equal(scales[0].multiplier.numpy(), alpha)
    x = _inputs()
    want = model(x, training=False).numpy()
    np.testing.assert_allclose(after(x).numpy(), want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_plus_minus_one_and_non_binary_kernels_are_left_alone():
    unit = _unfactored(_model("ste_sign"))  # α = 1 everywhere
    assert passes.factor_kernel_scales(unit) is unit
    assert levels.channel_magnitudes(np.array([[0.5, 1.0], [-0.5, 0.0]])) is None
    assert levels.channel_magnitudes(np.array([[0.5, 1.0], [-0.5, -1.0]])).tolist() == [0.5, 1.0]


def _lce_outputs(flatbuffer, x):
    interpreter = Interpreter(flatbuffer, num_threads=1)
    return np.concatenate([interpreter.predict(x[i : i + 1]) for i in range(len(x))])


@pytest.mark.parametrize("kernel_quantizer", ["magnitude_aware_sign", "ste_tern"])
def test_lce_fuses_the_multiply_like_it_fuses_a_scaled_kernel(kernel_quantizer):
    model = _model(kernel_quantizer, bias=True)
    factored = lce.convert_keras_model(passes.lower(model))
    # LCE recovers α itself from a ±α kernel (one plane) or from each ±α plane (ternary).
    unfactored = _scaled(model) if kernel_quantizer == "magnitude_aware_sign" else None
    reference = lce.convert_keras_model(unfactored or _unfactored(model))
    ops = read_flatbuffer(factored).op_counts()
    assert ops == read_flatbuffer(reference).op_counts()
    assert "MUL" not in ops and ops["LceBconv2d"] >= 1
    x = _inputs(16)
    want = _lce_outputs(reference, x)
    np.testing.assert_allclose(
        _lce_outputs(factored, x), want, rtol=0, atol=1e-5 * np.abs(want).max()
    )
    keras = model.predict(x, verbose=0)
    np.testing.assert_allclose(
        _lce_outputs(factored, x), keras, rtol=0, atol=1e-4 * np.abs(keras).max()
    )
