"""Stack compatibility: random quantizers' configs across tf-keras 2.19..2.21, the float interpreter."""

import warnings

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import converters
from kbnn import layers as kl
from kbnn import quantizers as kq
from kbnn.converters import interpreters

import numpy as np
import pytest
import tensorflow as tf

RANDOM_QUANTIZERS = [kq.StochasticSign, kq.DoReFaGradient]


@pytest.mark.parametrize("cls", RANDOM_QUANTIZERS)
def test_random_quantizer_config_has_no_rng_type(cls):
    # tf-keras >= 2.20 writes rng_type in BaseRandomLayer.get_config; kbnn's configs must be the
    # same on every supported tf-keras, so files saved on 2.21 load on 2.19 and back.
    config = cls(seed=3).get_config()
    assert "rng_type" not in config
    assert cls.from_config(config).get_config() == config


@pytest.mark.parametrize("cls", RANDOM_QUANTIZERS)
def test_random_quantizer_accepts_config_written_by_newer_tf_keras(cls):
    # The failure on tf-keras 2.21 was "got multiple values for keyword argument 'rng_type'".
    original = cls(seed=3).get_config()
    restored = cls.from_config({**original, "rng_type": "stateful"})
    assert restored.get_config() == original


@pytest.mark.parametrize("cls", RANDOM_QUANTIZERS)
def test_random_quantizer_refuses_other_rng_type(cls):
    config = {**cls(seed=3).get_config(), "rng_type": "stateless"}
    with pytest.raises((ValueError, TypeError), match="rng_type must be .stateful."):
        cls.from_config(config)


def test_stochastic_sign_model_round_trips_through_keras_and_h5(tmp_path):
    inputs = tf.keras.Input((6,))
    outputs = kq.StochasticSign(seed=5)(inputs)
    model = tf.keras.Model(inputs, outputs)
    x = np.linspace(-1.5, 1.5, 12, dtype=np.float32).reshape(2, 6)
    for name in ("m.keras", "m.h5"):
        model.save(tmp_path / name)
        restored = tf.keras.models.load_model(tmp_path / name)
        assert isinstance(restored.layers[-1], kq.StochasticSign)
        np.testing.assert_array_equal(restored.predict(x, verbose=0), np.where(x >= 0, 1.0, -1.0))


def _float_model_and_flatbuffer():
    model = tf.keras.Sequential(
        [
            tf.keras.Input((6, 6, 2)),
            tf.keras.layers.Conv2D(4, 3, activation="relu"),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(3),
        ]
    )
    return model, tf.lite.TFLiteConverter.from_keras_model(model).convert()


def test_float_interpreter_matches_tensorflow_lite_and_keras():
    model, flatbuffer = _float_model_and_flatbuffer()
    x = np.random.default_rng(0).normal(size=(5, 6, 6, 2)).astype(np.float32)
    (outputs,) = interpreters.run_float(flatbuffer, x)
    # independent reference: TensorFlow's own TFLite interpreter, run sample by sample
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its deprecation notice is what LiteRT avoids
        reference = tf.lite.Interpreter(model_content=flatbuffer)
    reference.allocate_tensors()
    inp, out = reference.get_input_details()[0], reference.get_output_details()[0]
    expected = []
    for sample in x:
        reference.set_tensor(inp["index"], sample[None])
        reference.invoke()
        expected.append(reference.get_tensor(out["index"])[0])
    np.testing.assert_array_equal(outputs, np.stack(expected))
    np.testing.assert_allclose(outputs, model.predict(x, verbose=0), atol=1e-5)


def test_float_interpreter_prints_no_deprecation_warning():
    if interpreters.float_backend() != "ai_edge_litert":
        pytest.skip("ai_edge_litert not installed: the tf.lite fallback warns by design")
    _, flatbuffer = _float_model_and_flatbuffer()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        interpreters.float_interpreter(flatbuffer, num_threads=2).invoke()


def test_float_interpreter_refuses_lce_flatbuffer_and_bad_arguments():
    model = tf.keras.Sequential([tf.keras.Input((4, 4, 3)), kl.BinaryConv2D(8, 3)])
    flatbuffer = converters.convert(model).flatbuffer
    with pytest.raises(ValueError, match="LCE flatbuffers need LCE's interpreter"):
        interpreters.float_interpreter(flatbuffer)
    with pytest.raises(ValueError, match="must be bytes"):
        interpreters.float_interpreter("model.tflite")
    with pytest.raises(ValueError, match="num_threads"):
        interpreters.float_interpreter(_float_model_and_flatbuffer()[1], num_threads=0)
