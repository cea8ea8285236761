"""kbnn.converters.inspect / read_flatbuffer / to_c_array: reading back what LCE wrote."""

import shutil
import subprocess

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import converters
from kbnn import layers as kl
from kbnn.converters import FlatbufferError
from kbnn.converters.interpreters import float_interpreter
from kbnn.converters.report import pack_bconv_filter, unpack_bconv_filter

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def converted():
    tf.keras.utils.set_random_seed(3)
    model = tf.keras.Sequential(
        [
            tf.keras.Input((6, 6, 40)),  # 40 channels: two packed words, the second padded
            kl.BinaryConv2D(8, 3, padding="same", name="conv"),
            tf.keras.layers.BatchNormalization(),
            tf.keras.layers.Flatten(),
            kl.BinaryDense(10, name="dense"),
        ]
    )
    return model, converters.convert(model)


def test_inspect_lists_ops_and_sizes(converted, tmp_path):
    _, conversion = converted
    path = conversion.save(tmp_path / "m.tflite")
    from_bytes = converters.inspect(conversion.flatbuffer)
    from_path = converters.inspect(str(path))
    assert from_bytes.op_counts == from_path.op_counts == conversion.ops
    assert {"LceBconv2d", "LceQuantize"} <= set(from_bytes.custom_ops)
    assert from_bytes.op_counts["LceBconv2d"] == 2
    assert from_bytes.size == len(conversion.flatbuffer)
    assert 0 < from_bytes.constant_bytes < from_bytes.size
    text = str(from_bytes)
    assert "LceBconv2d" in text and "custom ops:" in text and "1x6x6x40" in text
    assert "const bytes" in from_bytes.tensor_table()


def test_bitpacked_filter_decodes_to_the_kernel_signs(converted):
    model, conversion = converted
    parsed = converters.read_flatbuffer(conversion.flatbuffer)
    bconv = next(op for op in parsed.operators if op.op == "LceBconv2d")
    packed = parsed.constant(parsed.tensors[bconv.inputs[1]])
    assert packed.shape == (8, 3, 3, 2) and packed.dtype == np.int32
    signs = unpack_bconv_filter(packed)[..., :40]
    kernel = model.get_layer("conv").kernel.numpy().transpose(3, 0, 1, 2)
    np.testing.assert_array_equal(signs, np.where(kernel >= 0, 1.0, -1.0))
    np.testing.assert_array_equal(unpack_bconv_filter(packed)[..., 40:], 1.0)  # padding bits 0
    # The report compares filters packed: kbnn's packing of the kernel is LCE's, word for word.
    np.testing.assert_array_equal(pack_bconv_filter(kernel), packed.astype(np.uint32))


def test_tensors_agree_with_tflite_interpreter():
    """Independent reference: LiteRT's own reader of a builtin-only flatbuffer."""
    model = tf.keras.Sequential(
        [
            tf.keras.Input((4, 4, 3)),
            tf.keras.layers.Conv2D(5, 3),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(2),
        ]
    )
    flatbuffer = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    parsed = converters.read_flatbuffer(flatbuffer)
    details = float_interpreter(flatbuffer).get_tensor_details()
    assert [(t.name, t.shape) for t in parsed.tensors] == [
        (d["name"], tuple(int(s) for s in d["shape"])) for d in details
    ]
    assert parsed.op_counts() == {"CONV_2D": 1, "FULLY_CONNECTED": 1, "RESHAPE": 1}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"TFL3",
        b"\x00" * 7,
        b"GIF89a" + b"\x00" * 64,
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
        bytes(range(256)) * 4,
        b"hello world, not a model",
    ],
)
def test_non_flatbuffers_raise_flatbuffer_error(data):
    with pytest.raises(FlatbufferError, match="not a TFLite flatbuffer"):
        converters.inspect(data)


def test_truncated_files_raise_flatbuffer_error(converted, tmp_path):
    data = converted[1].flatbuffer
    for cut in (8, 12, 64, len(data) // 3, len(data) // 2, len(data) - 64, len(data) - 4):
        path = tmp_path / f"cut{cut}.tflite"
        path.write_bytes(data[:cut])
        with pytest.raises(FlatbufferError, match="truncated|corrupt|TFLite"):
            converters.inspect(path)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_corrupted_bytes_never_crash(converted, data):
    original = bytearray(converted[1].flatbuffer)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(original) - 1))
        original[position] = data.draw(st.integers(0, 255))
    try:
        converters.inspect(bytes(original))
    except FlatbufferError:
        pass


def test_inspect_argument_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        converters.inspect(tmp_path / "absent.tflite")
    with pytest.raises(ValueError, match="path_or_bytes"):
        converters.inspect(42)


# ------------------------------------------------------------------------------ C arrays


def _bytes_from_source(source: str) -> bytes:
    body = source.split("{", 1)[1].split("}", 1)[0]
    return bytes(int(token, 16) for token in body.replace(",", " ").split())


def test_to_c_array_round_trips(converted, tmp_path):
    flatbuffer = converted[1].flatbuffer
    array = converters.to_c_array(flatbuffer, "model_data")
    assert "extern const unsigned char model_data[];" in array.header
    assert "alignas(16) const unsigned char model_data[]" in array.source
    assert f"const unsigned int model_data_len = {len(flatbuffer)};" in array.source
    assert _bytes_from_source(array.source) == flatbuffer
    header, source = array.save(tmp_path)
    assert header.name == "model_data.h" and source.read_text() == array.source


@pytest.mark.skipif(shutil.which("g++") is None, reason="no C++ compiler")
def test_c_array_compiles_aligned(converted, tmp_path):
    flatbuffer = converted[1].flatbuffer
    converters.to_c_array(flatbuffer, "model_data").save(tmp_path)
    (tmp_path / "main.cc").write_text(
        '#include <cstdint>\n#include <cstdio>\n#include "model_data.h"\n'
        "int main() {\n"
        "  if (reinterpret_cast<std::uintptr_t>(model_data) % 16) return 3;\n"
        "  fwrite(model_data, 1, model_data_len, stdout);\n  return 0;\n}\n"
    )
    binary = tmp_path / "dump"
    subprocess.run(
        ["g++", "-std=c++11", "-o", str(binary), "main.cc", "model_data.cc"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    result = subprocess.run([str(binary)], capture_output=True, check=True)
    assert result.stdout == flatbuffer


@pytest.mark.parametrize("name", ["", "1model", "model-data", "int", "a b", None])
def test_to_c_array_rejects_bad_names(name):
    with pytest.raises(ValueError, match="name"):
        converters.to_c_array(b"TFL3", name)
    with pytest.raises(ValueError, match="alignment"):
        converters.to_c_array(b"TFL3", "ok", alignment=12)
    with pytest.raises(ValueError, match="flatbuffer"):
        converters.to_c_array(b"", "ok")
