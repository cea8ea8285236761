"""kbnn.kernels (the one kernel-access module), kbnn._registry and kbnn._validation."""

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import _registry, _validation, kernels
from kbnn.errors import UsageError

import larq as lq
import numpy as np
import pytest
import tensorflow as tf


def _built(layer, shape):
    layer.build((None, *shape))
    return layer


def test_kernel_attribute_and_quantizer_per_layer_kind():
    dense = _built(tf.keras.layers.Dense(3), (4,))
    binary = _built(lq.layers.QuantConv2D(2, 3, kernel_quantizer="ste_sign"), (5, 5, 2))
    depthwise = _built(lq.layers.QuantDepthwiseConv2D(3, depthwise_quantizer="ste_sign"), (5, 5, 2))
    assert kernels.kernel_attribute(dense) == "kernel" and kernels.kernel_quantizer(dense) is None
    assert kernels.kernel_attribute(binary) == "kernel"
    assert kernels.kernel_quantizer(binary) is binary.kernel_quantizer
    assert kernels.kernel_attribute(depthwise) == "depthwise_kernel"
    assert kernels.kernel_quantizer(depthwise) is depthwise.depthwise_quantizer
    assert kernels.kernel_precision(binary) == 1 and kernels.kernel_precision(dense) is None
    assert kernels.kernel_attribute(tf.keras.layers.Conv2D(2, 3)) == "kernel"  # not built yet
    assert kernels.kernel_attribute(tf.keras.layers.ReLU()) is None
    assert kernels.kernel_variable(tf.keras.layers.ReLU(), required=False) is None
    with pytest.raises(UsageError, match="expected a built kernel"):
        kernels.kernel_variable(tf.keras.layers.ReLU())


def test_quantized_kernel_and_levels_against_numpy():
    layer = _built(lq.layers.QuantConv2D(4, 3, kernel_quantizer="ste_sign"), (6, 6, 3))
    latent = np.random.default_rng(0).normal(size=(3, 3, 3, 4)).astype(np.float32)
    latent[0, 0, 0, 0] = 0.0  # sign(0) is +1, as ste_sign does
    layer.kernel.latent_variable.assign(latent)
    assert kernels.kernel_variable(layer) is layer.kernel.latent_variable
    expected = np.where(latent < 0, -1.0, 1.0)
    np.testing.assert_array_equal(kernels.quantized_kernel(layer), expected)
    np.testing.assert_array_equal(kernels.integer_levels(layer), expected)
    dense = _built(tf.keras.layers.Dense(2), (3,))
    np.testing.assert_array_equal(kernels.quantized_kernel(dense), dense.kernel.numpy())
    with pytest.raises(UsageError, match="expected a quantized kernel"):
        kernels.integer_levels(dense)


def test_reading_a_kernel_leaves_the_flip_ratio_metric_alone():
    from kbnn.analysis import enable_flip_ratio

    model = tf.keras.Sequential(
        [tf.keras.Input((4,)), lq.layers.QuantDense(3, kernel_quantizer="ste_sign", name="q")]
    )
    enable_flip_ratio(model)
    layer = model.get_layer("q")
    metric = layer.kernel_quantizer.flip_ratio
    model(tf.ones((1, 4)))  # one real call: the metric holds a state now
    before = [v.numpy().copy() for v in metric.variables]
    kernels.quantized_kernel(layer)
    kernels.integer_levels(layer)
    for value, variable in zip(before, metric.variables, strict=True):
        np.testing.assert_array_equal(value, variable.numpy())


def test_iter_layers_flattens_nested_models():
    inner = tf.keras.Sequential(
        [tf.keras.Input((3,)), tf.keras.layers.Dense(2, name="a")], name="inner"
    )
    inputs = tf.keras.Input((3,))
    outer = tf.keras.Model(inputs, tf.keras.layers.Dense(1, name="b")(inner(inputs)))
    names = [layer.name for layer in kernels.iter_layers(outer)]
    assert names[-2:] == ["a", "b"] and "inner" not in names


def test_register_names_the_object_under_kbnn():
    class _ProbeLayer(tf.keras.layers.Layer):
        pass

    registered = _registry.register(_ProbeLayer, bare_name=True)
    assert registered is _ProbeLayer
    assert _registry.registered_name(_ProbeLayer) == "kbnn>_ProbeLayer"
    assert tf.keras.utils.get_custom_objects()["_ProbeLayer"] is _ProbeLayer
    assert tf.keras.utils.get_registered_object("kbnn>_ProbeLayer") is _ProbeLayer


@pytest.mark.parametrize("value", [0, -1, 2.0, True, "3", None])
def test_validation_rejects_with_one_exception_type_and_form(value):
    with pytest.raises(UsageError, match=r"^epochs: expected a positive integer, got "):
        _validation.check_positive_int(value, "epochs")


def test_validation_accepts_numpy_integers_and_returns_python_ints():
    assert type(_validation.check_int(np.int64(3), "k", low=1, high=8)) is int
    assert _validation.check_positive_int(None, "steps", allow_none=True) is None
    assert _validation.check_choice("a", "mode", ("a", "b")) == "a"
    with pytest.raises(UsageError, match=r"mode: expected one of \('a', 'b'\), got 'c'"):
        _validation.check_choice("c", "mode", ("a", "b"))
    with pytest.raises(UsageError, match="k: expected an integer in 1..8, got 9"):
        _validation.check_int(9, "k", low=1, high=8)
    with pytest.raises(UsageError, match="lr: expected a finite number > 0, got nan"):
        _validation.check_positive_number(float("nan"), "lr")
    assert issubclass(UsageError, ValueError)
