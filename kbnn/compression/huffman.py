"""Canonical Huffman coding of integer symbol streams (Huffman 1952; Han et al. 2016, §4).

DeepCompression's last stage Huffman-codes the cluster indices and the relative sparse
indices, whose distributions are far from uniform. No maintained Huffman codec is in kbnn's
pinned dependency set (`zlib`/`lzma` are LZ77 coders whose own framing outweighs the few-kB
streams coded here, and they cannot report per-stream code lengths), so this is a small
canonical coder:

- code lengths from the Huffman tree (stdlib `heapq`), limited to `MAX_CODE_LENGTH` bits by
  flattening the counts until the tree fits (a valid prefix code, optimal in all but
  pathological cases);
- canonical code assignment, so a code is fully described by its lengths (stored as nibbles);
- vectorised bit packing with numpy, table-driven decoding (one lookup per symbol).

Stream layout (`encode_stream`): varint count · varint alphabet size A · A code lengths as
4-bit nibbles · code bits (MSB first, zero padded to a byte).
"""

from __future__ import annotations

import heapq
import itertools

from kbnn.compression.bitstream import (
    StreamError,
    pack_bits,
    read_varint,
    unpack_bits,
    write_varint,
)

import numpy as np

MAX_CODE_LENGTH = 15
_DECODE_CHUNK_BITS = 1 << 20


def _tree_depths(weights: np.ndarray) -> np.ndarray:
    """Leaf depths of the Huffman tree for positive `weights` (≥ 2 leaves)."""
    n = len(weights)
    counter = itertools.count()
    heap = [(int(w), next(counter), node) for node, w in enumerate(weights)]
    heapq.heapify(heap)
    parent = np.zeros(2 * n - 1, dtype=np.int64)
    next_node = n
    while len(heap) > 1:
        w1, _, a = heapq.heappop(heap)
        w2, _, b = heapq.heappop(heap)
        parent[a] = parent[b] = next_node
        heapq.heappush(heap, (w1 + w2, next(counter), next_node))
        next_node += 1
    depth = np.zeros(2 * n - 1, dtype=np.int64)
    for node in range(2 * n - 3, -1, -1):  # the root (2n-2) has depth 0; parents come later
        depth[node] = depth[parent[node]] + 1
    return depth[:n]


def code_lengths(frequencies, max_length: int = MAX_CODE_LENGTH) -> np.ndarray:
    """Huffman code length per symbol (0 for symbols that never occur), at most `max_length`.

    One used symbol gets length 1. If the optimal tree is deeper than `max_length`, the
    counts are halved (rounding up, so none reaches 0) until it is not.
    """
    freqs = np.asarray(frequencies, dtype=np.int64)
    if freqs.ndim != 1 or (freqs < 0).any():
        raise ValueError("frequencies must be a 1-D array of counts >= 0")
    lengths = np.zeros(freqs.shape, dtype=np.int64)
    used = np.flatnonzero(freqs)
    if used.size == 1:
        lengths[used] = 1
    if used.size <= 1:
        return lengths
    if used.size > 1 << max_length:
        raise ValueError(f"{used.size} symbols cannot be coded in {max_length} bits")
    weights = freqs[used]
    while True:
        depths = _tree_depths(weights)
        if depths.max() <= max_length:
            break
        weights = (weights + 1) // 2
    lengths[used] = depths
    return lengths


def canonical_codes(lengths) -> np.ndarray:
    """Canonical codes: symbols sorted by (length, symbol) take consecutive code values."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(lengths.shape, dtype=np.int64)
    code = prev_len = 0
    for symbol in sorted(np.flatnonzero(lengths), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[symbol]) - prev_len
        codes[symbol] = code
        code += 1
        prev_len = int(lengths[symbol])
    return codes


def _check_kraft(lengths: np.ndarray) -> None:
    used = lengths[lengths > 0]
    if used.size and (used.max() > MAX_CODE_LENGTH or np.sum(2.0**-used) > 1.0):
        raise StreamError("Huffman code lengths do not form a prefix code")


class HuffmanCode:
    """A canonical prefix code given by per-symbol `lengths` (0 = symbol absent)."""

    def __init__(self, lengths):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        _check_kraft(self.lengths)
        self.codes = canonical_codes(self.lengths)

    @classmethod
    def from_symbols(cls, symbols, alphabet_size: int | None = None) -> HuffmanCode:
        symbols = _as_symbols(symbols)
        size = alphabet_size if alphabet_size is not None else int(symbols.max(initial=-1)) + 1
        return cls(code_lengths(np.bincount(symbols, minlength=size)))

    def bit_count(self, symbols) -> int:
        """Bits `encode` spends on `symbols` (without padding)."""
        return int(self.lengths[_as_symbols(symbols)].sum())

    def encode(self, symbols) -> tuple[bytes, int]:
        """Code bits of `symbols`, packed MSB first; returns `(bytes, bit_count)`."""
        symbols = _as_symbols(symbols)
        if symbols.size and (
            symbols.max() >= len(self.lengths) or (self.lengths[symbols] == 0).any()
        ):
            raise ValueError("a symbol to encode has no code")
        lens = self.lengths[symbols]
        codes = self.codes[symbols]
        total = int(lens.sum())
        starts = np.cumsum(lens) - lens
        bits = np.zeros(total, dtype=np.uint8)
        for j in range(int(lens.max(initial=0))):
            sel = lens > j
            bits[starts[sel] + j] = (codes[sel] >> (lens[sel] - 1 - j)) & 1
        return pack_bits(bits), total

    def decode(self, data: bytes | memoryview, count: int) -> tuple[np.ndarray, int]:
        """Decode `count` symbols from the start of `data`; returns `(symbols, bits_read)`."""
        if count == 0:
            return np.zeros(0, dtype=np.int64), 0
        used = np.flatnonzero(self.lengths)
        if used.size == 0:
            raise StreamError("Huffman stream has symbols but an empty code")
        width = int(self.lengths.max())
        table_sym = np.zeros(1 << width, dtype=np.int64)
        table_len = np.zeros(1 << width, dtype=np.int64)
        for symbol in used:
            length = int(self.lengths[symbol])
            start = int(self.codes[symbol]) << (width - length)
            table_sym[start : start + (1 << (width - length))] = symbol
            table_len[start : start + (1 << (width - length))] = length
        bits = unpack_bits(data, 8 * len(data))
        total_bits = bits.size
        bits = np.concatenate([bits, np.zeros(width, dtype=np.uint8)])
        sym_list, len_list = table_sym.tolist(), table_len.tolist()
        out = []
        pos = 0
        while len(out) < count:
            if pos >= total_bits:
                raise StreamError(f"Huffman stream ends after {len(out)} of {count} symbols")
            stop = min(pos + _DECODE_CHUNK_BITS, total_bits)
            # window[p] = the `width` bits starting at p, as an integer (one table index each).
            window = np.zeros(stop - pos, dtype=np.int64)
            for j in range(width):
                window = (window << 1) | bits[pos + j : stop + j]
            window = window.tolist()
            base = pos
            while pos < stop and len(out) < count:
                entry = window[pos - base]
                length = len_list[entry]
                if length == 0:
                    raise StreamError(f"invalid Huffman code at bit {pos}")
                out.append(sym_list[entry])
                pos += length
        if pos > total_bits:
            raise StreamError(f"Huffman stream ends inside the last of {count} symbols")
        return np.asarray(out, dtype=np.int64), pos


def _as_symbols(symbols) -> np.ndarray:
    symbols = np.asarray(symbols).ravel()
    if symbols.size and not np.issubdtype(symbols.dtype, np.integer):
        raise ValueError(f"symbols must be integers, got dtype {symbols.dtype}")
    symbols = symbols.astype(np.int64)
    if symbols.size and symbols.min() < 0:
        raise ValueError("symbols must be >= 0")
    return symbols


def _pack_nibbles(values: np.ndarray) -> bytes:
    values = np.asarray(values, dtype=np.uint8)
    if len(values) % 2:
        values = np.append(values, np.uint8(0))
    return ((values[0::2] << 4) | values[1::2]).astype(np.uint8).tobytes()


def _unpack_nibbles(data: bytes | memoryview, count: int) -> np.ndarray:
    raw = np.frombuffer(data, dtype=np.uint8)
    return np.stack([raw >> 4, raw & 0x0F], axis=1).ravel()[:count].astype(np.int64)


def encode_stream(symbols, alphabet_size: int | None = None) -> bytes:
    """Self-contained Huffman stream of `symbols` (see the module docstring for the layout)."""
    symbols = _as_symbols(symbols)
    size = alphabet_size if alphabet_size is not None else int(symbols.max(initial=-1)) + 1
    if symbols.size and symbols.max() >= size:
        raise ValueError(f"symbol {int(symbols.max())} outside the alphabet of {size}")
    code = HuffmanCode(code_lengths(np.bincount(symbols, minlength=size)))
    payload, _ = code.encode(symbols)
    header = write_varint(symbols.size) + write_varint(size) + _pack_nibbles(code.lengths)
    return header + payload


def decode_stream(data: bytes | memoryview) -> np.ndarray:
    """Inverse of `encode_stream`; raises `StreamError` for a malformed or truncated stream."""
    data = memoryview(data)
    count, offset = read_varint(data, 0)
    size, offset = read_varint(data, offset)
    table_bytes = (size + 1) // 2
    if offset + table_bytes > len(data):
        raise StreamError("Huffman stream ends inside its code-length table")
    code = HuffmanCode(_unpack_nibbles(data[offset : offset + table_bytes], size))
    payload = data[offset + table_bytes :]
    symbols, bits_read = code.decode(payload, count)
    if len(payload) != (bits_read + 7) // 8:
        raise StreamError(
            f"Huffman stream has {len(payload)} payload bytes, its {count} symbols need "
            f"{(bits_read + 7) // 8}"
        )
    return symbols


def entropy_bits(frequencies) -> float:
    """Shannon bound Σ −n_i·log2(n_i/N) in bits for symbol counts `frequencies`."""
    freqs = np.asarray(frequencies, dtype=np.float64)
    freqs = freqs[freqs > 0]
    total = freqs.sum()
    return float(-(freqs * np.log2(freqs / total)).sum()) if total else 0.0
