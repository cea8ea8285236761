"""Large binary filters: LCE converts a splat stand-in, kbnn writes the packed filter.

References: LCE's own conversion of the same lowered model with the real filters (op by op,
input by input, byte for byte, and LCE-interpreter outputs bit for bit), Keras through
`verify`, and for the flatbuffer editor a float convolution whose filter is replaced by zeros
(its output must then be its bias).
"""

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn.converters import convert, large_filters, passes
from kbnn.converters.flatbuffer import read_flatbuffer
from kbnn.converters.flatbuffer_edit import BUFFER_ALIGNMENT, replace_constant_inputs

import larq as lq
import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf
from helpers import randomize_weights
from larq_compute_engine.tflite.python.interpreter import Interpreter

L = tf.keras.layers
SIGN = {"input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign"}


def _mixed_model():
    """Four binary layers with distinct packed filter shapes: one-padding, zero padding with a
    bias and channels that are not a multiple of 32, a ±α kernel, and a dense layer."""
    inputs = tf.keras.Input((9, 9, 40))
    x = lq.layers.QuantConv2D(48, 3, padding="same", pad_values=1.0, name="one_pad", **SIGN)(inputs)
    x = L.BatchNormalization(name="bn1")(x)
    x = lq.layers.QuantConv2D(70, 3, padding="same", use_bias=True, name="zero_pad", **SIGN)(x)
    x = L.BatchNormalization(name="bn2")(x)
    x = lq.layers.QuantConv2D(
        33, 2, strides=2, input_quantizer="ste_sign", kernel_quantizer="magnitude_aware_sign",
        name="scaled",
    )(x)  # fmt: skip
    x = L.Flatten()(x)
    x = lq.layers.QuantDense(20, name="dense", **SIGN)(x)
    return randomize_weights(tf.keras.Model(inputs, x), seed=5)


def _inputs(shape, count=32, seed=7):
    return np.random.default_rng(seed).uniform(-1, 1, (count, *shape)).astype(np.float32)


def _outputs(flatbuffer, x):
    interpreter = Interpreter(flatbuffer, num_threads=1)
    return np.concatenate([interpreter.predict(x[i : i + 1]) for i in range(len(x))])


def _assert_same_graph(actual: bytes, expected: bytes):
    """Same ops in the same order, every input with the same shape and constant bytes."""
    a, b = read_flatbuffer(actual), read_flatbuffer(expected)
    assert [op.op for op in a.operators] == [op.op for op in b.operators]
    assert len(a.tensors) == len(b.tensors)
    for op_a, op_b in zip(a.operators, b.operators, strict=True):
        for index_a, index_b in zip(op_a.inputs, op_b.inputs, strict=True):
            tensor_a, tensor_b = a.tensors[index_a], b.tensors[index_b]
            assert tensor_a.shape == tensor_b.shape, op_a.op
            assert a.raw(tensor_a) == b.raw(tensor_b), (op_a.op, tensor_a.name)


def _assert_aligned(flatbuffer: bytes):
    for start, size in read_flatbuffer(flatbuffer)._buffers:
        if size:
            assert start % BUFFER_ALIGNMENT == 0


@pytest.fixture
def installs(monkeypatch):
    """Records every successful `install_filters` call made by `convert`."""
    calls = []
    original = large_filters.install_filters

    def spy(flatbuffer, standins):
        result = original(flatbuffer, standins)
        calls.append([standin.layer.name for standin in standins])
        return result

    monkeypatch.setattr(large_filters, "install_filters", spy)
    return calls


def test_standins_give_what_lce_makes_from_the_real_filters(monkeypatch, installs):
    model = _mixed_model()
    # γ < 0 on some of bn1's channels: LCE negates those channels of one_pad's filter.
    assert 0 < np.sum(model.get_layer("bn1").gamma.numpy() < 0) < 48
    x = _inputs((9, 9, 40))
    monkeypatch.setattr(large_filters, "STANDIN_MIN_WEIGHTS", 10**12)
    normal = convert(model)
    assert installs == []
    monkeypatch.setattr(large_filters, "STANDIN_MIN_WEIGHTS", 1)
    stood_in = convert(model, verify_with=x)
    assert installs == [
        ["one_pad_kb_bconv", "zero_pad_kb_bconv", "scaled_kb_bconv", "dense_kb_conv_image_bconv"]
    ]
    assert stood_in.ops == normal.ops
    assert stood_in.ops["LceBconv2d"] == 4
    _assert_same_graph(stood_in.flatbuffer, normal.flatbuffer)
    _assert_aligned(stood_in.flatbuffer)
    np.testing.assert_array_equal(_outputs(stood_in.flatbuffer, x), _outputs(normal.flatbuffer, x))
    assert stood_in.verification.disagreements == []
    for name in ("one_pad", "zero_pad", "scaled", "dense"):
        assert stood_in.report[name].kernel_bytes == normal.report[name].kernel_bytes > 0


@pytest.mark.parametrize("negated", [False, True])
def test_a_large_filter_replaces_lces_fill(negated):
    """Above a size LCE writes an all-equal constant as a FILL op; the FILL goes, the packed
    filter becomes a constant, and the result equals LCE's conversion of the real kernel.
    `negated`: a batch norm with γ < 0 on every channel, then a sign, so that LCE negates the
    whole filter (the FILL's value is then −1 in every bit)."""
    inputs = tf.keras.Input((3, 3, 512))
    x = lq.layers.QuantConv2D(288, 3, name="big", **SIGN)(inputs)  # 1,327,104 weights
    if negated:
        x = L.BatchNormalization(name="bn")(x)
        x = lq.layers.QuantConv2D(8, 1, name="small", **SIGN)(x)
    model = randomize_weights(tf.keras.Model(inputs, L.Flatten()(x)), seed=2)
    if negated:
        gamma = model.get_layer("bn").gamma
        gamma.assign(-np.abs(gamma.numpy()))
    lowered = passes.lower(model)
    standins = large_filters.find_standins(lowered)
    assert [standin.layer.name for standin in standins] == ["big_kb_bconv"]
    kernel = lowered.get_layer("big_kb_bconv").kernel.numpy()
    with large_filters.splat_kernels(standins):
        assert np.all(lowered.get_layer("big_kb_bconv").kernel.numpy() == 1.0)
        splat = lce.convert_keras_model(lowered)
    np.testing.assert_array_equal(lowered.get_layer("big_kb_bconv").kernel.numpy(), kernel)
    assert "FILL" in read_flatbuffer(splat).op_counts()
    if negated:  # LCE wrote the all-ones stand-in negated: every valid bit set
        graph = read_flatbuffer(splat).main
        fill = next(op for op in graph.operators if op.op == "FILL")
        value = read_flatbuffer(splat).constant(graph.tensors[fill.inputs[1]])
        assert value.astype(np.uint32).item() == 0xFFFFFFFF
    installed = large_filters.install_filters(splat, standins)
    assert "FILL" not in read_flatbuffer(installed).op_counts()
    _assert_aligned(installed)
    reference = lce.convert_keras_model(lowered)
    _assert_same_graph(installed, reference)
    x = _inputs((3, 3, 512), count=8)
    np.testing.assert_array_equal(_outputs(installed, x), _outputs(reference, x))
    np.testing.assert_allclose(_outputs(installed, x), model.predict(x, verbose=0), atol=1e-3)


def test_layers_whose_filter_shape_repeats_are_not_stood_in():
    inputs = tf.keras.Input((6, 6, 32))
    x = lq.layers.QuantConv2D(32, 3, padding="same", pad_values=1.0, name="a", **SIGN)(inputs)
    x = lq.layers.QuantConv2D(32, 3, padding="same", pad_values=1.0, name="b", **SIGN)(x)
    x = lq.layers.QuantConv2D(16, 3, padding="same", pad_values=1.0, name="c", **SIGN)(x)
    lowered = passes.lower(randomize_weights(tf.keras.Model(inputs, x)))
    names = [standin.layer.name for standin in large_filters.find_standins(lowered, 1)]
    assert names == ["c_kb_bconv"]


def test_a_filter_that_is_not_found_falls_back_to_lces_conversion(monkeypatch, installs):
    model = _mixed_model()
    lowered = passes.lower(model)
    standins = large_filters.find_standins(lowered, 1)
    other = tf.keras.Sequential([tf.keras.Input((4, 4, 8)), L.Conv2D(3, 1)])
    with pytest.raises(large_filters.FilterNotFound, match="one_pad_kb_bconv"):
        large_filters.install_filters(lce.convert_keras_model(other), standins)

    def not_found(flatbuffer, standins):
        raise large_filters.FilterNotFound("test")

    monkeypatch.setattr(large_filters, "STANDIN_MIN_WEIGHTS", 1)
    monkeypatch.setattr(large_filters, "install_filters", not_found)
    x = _inputs((9, 9, 40))
    fallback = convert(model, verify_with=x)
    assert fallback.verification.disagreements == []
    _assert_same_graph(fallback.flatbuffer, lce.convert_keras_model(passes.lower(model)))


def _float_conv():
    inputs = tf.keras.Input((5, 5, 3))
    conv = L.Conv2D(4, 3, bias_initializer=tf.keras.initializers.Constant([0.5, -1, 2, 3]))
    return tf.keras.Model(inputs, conv(inputs))


def test_the_editor_writes_new_constant_data():
    flatbuffer = lce.convert_keras_model(_float_conv())
    graph = read_flatbuffer(flatbuffer).main
    conv = next(op for op in graph.operators if op.op == "CONV_2D")
    filter_bytes = graph.tensors[conv.inputs[1]].size
    edited = replace_constant_inputs(flatbuffer, {(conv.index, 1): bytes(filter_bytes)})
    _assert_aligned(edited)
    y = _outputs(edited, _inputs((5, 5, 3), count=2))
    np.testing.assert_array_equal(y, np.broadcast_to([0.5, -1, 2, 3], y.shape))


def test_the_editor_refuses_wrong_sizes_and_computed_inputs():
    flatbuffer = lce.convert_keras_model(_float_conv())
    graph = read_flatbuffer(flatbuffer).main
    conv = next(op for op in graph.operators if op.op == "CONV_2D")
    with pytest.raises(ValueError, match="holds 432 bytes, the replacement has 4"):
        replace_constant_inputs(flatbuffer, {(conv.index, 1): bytes(4)})
    model = tf.keras.Sequential([tf.keras.Input((4,)), L.Dense(3), L.ReLU(), L.Dense(2)])
    flatbuffer = lce.convert_keras_model(model)
    graph = read_flatbuffer(flatbuffer).main
    second = [op for op in graph.operators if op.op == "FULLY_CONNECTED"][1]
    with pytest.raises(ValueError, match="computed by"):
        replace_constant_inputs(flatbuffer, {(second.index, 0): bytes(12)})


def test_xcore_conversions_do_not_use_standins(monkeypatch, installs):
    """The packed words kbnn writes are LCE's ARM layout; xcore conversions stay LCE's own."""
    monkeypatch.setattr(large_filters, "STANDIN_MIN_WEIGHTS", 1)
    model = _mixed_model()
    xcore = convert(model, target="xcore")
    assert installs == []
    assert xcore.ops.get("LceBconv2d", 0) > 0
