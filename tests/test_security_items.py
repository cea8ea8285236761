"""The smaller items of #16 (section 12): each refused with a clear error."""

import kbnn.models
from kbnn import converters
from kbnn.compression import format as kbz
from kbnn.converters.errors import VerificationError
from kbnn.converters.verify import check_matches, verify
from kbnn.errors import UsageError
from kbnn.layers import BinaryDense

import numpy as np
import pytest
import tensorflow as tf


def _model(inputs=8, outputs=3):
    return tf.keras.Sequential([tf.keras.Input((inputs,)), BinaryDense(outputs)])


def test_save_compressed_refuses_gap_bits_outside_1_to_16(tmp_path):
    for bad in (0, 17, -1, 2.5, True):
        with pytest.raises(UsageError, match="gap_bits"):
            kbz.save_compressed(_model(), tmp_path / "m.kbz", gap_bits=bad)
    assert list(tmp_path.iterdir()) == []


def test_save_compressed_refuses_what_the_loader_would_refuse(tmp_path):
    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Lambda(lambda x: x * 2)])
    with pytest.raises(UsageError, match="Lambda"):
        kbz.save_compressed(model, tmp_path / "m.kbz")
    assert list(tmp_path.iterdir()) == []
    kbz.save_compressed(_model(), tmp_path / "ok.kbz")  # a kbnn model round-trips
    assert isinstance(kbz.load_compressed(tmp_path / "ok.kbz"), tf.keras.Model)


def test_summary_refuses_a_print_fn_that_is_not_callable():
    with pytest.raises(UsageError, match="print_fn: expected a callable"):
        kbnn.models.summary(_model(), print_fn=1)


def test_a_model_that_is_not_the_flatbuffers_is_named_not_a_raw_runtime_error():
    flatbuffer = converters.convert(_model(8, 3), progress=False).flatbuffer
    check_matches(_model(8, 3), flatbuffer)
    for other in (_model(5, 3), _model(8, 4)):
        with pytest.raises(VerificationError, match="not the one this flatbuffer"):
            check_matches(other, flatbuffer)
    wider = tf.keras.Sequential([tf.keras.Input((8, 1)), tf.keras.layers.Flatten(), BinaryDense(3)])
    with pytest.raises(VerificationError, match="takes samples of shape"):
        verify(wider, flatbuffer, np.zeros((2, 8, 1), np.float32))
