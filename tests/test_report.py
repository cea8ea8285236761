"""kbnn.converters.report: flatbuffer ops attributed to the layers that produced them."""

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import converters
from kbnn import layers as kl
from kbnn.converters.flatbuffer import read_flatbuffer
from kbnn.converters.report import expected_filter

import numpy as np
import pytest
import tensorflow as tf
from helpers import randomize_weights

DW_BN = "depthwise_batch_normalization_after_dw"


def _depthwise_model():
    """Float conv → BN → ReLU → depthwise (multiplier 2, BN folded in) → binary conv: the
    depthwise op sits right after another weight op, as QuickNet's stem does. The BN's long
    name fills the converter's truncated op name, so the depthwise layer's name is not in it
    and only its filter's content can tell which layer the op belongs to."""
    inputs = tf.keras.Input((12, 12, 3))
    x = tf.keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = tf.keras.layers.BatchNormalization(name="conv_bn")(x)
    x = tf.keras.layers.Activation("relu", name="relu")(x)
    x = tf.keras.layers.DepthwiseConv2D(
        3, strides=2, depth_multiplier=2, padding="same", use_bias=False, name="dw"
    )(x)
    x = tf.keras.layers.BatchNormalization(name=DW_BN)(x)
    x = kl.BinaryConv2D(32, 3, padding="same", pad_values=1.0, name="bconv")(x)
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return randomize_weights(tf.keras.Model(inputs, x), seed=3)


def test_expected_filter_of_a_depthwise_layer_matches_tflites_layout():
    """TFLite's depthwise filter (1, kh, kw, C·M), channel c·M + m, is the Keras kernel
    (kh, kw, C, M)'s [.., c, m]: the report's layout is its transpose (C·M, kh, kw)."""
    layer = _depthwise_model().get_layer("dw")
    kernel = layer.depthwise_kernel.numpy()  # (3, 3, 16, 2)
    expected = expected_filter(layer)
    assert expected.shape == (32, 3, 3)
    tflite = kernel.reshape(1, 3, 3, 32)
    np.testing.assert_array_equal(expected, tflite[0].transpose(2, 0, 1))
    np.testing.assert_array_equal(expected[2 * 5 + 1], kernel[:, :, 5, 1])


def test_depthwise_op_lands_on_its_own_row():
    model = _depthwise_model()
    conversion = converters.convert(model)
    report = conversion.report
    assert conversion.ops["DEPTHWISE_CONV_2D"] == 1
    graph = read_flatbuffer(conversion.flatbuffer).main
    (op,) = [op for op in graph.operators if op.op == "DEPTHWISE_CONV_2D"]
    assert "/dw/" not in graph.tensors[op.outputs[0]].name  # attributed by content only
    assert report["dw"].ops == {"DEPTHWISE_CONV_2D": 1}, report
    assert report["conv"].ops == {"CONV_2D": 1}, report
    assert report["dw"].kernel_bytes == 3 * 3 * 32 * 4  # float32 filter, BN folded in
    assert report[DW_BN].fused_into == "dw"
    assert report["bconv"].ops["LceBconv2d"] == 1


@pytest.mark.slow
def test_quicknet_small_depthwise_ops_land_on_their_own_rows():
    """kbnn's QuickNetSmall (its stem depthwise follows the stem conv + BN + ReLU) at 32×32:
    every DEPTHWISE_CONV_2D on its DepthwiseConv2D's row, none on a Conv2D's."""
    model = kbnn.zoo.get("quicknet_small", input_shape=(32, 32, 3), num_classes=10, compile=False)
    conversion = converters.convert(model)
    depthwise = [
        layer.name for layer in model.layers if isinstance(layer, tf.keras.layers.DepthwiseConv2D)
    ]
    assert len(depthwise) == 4
    for row in conversion.report.layers:
        expected = 1 if row.layer in depthwise else 0
        assert row.ops.get("DEPTHWISE_CONV_2D", 0) == expected, (row.layer, row.ops)
    assert conversion.ops["DEPTHWISE_CONV_2D"] == len(depthwise)
