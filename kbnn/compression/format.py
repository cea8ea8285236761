"""The `.kbz` compressed model file: exact, versioned, checksummed.

`save_compressed(model, path)` stores the Keras model config (JSON) and every weight tensor
in its smallest exact encoding (`kbnn.compression.encoding`); `load_compressed(path)`
rebuilds the model from the config and sets the decoded weights, so it has the same weights
bit for bit and therefore identical outputs. Pruning and weight sharing must happen *before*
saving — the file format itself loses nothing.

Layout (integers little-endian):

    offset 0   magic        8 bytes  b"\\x89KBZ\\r\\n\\x1a\\n"
           8   version      u16      FORMAT_VERSION
          10   flags        u16      0
          12   header_len   u32      bytes of the zlib-compressed JSON header
          16   header_crc   u32      CRC-32 of those bytes
          20   payload_len  u64
          28   header       zlib(JSON: model config, per-tensor encoding and sections)
               payload      the tensors' sections, each with its CRC-32 in the header
               sha256       32 bytes over everything before it

The magic's first byte is non-ASCII and it holds CR LF / LF / ^Z, so text-mode copies are
detected (the PNG trick). Files are written to a temporary name and renamed into place.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import struct
import zlib

import kbnn
from kbnn._io import write_atomic
from kbnn.compression import encoding as enc
from kbnn.compression import layers as klayers
from kbnn.compression.bitstream import StreamError
from kbnn.errors import ModelLoadError, UsageError

import numpy as np
import tensorflow as tf

MAGIC = b"\x89KBZ\r\n\x1a\n"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sHHIIQ")
_DIGEST_BYTES = 32


class CompressedFileError(ModelLoadError):
    """A `.kbz` file cannot be read."""


class NotCompressedFileError(CompressedFileError):
    """The file is not a kbnn compressed model (wrong magic bytes)."""


class TruncatedFileError(CompressedFileError):
    """The file is shorter than its header says (an interrupted copy or download)."""


class CorruptFileError(CompressedFileError):
    """A checksum does not match, or the content cannot be decoded."""


class UnsupportedVersionError(CompressedFileError):
    """The file was written by a newer kbnn with a format version this one cannot read."""


@dataclasses.dataclass
class TensorReport:
    """How one weight tensor is stored."""

    name: str
    shape: tuple[int, ...]
    nonzeros: int
    encoding: enc.Encoding

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.encoding.chosen.nbytes


@dataclasses.dataclass
class SaveReport:
    """What `save_compressed` wrote: per-tensor choices and the byte counts."""

    path: str | None
    tensors: list[TensorReport]
    header_bytes: int
    file_bytes: int

    @property
    def payload_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)


def strip_wrappers(model: tf.keras.Model) -> tf.keras.Model:
    """Remove kbnn pruning / weight-sharing wrappers (masks and codebooks applied)."""
    from kbnn.compression import pruning, sharing

    if any(isinstance(layer, pruning.PruneLowMagnitude) for layer in model.layers):
        model = pruning.strip_pruning(model)
    if any(isinstance(layer, sharing.SharedWeights) for layer in model.layers):
        model = sharing.strip_sharing(model)
    return model


def _quantizer_levels(model: tf.keras.Model) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{id(latent kernel variable): (levels, scale)} for layers whose quantizer has levels."""
    out = {}
    for layer in model.layers:
        quantizer = klayers.kernel_quantizer(layer)
        if quantizer is None or not hasattr(quantizer, "integer_levels") or not layer.built:
            continue
        kernel = klayers.kernel_variable(layer)
        levels, scale = quantizer.integer_levels(tf.convert_to_tensor(kernel.numpy()))
        out[id(kernel)] = (np.asarray(levels), np.asarray(scale))
    return out


def encode_model(
    model: tf.keras.Model, *, max_stage: enc.Stage = enc.Stage.HUFFMAN, gap_bits: int | None = None
) -> list[TensorReport]:
    """The smallest exact encoding allowed at `max_stage` of every weight of `model`."""
    levels = _quantizer_levels(model)
    reports = []
    for weight in model.weights:
        value = np.asarray(weight.numpy())
        variable = klayers.latent_variable(weight)
        choice = enc.choose(
            value, levels=levels.get(id(variable)), gap_bits=gap_bits, max_stage=max_stage
        )
        nonzeros = int(np.count_nonzero(value)) if value.dtype.kind in "fiub" else value.size
        reports.append(TensorReport(weight.name, tuple(value.shape), nonzeros, choice))
    return reports


def _check_saveable(model) -> None:
    if not isinstance(model, tf.keras.Model):
        raise UsageError(f"save_compressed expects a tf.keras.Model, got {type(model).__name__}")
    functional = isinstance(model, tf.keras.Sequential) or getattr(
        model, "_is_graph_network", False
    )
    if not functional:
        raise UsageError(
            f"model {model.name!r} is a subclassed model; only Sequential and "
            "functional models can be saved compressed (their config rebuilds them)"
        )


def save_compressed(
    model: tf.keras.Model, path, *, gap_bits: int | None = None, huffman: bool = True
) -> SaveReport:
    """Write `model` to `path` in the exact `.kbz` format; returns what was stored.

    Wrappers from `prune_low_magnitude` / `share_weights` are stripped first. Each tensor
    takes its smallest exact encoding; `huffman=False` keeps every stream fixed-width.
    """
    _check_saveable(model)
    if gap_bits is not None and (
        isinstance(gap_bits, bool) or not isinstance(gap_bits, int) or not 1 <= gap_bits <= 16
    ):
        raise UsageError(f"gap_bits: expected an integer in 1..16 or None, got {gap_bits!r}")
    model = strip_wrappers(model)
    config = json.loads(model.to_json())
    from kbnn._loading import check_config

    try:  # the loader refuses these, so never write a file that cannot be read back
        check_config(config, f"model {model.name!r}")
    except ModelLoadError as err:
        raise UsageError(f"cannot save compressed: {err}") from err
    max_stage = enc.Stage.HUFFMAN if huffman else enc.Stage.SHARE
    tensors = encode_model(model, max_stage=max_stage, gap_bits=gap_bits)
    payload = bytearray()
    records = []
    for tensor in tensors:
        chosen = tensor.encoding.chosen
        sections = {}
        for name, data in chosen.sections.items():
            sections[name] = [len(payload), len(data), zlib.crc32(data)]
            payload += data
        records.append({"name": tensor.name, "meta": chosen.meta, "sections": sections})
    header = zlib.compress(
        json.dumps(
            {
                "format": "kbnn-compressed-model",
                "kbnn_version": kbnn.__version__,
                "model": config,
                "tensors": records,
            },
            separators=(",", ":"),
        ).encode("utf-8"),
        9,
    )
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, 0, len(header), zlib.crc32(header), len(payload))
    body = prefix + header + bytes(payload)
    blob = body + hashlib.sha256(body).digest()
    path = os.fspath(path)
    write_atomic(path, blob)
    return SaveReport(path, tensors, len(header), len(blob))


def _parse(blob: bytes, where: str) -> tuple[dict, memoryview]:
    """Validate framing and checksums; returns `(header dict, payload view)`."""
    if len(blob) < len(MAGIC) or blob[: len(MAGIC)] != MAGIC:
        if MAGIC.startswith(blob):
            raise TruncatedFileError(f"{where}: truncated ({len(blob)} bytes, no complete header)")
        raise NotCompressedFileError(f"{where}: not a kbnn compressed model (bad magic bytes)")
    if len(blob) < _PREFIX.size:
        raise TruncatedFileError(
            f"{where}: truncated ({len(blob)} bytes, the fixed header alone is {_PREFIX.size})"
        )
    _, version, _, header_len, header_crc, payload_len = _PREFIX.unpack_from(blob)
    if version > FORMAT_VERSION or version == 0:
        raise UnsupportedVersionError(
            f"{where}: format version {version}; this kbnn ({kbnn.__version__}) reads versions "
            f"1..{FORMAT_VERSION} — upgrade kbnn"
        )
    expected = _PREFIX.size + header_len + payload_len + _DIGEST_BYTES
    if len(blob) < expected:
        raise TruncatedFileError(f"{where}: truncated: {len(blob)} of {expected} bytes")
    if len(blob) > expected:
        raise CorruptFileError(f"{where}: {len(blob) - expected} unexpected bytes after the end")
    header_bytes = blob[_PREFIX.size : _PREFIX.size + header_len]
    if zlib.crc32(header_bytes) != header_crc:
        raise CorruptFileError(f"{where}: header checksum (CRC-32) mismatch — the file is corrupt")
    try:
        header = json.loads(zlib.decompress(header_bytes).decode("utf-8"))
    except (zlib.error, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptFileError(f"{where}: header cannot be decoded ({err})") from err
    body_end = expected - _DIGEST_BYTES
    payload = memoryview(blob)[_PREFIX.size + header_len : body_end]
    if hashlib.sha256(memoryview(blob)[:body_end]).digest() != blob[body_end:]:
        bad = _failing_section(header, payload)
        raise CorruptFileError(
            f"{where}: checksum mismatch"
            + (f" in {bad}" if bad else " (SHA-256 of the file)")
            + " — the file is corrupt"
        )
    return header, payload


def _failing_section(header: dict, payload: memoryview) -> str | None:
    for record in header.get("tensors", []):
        for name, (offset, length, crc) in record.get("sections", {}).items():
            if zlib.crc32(payload[offset : offset + length]) != crc:
                return f"tensor {record.get('name')!r} (section {name!r})"
    return None


def read_compressed(path) -> tuple[dict, list[np.ndarray]]:
    """`(model config, weight arrays)` of a `.kbz` file, validated."""
    where = os.fspath(path)
    with open(where, "rb") as handle:
        blob = handle.read()
    header, payload = _parse(blob, where)
    arrays = []
    try:
        records = header["tensors"]
        config = header["model"]
        for record in records:
            sections = {}
            for name, (offset, length, crc) in record["sections"].items():
                data = payload[offset : offset + length]
                if len(data) != length or zlib.crc32(data) != crc:
                    raise CorruptFileError(
                        f"{where}: section {name!r} of tensor "
                        f"{record['name']!r} does not match its checksum"
                    )
                sections[name] = data
            arrays.append(enc.decode(record["meta"], sections))
    except (StreamError, KeyError, TypeError, ValueError) as err:
        if isinstance(err, CompressedFileError):
            raise
        raise CorruptFileError(f"{where}: cannot decode the weights ({err})") from err
    return config, arrays


def load_compressed(path, custom_objects: dict | None = None) -> tf.keras.Model:
    """Rebuild the model saved by `save_compressed` (same config, bit-identical weights)."""
    where = os.fspath(path)
    config, arrays = read_compressed(path)
    from kbnn._loading import check_config

    check_config(config, f"compressed model {where!r}")  # untrusted, like any model file
    try:
        model = tf.keras.models.model_from_json(json.dumps(config), custom_objects=custom_objects)
    except (ValueError, TypeError, KeyError) as err:
        raise ModelLoadError(
            f"{where}: the stored model config cannot be rebuilt ({err}); "
            "import the package that defines its custom layers first"
        ) from err
    weights = model.weights
    if len(weights) != len(arrays):
        raise CorruptFileError(
            f"{where}: the model has {len(weights)} weights, the file {len(arrays)}"
        )
    for weight, array in zip(weights, arrays, strict=True):
        if tuple(weight.shape) != array.shape:
            raise CorruptFileError(
                f"{where}: weight {weight.name!r} has shape "
                f"{tuple(weight.shape)}, the file {array.shape}"
            )
    model.set_weights(arrays)
    return model
