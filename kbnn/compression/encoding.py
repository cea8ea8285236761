"""Exact (lossless) encodings of weight tensors, and the choice of the smallest one.

Every encoding reproduces the tensor bit for bit; the lossy steps (pruning, weight sharing,
quantization) are model transforms that happen before. Candidates, by the stage of
DeepCompression (Han et al. 2016) that introduces them:

| name              | stage    | sections                                                     |
|-------------------|----------|--------------------------------------------------------------|
| `raw`             | baseline | the values, little-endian                                    |
| `sparse`          | prune    | relative-index gaps · float32 values of the entries          |
| `codebook`        | share    | codebook (float32) · b-bit index per element                 |
| `codebook+sparse` | share    | codebook · gaps · index per entry (fillers index the 0)      |
| `levels`          | share    | per-channel scale · integer level per element                |
| `levels+sparse`   | share    | scale · gaps · level per entry                               |

At the `huffman` stage each symbol stream (gaps, indices, levels) is Huffman coded *if that
makes it smaller*; otherwise it stays fixed-width. `levels` codes kernels of ternary /
five-level / k-bit layers as their quantizer's `integer_levels` times a per-channel scale.
"""

from __future__ import annotations

import dataclasses
import enum

from kbnn.compression import huffman
from kbnn.compression.bitstream import (
    StreamError,
    min_width,
    pack_uint,
    read_varint,
    unpack_uint,
    write_varint,
)
from kbnn.compression.relative_index import decode_positions, default_gap_bits, encode_positions

import numpy as np

#: Codebooks larger than this are not tried (indices would exceed 8 bits).
MAX_CODEBOOK = 256

_FIXED, _HUFFMAN = 0, 1


class Stage(enum.IntEnum):
    """The DeepCompression stage that introduces an encoding."""

    BASELINE = 0
    PRUNE = 1
    SHARE = 2
    HUFFMAN = 3


# --- symbol streams --------------------------------------------------------------------------


def fixed_stream(symbols, alphabet_size: int) -> bytes:
    """Tag 0 · varint count · u8 width · symbols in `width` bits each."""
    symbols = np.asarray(symbols, dtype=np.int64).ravel()
    width = min_width(alphabet_size - 1)
    return bytes([_FIXED]) + write_varint(symbols.size) + bytes([width]) + pack_uint(symbols, width)


def huffman_stream(symbols, alphabet_size: int) -> bytes:
    """Tag 1 · canonical Huffman stream (`huffman.encode_stream`)."""
    return bytes([_HUFFMAN]) + huffman.encode_stream(symbols, alphabet_size)


def decode_stream(blob: bytes | memoryview) -> np.ndarray:
    """Symbols of a fixed-width or Huffman stream."""
    blob = memoryview(blob)
    if len(blob) == 0:
        raise StreamError("empty symbol stream")
    if blob[0] == _HUFFMAN:
        return huffman.decode_stream(blob[1:])
    if blob[0] != _FIXED:
        raise StreamError(f"unknown stream coder tag {blob[0]}")
    count, offset = read_varint(blob, 1)
    if offset >= len(blob):
        raise StreamError("fixed-width stream ends before its width byte")
    width = blob[offset]
    payload = blob[offset + 1 :]
    if not 1 <= width <= 32 or len(payload) != (count * width + 7) // 8:
        raise StreamError(f"fixed-width stream of {count}×{width} bits has {len(payload)} bytes")
    return unpack_uint(payload, width, count)


@dataclasses.dataclass
class _Streams:
    """Both codings of every symbol stream of one layout."""

    fixed: dict[str, bytes]
    coded: dict[str, bytes]  # per stream the smaller of fixed and Huffman
    trials: dict[str, tuple[int, int]]  # per stream (fixed bytes, Huffman bytes)

    @classmethod
    def of(cls, streams: dict[str, tuple[np.ndarray, int]]) -> _Streams:
        fixed, coded, trials = {}, {}, {}
        for name, (symbols, alphabet) in streams.items():
            fixed[name] = fixed_stream(symbols, alphabet)
            huff = huffman_stream(symbols, alphabet)
            coded[name] = huff if len(huff) < len(fixed[name]) else fixed[name]
            trials[name] = (len(fixed[name]), len(huff))
        return cls(fixed, coded, trials)


# --- candidates ------------------------------------------------------------------------------


@dataclasses.dataclass
class Candidate:
    """One exact encoding of a tensor: metadata (JSON-able) and byte sections."""

    name: str
    stage: Stage
    meta: dict
    sections: dict[str, bytes]
    #: Streams for which Huffman coding was tried: name → (fixed bytes, Huffman bytes).
    huffman_trials: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(len(s) for s in self.sections.values())


@dataclasses.dataclass
class Encoding:
    """The chosen candidate and every candidate's size (for the report)."""

    chosen: Candidate
    sizes: dict[tuple[str, Stage], int]
    candidates: list[Candidate] = dataclasses.field(default_factory=list, repr=False)

    def lost_huffman_streams(self) -> dict[str, tuple[int, int]]:
        """Streams of the chosen layout whose Huffman coding is not smaller than fixed-width."""
        twin = next(
            (c for c in self.candidates if c.stage == Stage.HUFFMAN and c.name == self.chosen.name),
            None,
        )
        if twin is None:
            return {}
        return {k: v for k, v in twin.huffman_trials.items() if v[1] >= v[0]}

    def best_size(self, stage: Stage) -> tuple[str, int]:
        """Smallest candidate allowed at `stage`: `(name, bytes)`."""
        allowed = [(size, name) for (name, st), size in self.sizes.items() if st <= stage]
        size, name = min(allowed)
        return name, size


def _bits(array: np.ndarray) -> np.ndarray:
    """Bit patterns (so +0.0 and −0.0, or NaNs, stay distinct)."""
    return array.view(np.dtype(f"u{array.dtype.itemsize}"))


def _layout_candidates(name, stage, meta, tables, symbols, nonzero, gap_bits):
    """Dense and (if there are zeros) sparse variants, fixed and per-stream-best coded."""
    out = []
    alphabet = meta["alphabet"]
    layouts = [("dense", {"values": (symbols, alphabet)})]
    if not nonzero.all():
        gaps, entries = encode_positions(np.flatnonzero(nonzero), gap_bits)
        layouts.append(
            ("sparse", {"gaps": (gaps, 1 << gap_bits), "values": (symbols[entries], alphabet)})
        )
    for layout, streams in layouts:
        coded = _Streams.of(streams)
        full_meta = {**meta, "layout": layout}
        suffix = "" if layout == "dense" else "+sparse"
        if layout == "sparse":
            full_meta["gap_bits"] = gap_bits
        out.append(Candidate(name + suffix, stage, full_meta, {**tables, **coded.fixed}))
        out.append(
            Candidate(
                name + suffix,
                Stage.HUFFMAN,
                full_meta,
                {**tables, **coded.coded},
                huffman_trials=coded.trials,
            )
        )
    return out


def candidates(array, *, levels=None, gap_bits: int | None = None) -> list[Candidate]:
    """Every exact encoding of `array` kbnn knows (see the module docstring).

    `levels`: optional `(integer levels, scale)` from a quantizer's `integer_levels`; used only
    if levels·scale reproduces `array` bit for bit.
    """
    array = np.ascontiguousarray(array)
    base = {"shape": list(array.shape), "dtype": array.dtype.str}
    raw = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    out = [Candidate("raw", Stage.BASELINE, {**base, "encoding": "raw"}, {"data": raw})]
    if array.dtype != np.float32 or array.size == 0:
        return out
    flat = array.ravel()
    bits = _bits(flat)
    nonzero = bits != 0  # +0.0 is "zero"; −0.0 is kept as a value
    gap_bits = gap_bits or default_gap_bits(array.shape)
    if not nonzero.all():
        gaps, entries = encode_positions(np.flatnonzero(nonzero), gap_bits)
        coded = _Streams.of({"gaps": (gaps, 1 << gap_bits)})
        values = flat[entries].astype("<f4").tobytes()
        meta = {**base, "encoding": "sparse", "gap_bits": gap_bits}
        out.append(Candidate("sparse", Stage.PRUNE, meta, {**coded.fixed, "values": values}))
        out.append(
            Candidate(
                "sparse",
                Stage.HUFFMAN,
                meta,
                {**coded.coded, "values": values},
                huffman_trials=coded.trials,
            )
        )
    unique_bits, inverse = np.unique(bits, return_inverse=True)
    if unique_bits.size <= MAX_CODEBOOK:
        codebook = unique_bits.astype(bits.dtype).view(np.float32)
        meta = {**base, "encoding": "codebook", "alphabet": int(codebook.size)}
        out += _layout_candidates(
            "codebook",
            Stage.SHARE,
            meta,
            {"codebook": codebook.astype("<f4").tobytes()},
            inverse.astype(np.int64),
            nonzero,
            gap_bits,
        )
    if levels is not None:
        out += _levels_candidates(array, levels, base, nonzero, gap_bits)
    return out


def _levels_candidates(array, levels, base, nonzero, gap_bits):
    level_values, scale = (np.asarray(v) for v in levels)
    if level_values.shape != array.shape or not np.all(level_values == np.round(level_values)):
        return []
    level_values = level_values.astype(np.int64)
    scale = np.asarray(scale, dtype=np.float32)
    if scale.ndim > 1 or (scale.ndim == 1 and scale.shape[0] != array.shape[-1]):
        return []
    scale = _exact_scale(array, level_values, scale)
    if scale is None:
        return []  # levels·scale is not this tensor (e.g. latent, not materialised, weights)
    low = int(level_values.min())
    meta = {
        **base,
        "encoding": "levels",
        "low": low,
        "alphabet": int(level_values.max()) - low + 1,
        "scale_shape": list(scale.shape),
    }
    # Sparse layout: positions with a nonzero *level* (level 0 decodes to ±0 exactly as stored).
    level_nonzero = level_values.ravel() != 0
    if low > 0 or int(level_values.max()) < 0:
        level_nonzero = np.ones_like(level_nonzero)
    return _layout_candidates(
        "levels",
        Stage.SHARE,
        meta,
        {"scale": scale.astype("<f4").tobytes()},
        level_values.ravel() - low,
        level_nonzero,
        gap_bits,
    )


def _exact_scale(array, level_values, scale):
    """A scale with levels·scale == array bit for bit, or None.

    The quantizer's own scale is tried first; recomputing it from a materialised kernel can
    be an ulp off (a mean of equal values), so the scale is then read back from the tensor
    itself: array / level at each channel's largest |level|.
    """
    if _reproduces(array, level_values, scale):
        return scale
    flat_levels = level_values.reshape(-1, array.shape[-1]) if scale.ndim else level_values.ravel()
    flat_array = array.reshape(flat_levels.shape)
    pick = np.argmax(np.abs(flat_levels), axis=0)
    if scale.ndim:
        columns = np.arange(flat_levels.shape[1])
        picked_levels, picked_values = flat_levels[pick, columns], flat_array[pick, columns]
    else:
        picked_levels, picked_values = flat_levels[pick], flat_array[pick]
    with np.errstate(divide="ignore", invalid="ignore"):
        recovered = np.where(
            picked_levels != 0, picked_values / picked_levels.astype(np.float32), scale
        ).astype(np.float32)
    return recovered if _reproduces(array, level_values, recovered) else None


def _reproduces(array, level_values, scale) -> bool:
    decoded = level_values.astype(np.float32) * scale
    return np.array_equal(_bits(decoded.ravel()), _bits(array.ravel()))


def _decode_levels(meta, symbols, scale):
    table = np.arange(meta["low"], meta["low"] + meta["alphabet"], dtype=np.float32)
    return table[symbols].reshape(meta["shape"]) * scale


def levels_times_scale(levels, scale) -> np.ndarray:
    """float32 levels·scale exactly as `levels` tensors decode (level 0 gives +0.0·scale)."""
    levels = np.asarray(levels)
    integers = np.round(levels).astype(np.int64)
    if not np.array_equal(integers, levels):
        raise ValueError("levels must be integer-valued")
    return integers.astype(np.float32) * np.asarray(scale, dtype=np.float32)


def canonical_zeros(array) -> np.ndarray:
    """`array` with −0.0 replaced by +0.0 (pruning by multiplication leaves −0.0 behind)."""
    array = np.asarray(array)
    return np.where(array == 0, np.zeros((), array.dtype), array)


def choose(
    array, *, levels=None, gap_bits: int | None = None, max_stage: Stage = Stage.HUFFMAN
) -> Encoding:
    """The smallest candidate allowed at `max_stage` (ties go to the earlier stage)."""
    found = candidates(array, levels=levels, gap_bits=gap_bits)
    sizes: dict[tuple[str, Stage], int] = {}
    for cand in found:
        key = (cand.name, cand.stage)
        sizes[key] = min(sizes.get(key, cand.nbytes), cand.nbytes)
    allowed = [c for c in found if c.stage <= max_stage]
    chosen = min(allowed, key=lambda c: (c.nbytes, c.stage))
    array = np.asarray(array)
    decoded = decode(chosen.meta, chosen.sections)
    if decoded.dtype != array.dtype or not np.array_equal(
        _bits(decoded.ravel()), _bits(np.ascontiguousarray(array).ravel())
    ):
        raise RuntimeError(f"kbnn bug: encoding {chosen.name!r} does not reproduce the tensor")
    return Encoding(chosen, sizes, found)


# --- decoding --------------------------------------------------------------------------------


def decode(meta: dict, sections: dict[str, bytes | memoryview]) -> np.ndarray:
    """Rebuild the tensor from `meta` and its sections; `StreamError` if they do not fit."""
    try:
        dtype = np.dtype(meta["dtype"])
        shape = tuple(int(d) for d in meta["shape"])
        encoding = meta["encoding"]
    except (KeyError, TypeError, ValueError) as err:
        raise StreamError(f"bad tensor metadata: {err}") from err
    size = int(np.prod(shape, dtype=np.int64))
    if encoding == "raw":
        data = sections["data"]
        if len(data) != size * dtype.itemsize:
            raise StreamError(
                f"raw tensor of {size} × {dtype} needs {size * dtype.itemsize} "
                f"bytes, has {len(data)}"
            )
        return np.frombuffer(data, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    if dtype != np.float32:
        raise StreamError(f"encoding {encoding!r} is only defined for float32, not {dtype}")
    if encoding == "sparse":
        positions = decode_positions(decode_stream(sections["gaps"]), meta["gap_bits"], size)
        values = np.frombuffer(sections["values"], dtype="<f4")
        if values.size != positions.size:
            raise StreamError(f"{positions.size} relative indices but {values.size} values")
        out = np.zeros(size, np.float32)
        out[positions] = values
        return out.reshape(shape)
    symbols = decode_stream(sections["values"])
    if symbols.size and symbols.max() >= meta["alphabet"]:
        raise StreamError(f"symbol {int(symbols.max())} outside an alphabet of {meta['alphabet']}")
    if meta["layout"] == "sparse":
        positions = decode_positions(decode_stream(sections["gaps"]), meta["gap_bits"], size)
        if positions.size != symbols.size:
            raise StreamError(f"{positions.size} relative indices but {symbols.size} values")
        dense = np.full(size, -1, dtype=np.int64)
        dense[positions] = symbols
    elif symbols.size != size:
        raise StreamError(f"{symbols.size} symbols for a tensor of {size} elements")
    else:
        dense = symbols
    if encoding == "codebook":
        codebook = np.frombuffer(sections["codebook"], dtype="<f4").astype(np.float32)
        if codebook.size != meta["alphabet"]:
            raise StreamError(f"codebook has {codebook.size} entries, expected {meta['alphabet']}")
        table = np.append(codebook, np.float32(0.0))  # index −1: positions without an entry
        return table[dense].reshape(shape)
    if encoding == "levels":
        scale = np.frombuffer(sections["scale"], dtype="<f4").astype(np.float32)
        scale = scale.reshape(meta["scale_shape"])
        zero_symbol = -meta["low"]
        dense = np.where(dense < 0, zero_symbol, dense)
        return _decode_levels(meta, dense, scale)
    raise StreamError(f"unknown tensor encoding {encoding!r}")
