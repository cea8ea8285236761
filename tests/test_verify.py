"""kbnn.converters.verify: Keras `predict` against LCE's interpreter, sign ties reported apart.

The tie cases are built, not hoped for: a twin of the model whose float layer before a sign
is shifted by 1e-7 resolves an exact Keras tie (a value 0 read by ste_sign) the other way, as
LCE's float rounding can; everywhere else the twin computes the same function.
"""

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import converters
from kbnn.converters import ConversionError, VerificationError
from kbnn.converters.verify import classify_disagreements

import larq as lq
import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf

#: Sample 0 puts an exact 0 before the sign (x0 = x1); the others stay ≥ 0.2 away from it.
X = np.array(
    [[0.3, 0.3], [0.9, -0.4], [-0.5, 0.6], [0.2, 0.7], [-0.8, -0.1], [0.6, 0.1]], np.float32
)
PRE_KERNEL = np.array([[1.0, 1.0, 0.5], [-1.0, 1.0, -0.25]], np.float32)
PRE_BIAS = np.array([0.0, 0.25, 1.0], np.float32)
BINARY_KERNEL = np.array(
    [[0.5, -0.5, 0.5, -0.5], [0.5, 0.5, -0.5, -0.5], [-0.5, 0.5, 0.5, -0.5]], np.float32
)


def _tie_model(pre_shift=0.0, flip_binary_row=None):
    """x → Dense(3) (unit 0 = x0 − x1 + `pre_shift`) → binary dense(4) reading ste_sign."""
    inputs = tf.keras.Input((2,), name="x")
    pre = tf.keras.layers.Dense(3, name="pre")(inputs)
    outputs = lq.layers.QuantDense(
        4,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
        name="bdense",
    )(pre)
    model = tf.keras.Model(inputs, outputs)
    bias = PRE_BIAS.copy()
    bias[0] += pre_shift
    model.get_layer("pre").set_weights([PRE_KERNEL, bias])
    kernel = BINARY_KERNEL.copy()
    if flip_binary_row is not None:
        kernel[flip_binary_row] *= -1
    model.get_layer("bdense").set_weights([kernel])
    return model


def test_the_constructed_tie_is_exact_and_the_other_samples_are_far_from_it():
    model = _tie_model()
    pre = tf.keras.Model(model.inputs, model.get_layer("pre").output).predict(X, verbose=0)
    assert pre[0, 0] == 0.0
    margins = converters.sign_margins(model, X)
    assert margins[0] == 0.0 and margins[1:].min() >= 0.1, margins


def test_a_disagreement_at_an_exact_sign_tie_is_reported_not_failed():
    model = _tie_model()
    flatbuffer = converters.convert(_tie_model(pre_shift=-1e-7)).flatbuffer
    report = converters.verify(model, flatbuffer, X)
    assert report.ties == [0] and report.disagreements == []
    assert report.max_abs_diff == pytest.approx(2.0)  # one sign flipped: ±1 · ±1 twice
    assert report.outputs[0].judged_max_abs_diff <= report.outputs[0].tolerance
    assert report.passed()
    assert "1 disagreeing sample(s) at a sign tie, excused" in report.summary()
    assert report.check() is report


def test_a_broken_flatbuffer_is_a_real_disagreement_and_fails():
    model = _tie_model()
    broken = converters.convert(_tie_model(flip_binary_row=1)).flatbuffer
    report = converters.verify(model, broken, X)
    assert report.disagreements, report
    assert not report.passed()
    assert "real disagreement" in str(report) and str(report).splitlines()[-1].startswith("FAIL")
    with pytest.raises(VerificationError, match="real disagreement"):
        report.check()


def test_ties_alone_verify_nothing():
    model = _tie_model()
    flatbuffer = converters.convert(_tie_model(pre_shift=-1e-7)).flatbuffer
    report = converters.verify(model, flatbuffer, X[:1])
    assert report.ties == [0] and not report.passed()
    with pytest.raises(VerificationError, match="nothing verified"):
        report.check()


def test_a_sign_of_a_model_input_is_never_a_tie():
    """Keras and LCE read the same input floats: an exact 0 there cannot round differently,
    so a disagreement at it is real."""
    inputs = tf.keras.Input((3,))
    binary = lq.layers.QuantDense(
        2, input_quantizer="ste_sign", kernel_quantizer="ste_sign", use_bias=False, name="b"
    )
    model = tf.keras.Model(inputs, binary(inputs))
    model.get_layer("b").set_weights([np.array([[1, 1], [1, -1], [-1, 1]], np.float32)])
    x = np.array([[0.0, 0.5, -0.5]], np.float32)
    assert converters.sign_margins(model, x)[0] == 0.0
    assert np.isinf(converters.sign_margins(model, x, include_model_inputs=False)[0])
    assert classify_disagreements(model, [x], [0]) == ([], [0])


def test_verify_compares_with_predict_not_eager_calls():
    """A layer that computes differently in eager mode than inside a tf.function (as kernels
    and fusions can): the flatbuffer is traced, so it matches `predict`, not `model(x)`."""
    inputs = tf.keras.Input((4,))
    shifted = tf.keras.layers.Lambda(
        lambda t: t + (1.0 if tf.executing_eagerly() else 0.0), name="mode_dependent"
    )(inputs)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(3, name="dense")(shifted))
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    assert np.abs(model(x).numpy() - model.predict(x, verbose=0)).max() > 0.1
    conversion = converters.convert(model, verify_with=x)
    report = conversion.verification
    assert report.reference == "Keras predict"
    assert report.max_abs_diff <= report.outputs[0].tolerance and not report.ties


@pytest.mark.parametrize("size", [1, 2])
def test_lce_zero_padding_on_a_map_smaller_than_the_kernel_is_a_real_disagreement(size):
    """LCE 0.16 computes a SAME zero-padded (pad_values=0) binary 3×3 convolution on a 1×1 or
    2×2 map wrongly (docs/converters.md, "Limits"). Plain LCE's flatbuffer shows it: its sign
    reads the model input, so no sample can be excused as a tie and verify must fail it. kbnn
    refuses that layer with the reason instead of converting it silently wrong."""
    inputs = tf.keras.Input((size, size, 32))
    conv = lq.layers.QuantConv2D(
        32, 3, padding="same", input_quantizer="ste_sign", kernel_quantizer="ste_sign"
    )
    model = tf.keras.Model(inputs, conv(inputs))
    x = np.random.default_rng(0).normal(size=(4, size, size, 32)).astype(np.float32)
    report = converters.verify(model, lce.convert_keras_model(model), x)
    assert report.disagreements == [0, 1, 2, 3] and not report.ties
    assert report.max_abs_diff >= 2.0  # one ±1 product off, at least
    with pytest.raises(VerificationError, match="real disagreement"):
        report.check()
    with pytest.raises(ConversionError, match=f"{conv.name}.*{size}×{size} map, smaller than"):
        converters.convert(model)
    padded_by_one = tf.keras.Model(
        inputs,
        lq.layers.QuantConv2D(
            32,
            3,
            padding="same",
            pad_values=1.0,
            input_quantizer="ste_sign",
            kernel_quantizer="ste_sign",
        )(inputs),
    )
    assert converters.convert(padded_by_one, verify_with=x).verification.max_abs_diff < 1e-4
