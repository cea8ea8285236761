"""Exact tensor encodings and the `.kbz` file: bit-identical round trips, corruption errors."""

import os
import struct
import zlib

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import layers as kl
from kbnn.compression import encoding as enc
from kbnn.compression import format as fmt
from kbnn.compression import pruning, quantized, sharing
from kbnn.errors import KbnnError, ModelLoadError

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


# --- tensor encodings ------------------------------------------------------------------------


sparse_tensors = st.tuples(
    hnp.array_shapes(min_dims=1, max_dims=4, max_side=9),
    st.integers(0, 2**31),
    st.floats(0.0, 1.0),
    st.integers(1, 300),
).map(lambda args: _random_tensor(*args))


def _random_tensor(shape, seed, density, distinct):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=distinct).astype(np.float32)
    tensor = rng.choice(values, size=shape) * (rng.random(shape) < density)
    tensor = tensor.astype(np.float32)
    tensor[rng.random(shape) < 0.05] = -0.0  # −0.0 must survive too
    return tensor


@settings(max_examples=60, deadline=None)
@given(sparse_tensors)
def test_every_candidate_decodes_bit_exactly(tensor):
    for candidate in enc.candidates(tensor):
        decoded = enc.decode(candidate.meta, candidate.sections)
        assert decoded.dtype == tensor.dtype and decoded.shape == tensor.shape
        assert np.array_equal(_bits(decoded), _bits(tensor)), candidate.name


@settings(max_examples=40, deadline=None)
@given(
    hnp.array_shapes(min_dims=2, max_dims=4, max_side=8),
    st.integers(0, 2**31),
    st.sampled_from([(-1, 0, 1), (-2, -1, 0, 1, 2)]),
)
def test_levels_candidates_decode_bit_exactly(shape, seed, level_set):
    rng = np.random.default_rng(seed)
    levels = rng.choice(level_set, size=shape)
    scale = rng.random(shape[-1]).astype(np.float32) + 0.1
    tensor = enc.levels_times_scale(levels, scale)
    found = enc.candidates(tensor, levels=(levels, scale))
    assert any(c.name.startswith("levels") for c in found)
    for candidate in found:
        assert np.array_equal(_bits(enc.decode(candidate.meta, candidate.sections)), _bits(tensor))


def test_levels_are_refused_when_they_do_not_reproduce_the_tensor():
    latent = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    levels = np.sign(latent)
    found = enc.candidates(latent, levels=(levels, np.ones(4, np.float32)))
    assert not any(c.name.startswith("levels") for c in found)


def test_choice_per_stage_and_huffman_gain():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(200, 100)).astype(np.float32)
    kernel[rng.random(kernel.shape) < 0.9] = 0.0
    codebook, indices, _ = sharing.cluster_kernel(kernel, 5)
    shared = codebook[indices]
    choice = enc.choose(shared)
    assert choice.best_size(enc.Stage.BASELINE) == ("raw", shared.size * 4)
    name, pruned_bytes = choice.best_size(enc.Stage.PRUNE)
    assert name == "sparse"
    entries = choice.chosen.meta  # codebook+sparse with 5-bit gaps for a 2-D kernel
    assert entries["gap_bits"] == 5
    name, shared_bytes = choice.best_size(enc.Stage.SHARE)
    assert name == "codebook+sparse" and shared_bytes < pruned_bytes / 3
    assert choice.chosen.nbytes <= shared_bytes


def test_binary_kernel_huffman_costs_more_than_it_saves():
    signs = np.where(np.random.default_rng(0).random((64, 32)) < 0.5, -1.0, 1.0)
    choice = enc.choose(signs.astype(np.float32))
    assert choice.chosen.name == "codebook" and choice.chosen.stage == enc.Stage.SHARE
    assert choice.chosen.nbytes == 64 * 32 // 8 + 8 + 4  # 1 bit/weight, codebook, stream header
    fixed, huff = choice.lost_huffman_streams()["values"]
    assert huff > fixed


def test_non_float_tensors_are_stored_raw():
    steps = np.array(7, dtype=np.int64)
    choice = enc.choose(steps)
    assert choice.chosen.name == "raw"
    assert enc.decode(choice.chosen.meta, choice.chosen.sections) == 7


# --- the file ---------------------------------------------------------------------------------


def _compressed_model():
    tf.keras.utils.set_random_seed(3)
    inputs = tf.keras.Input((8, 8, 1))
    h = tf.keras.layers.Conv2D(8, 3, name="conv")(inputs)
    h = tf.keras.layers.BatchNormalization(name="bn")(h)
    h = tf.keras.layers.Flatten()(h)
    h = kl.TernaryDense(32, name="ternary")(h)
    outputs = tf.keras.layers.Dense(10, name="out")(h)
    model = tf.keras.Model(inputs, outputs)
    model.get_layer("bn").set_weights(
        [np.random.default_rng(i).random(8).astype("f4") + 0.5 for i in range(4)]
    )
    model = pruning.magnitude_prune(model, 0.7)
    model = sharing.strip_sharing(sharing.share_weights(model, {"conv": 4, "out": 3}))
    model, notes = quantized.materialize_quantized(model)
    assert notes == []
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = _compressed_model()
    path = str(tmp_path_factory.mktemp("kbz") / "model.kbz")
    report = fmt.save_compressed(model, path)
    with open(path, "rb") as handle:
        blob = handle.read()
    return model, path, report, blob


def test_round_trip_is_bit_identical(saved):
    model, path, report, _ = saved
    loaded = fmt.load_compressed(path)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        assert a.shape == b.shape and np.array_equal(_bits(a), _bits(b))
    x = np.random.default_rng(9).normal(size=(16, 8, 8, 1)).astype("f4")
    np.testing.assert_array_equal(
        loaded(x, training=False).numpy(), model(x, training=False).numpy()
    )
    encodings = {
        t.name.split("/")[0]: t.encoding.chosen.name
        for t in report.tensors
        if t.name.endswith("kernel:0")
    }
    assert encodings["ternary"].startswith("levels")
    assert encodings["conv"].startswith("codebook") and encodings["out"].startswith("codebook")
    assert report.file_bytes == os.path.getsize(path)
    assert report.payload_bytes < sum(w.size * 4 for w in model.get_weights()) / 4


def test_wrappers_are_stripped_before_saving(tmp_path):
    model = pruning.prune_low_magnitude(_compressed_model(), {"out": 0.8})
    fmt.save_compressed(model, tmp_path / "wrapped.kbz")
    loaded = fmt.load_compressed(tmp_path / "wrapped.kbz")
    assert [type(layer).__name__ for layer in loaded.layers][-1] == "Dense"


def _expect(blob, tmp_path, error, match):
    path = tmp_path / "bad.kbz"
    path.write_bytes(blob)
    with pytest.raises(error, match=match) as info:
        fmt.load_compressed(path)
    assert isinstance(info.value, KbnnError) and isinstance(info.value, ModelLoadError)


def test_truncated_files_say_so(saved, tmp_path):
    _, _, _, blob = saved
    for cut in (3, 20, len(blob) // 2, len(blob) - 1):
        _expect(blob[:cut], tmp_path, fmt.TruncatedFileError, "truncated")


def test_flipped_payload_byte_names_the_tensor(saved, tmp_path):
    _, _, report, blob = saved
    header_len = struct.unpack_from("<I", blob, 12)[0]
    start = 28 + header_len
    ternary = next(t for t in report.tensors if t.name.startswith("ternary"))
    offset = sum(t.nbytes for t in report.tensors[: report.tensors.index(ternary)])
    corrupt = bytearray(blob)
    corrupt[start + offset + 3] ^= 0x10
    _expect(bytes(corrupt), tmp_path, fmt.CorruptFileError, "checksum mismatch in tensor 'ternary")


def test_other_corruptions(saved, tmp_path):
    _, _, _, blob = saved
    header = bytearray(blob)
    header[30] ^= 0xFF
    _expect(bytes(header), tmp_path, fmt.CorruptFileError, "header checksum")
    digest = bytearray(blob)
    digest[-1] ^= 0x01
    _expect(bytes(digest), tmp_path, fmt.CorruptFileError, "SHA-256")
    _expect(blob + b"\0", tmp_path, fmt.CorruptFileError, "unexpected bytes")
    _expect(b"PK\x03\x04" + blob[4:], tmp_path, fmt.NotCompressedFileError, "not a kbnn")
    newer = bytearray(blob)
    struct.pack_into("<H", newer, 8, fmt.FORMAT_VERSION + 1)
    _expect(bytes(newer), tmp_path, fmt.UnsupportedVersionError, "format version 2")


def test_consistent_checksums_but_bad_content_is_reported(saved, tmp_path):
    """A file re-checksummed after tampering (valid framing) still fails to decode cleanly."""
    _, _, _, blob = saved
    header_len, payload_len = (
        struct.unpack_from("<I", blob, 12)[0],
        struct.unpack_from("<Q", blob, 20)[0],
    )
    import hashlib
    import json

    header = json.loads(zlib.decompress(blob[28 : 28 + header_len]))
    header["tensors"][0]["meta"]["shape"] = [3, 3, 1, 9]  # wrong shape for the data
    new_header = zlib.compress(json.dumps(header).encode())
    body = (
        struct.pack(
            "<8sHHIIQ", fmt.MAGIC, 1, 0, len(new_header), zlib.crc32(new_header), payload_len
        )
        + new_header
        + blob[28 + header_len : -32]
    )
    _expect(
        body + hashlib.sha256(body).digest(), tmp_path, fmt.CorruptFileError, "cannot decode|shape"
    )


def test_save_is_atomic_and_rejects_subclassed_models(tmp_path):
    class Custom(tf.keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = tf.keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    model = Custom()
    model(np.zeros((1, 3), "f4"))
    target = tmp_path / "keep.kbz"
    target.write_bytes(b"previous")
    with pytest.raises(KbnnError, match="subclassed"):
        fmt.save_compressed(model, target)
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.kbz"]


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        fmt.load_compressed(tmp_path / "nope.kbz")
