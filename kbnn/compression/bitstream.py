"""Fixed-width bit packing and LEB128 varints, the byte layer under every coded stream.

Bits are written most-significant first (`numpy.packbits` order); a stream of `n` symbols of
`width` bits takes ceil(n·width / 8) bytes. Pure numpy, no loops over symbols.
"""

from __future__ import annotations

import numpy as np


class StreamError(ValueError):
    """A coded stream is malformed (truncated, or with values its header does not allow)."""


def min_width(max_symbol: int) -> int:
    """Bits needed for symbols 0..max_symbol (at least 1)."""
    return max(1, int(max_symbol).bit_length())


def write_varint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits per byte, high bit set on every byte but the last."""
    if value < 0:
        raise ValueError(f"varint value must be >= 0, got {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(data: bytes | memoryview, offset: int) -> tuple[int, int]:
    """Decode one LEB128 varint at `offset`; returns `(value, next_offset)`."""
    value = shift = 0
    while True:
        if offset >= len(data):
            raise StreamError("stream ends inside a varint")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7
        if shift > 63:
            raise StreamError("varint longer than 64 bits")


def pack_bits(bits: np.ndarray) -> bytes:
    """0/1 array → bytes, MSB first, zero-padded to a whole byte."""
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()


def unpack_bits(data: bytes | memoryview, count: int) -> np.ndarray:
    """The first `count` bits of `data` as a uint8 0/1 array."""
    if count > 8 * len(data):
        raise StreamError(f"stream holds {8 * len(data)} bits, {count} expected")
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=count)


def pack_uint(values: np.ndarray, width: int) -> bytes:
    """Non-negative integers < 2**width, each written in exactly `width` bits."""
    values = np.asarray(values, dtype=np.int64).ravel()
    if not 1 <= width <= 32:
        raise ValueError(f"width must be in 1..32, got {width}")
    if values.size and (values.min() < 0 or values.max() >= 1 << width):
        raise ValueError(f"values must lie in [0, {1 << width}) for width {width}")
    shifts = np.arange(width - 1, -1, -1, dtype=np.int64)
    bits = (values[:, None] >> shifts) & 1
    return pack_bits(bits.ravel())


def unpack_uint(data: bytes | memoryview, width: int, count: int) -> np.ndarray:
    """Inverse of `pack_uint`: `count` integers of `width` bits (int64)."""
    bits = unpack_bits(data, count * width).reshape(count, width).astype(np.int64)
    weights = np.left_shift(1, np.arange(width - 1, -1, -1, dtype=np.int64))
    return bits @ weights
