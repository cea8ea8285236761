"""Stack compatibility: random quantizers' configs across tf-keras 2.19..2.21, the float interpreter."""

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import quantizers as kq

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
