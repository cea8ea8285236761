"""Sparse tensors as relative indices with filler zeros (Han et al. 2016, §2 and Fig. 2).

A pruned tensor, flattened in C order, is stored as entries (gap, value): `gap` is the
distance from the previous entry's position (the first entry counts from position −1), so a
nonzero at flat position p after one at q has gap p − q ≥ 1. Gaps are stored in `gap_bits`
bits as `gap − 1`, so the largest gap is 2**gap_bits (the paper uses 4 bits for conv layers
and 5 bits for fully connected ones). When the distance to the next nonzero is larger, a
*filler* entry is inserted 2**gap_bits positions on, carrying the value zero — it is a real
(zero) element of the tensor, so decoding needs no special case: the value stream simply
holds a zero there. Zeros after the last nonzero need no entries (the shape is known).
"""

from __future__ import annotations

from kbnn.compression.bitstream import StreamError

import numpy as np

#: The paper's gap widths: 4 bits between conv weights, 5 bits between fc weights.
CONV_GAP_BITS = 4
FC_GAP_BITS = 5


def default_gap_bits(shape) -> int:
    """5 bits for 2-D (fully connected) kernels, 4 for everything else (conv kernels)."""
    return FC_GAP_BITS if len(shape) == 2 else CONV_GAP_BITS


def encode_positions(nonzero_positions, gap_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Relative index entries for increasing flat `nonzero_positions`.

    Returns `(gap_symbols, entry_positions)`: gap_symbols = gap − 1 ∈ [0, 2**gap_bits) per
    entry, fillers included; entry_positions the flat position each entry stands for (a
    filler's position holds a zero in the tensor).
    """
    if not 1 <= gap_bits <= 16:
        raise ValueError(f"gap_bits must be in 1..16, got {gap_bits}")
    positions = np.asarray(nonzero_positions, dtype=np.int64).ravel()
    max_gap = 1 << gap_bits
    distances = np.diff(positions, prepend=-1)
    if distances.size and distances.min() < 1:
        raise ValueError("nonzero positions must be strictly increasing and >= 0")
    fillers = (distances - 1) // max_gap  # whole max-gap jumps before each nonzero
    entries_per_nonzero = fillers + 1
    gaps = np.full(int(entries_per_nonzero.sum()), max_gap, dtype=np.int64)
    last_entry = np.cumsum(entries_per_nonzero) - 1
    gaps[last_entry] = distances - fillers * max_gap
    return gaps - 1, np.cumsum(gaps) - 1


def decode_positions(gap_symbols, gap_bits: int, size: int) -> np.ndarray:
    """Flat positions of the entries given by `gap_symbols` (inverse of `encode_positions`)."""
    gap_symbols = np.asarray(gap_symbols, dtype=np.int64).ravel()
    if gap_symbols.size and (gap_symbols.min() < 0 or gap_symbols.max() >= 1 << gap_bits):
        raise StreamError(f"gap symbol outside [0, 2**{gap_bits})")
    positions = np.cumsum(gap_symbols + 1) - 1
    if positions.size and positions[-1] >= size:
        raise StreamError(f"relative index points past the end of a tensor of {size} elements")
    return positions


def to_relative(flat: np.ndarray, gap_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """`(gap_symbols, entry_positions)` for the nonzeros of the 1-D array `flat`."""
    return encode_positions(np.flatnonzero(flat), gap_bits)


def filler_count(gap_symbols, nonzeros: int) -> int:
    """How many entries of a relative index are fillers (entries minus nonzeros)."""
    return int(np.asarray(gap_symbols).size) - int(nonzeros)
