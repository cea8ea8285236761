"""Huffman codec, fixed-width packing and the relative sparse index (pure numpy, fast)."""

import itertools

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn.compression import bitstream, huffman, relative_index
from kbnn.compression.bitstream import StreamError

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

streams = st.integers(1, 300).flatmap(
    lambda alphabet: hnp.arrays(
        np.int64, st.integers(0, 400), elements=st.integers(0, alphabet - 1)
    )
)
skewed_streams = hnp.arrays(
    np.int64,
    st.integers(1, 2000),
    elements=st.sampled_from([0] * 20 + [1] * 6 + [2] * 3 + [3, 4, 5, 6, 7, 8, 9, 10, 11]),
)


# --- Huffman ---------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(streams)
def test_stream_round_trip_is_exact(symbols):
    assert np.array_equal(huffman.decode_stream(huffman.encode_stream(symbols)), symbols)


@settings(max_examples=50, deadline=None)
@given(skewed_streams)
def test_code_length_is_within_one_bit_of_the_entropy(symbols):
    counts = np.bincount(symbols)
    code = huffman.HuffmanCode(huffman.code_lengths(counts))
    bits = code.bit_count(symbols)
    entropy = huffman.entropy_bits(counts)
    used = np.count_nonzero(counts)
    if used == 1:
        assert bits == symbols.size  # a lone symbol still takes one bit
    else:
        assert entropy - 1e-9 <= bits < entropy + symbols.size


def _brute_force_optimal_bits(counts):
    """Minimum Σ n_i·l_i over all length vectors with Kraft sum <= 1 (small alphabets)."""
    best = None
    for lengths in itertools.product(range(1, len(counts)), repeat=len(counts)):
        if sum(2.0 ** -np.array(lengths)) <= 1.0:
            cost = int(np.dot(counts, lengths))
            best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize(
    "counts", [[5, 1, 1], [1, 1, 1, 1], [10, 6, 3, 1], [7, 7, 2, 1, 1], [1, 2, 4, 8, 16]]
)
def test_code_lengths_are_optimal(counts):
    lengths = huffman.code_lengths(counts)
    assert int(np.dot(counts, lengths)) == _brute_force_optimal_bits(counts)


def test_canonical_codes_are_prefix_free():
    lengths = huffman.code_lengths([50, 20, 10, 10, 5, 3, 1, 1])
    codes = huffman.canonical_codes(lengths)
    words = [format(int(c), f"0{int(n)}b") for c, n in zip(codes, lengths, strict=True)]
    for a, b in itertools.permutations(words, 2):
        assert not b.startswith(a)


def test_length_limit_holds_for_fibonacci_counts():
    fibonacci = [1, 1]
    while len(fibonacci) < 40:
        fibonacci.append(fibonacci[-1] + fibonacci[-2])
    lengths = huffman.code_lengths(fibonacci)
    assert lengths.max() == huffman.MAX_CODE_LENGTH  # unlimited it would be 39
    assert np.sum(2.0**-lengths) <= 1.0
    symbols = np.repeat(np.arange(40), 3)
    assert np.array_equal(huffman.decode_stream(huffman.encode_stream(symbols, 40)), symbols)


def test_skewed_stream_is_smaller_than_fixed_width():
    rng = np.random.default_rng(0)
    symbols = rng.choice(32, size=5000, p=np.r_[0.5, np.full(31, 0.5 / 31)])
    assert len(huffman.encode_stream(symbols, 32)) < 5000 * 5 / 8 * 0.75


def test_truncated_and_garbled_streams_raise():
    blob = huffman.encode_stream(np.arange(50) % 7)
    with pytest.raises(StreamError):
        huffman.decode_stream(blob[:-3])
    with pytest.raises(StreamError):
        huffman.decode_stream(blob + b"\x00")
    with pytest.raises(StreamError):
        huffman.decode_stream(b"\x05")


def test_bad_lengths_are_rejected():
    with pytest.raises(StreamError, match="prefix code"):
        huffman.HuffmanCode([1, 1, 1])
    with pytest.raises(ValueError, match="no code"):
        huffman.HuffmanCode([1, 1, 0]).encode([2])


# --- fixed width and varints -----------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 20).flatmap(
        lambda w: st.tuples(
            st.just(w), hnp.arrays(np.int64, st.integers(0, 200), elements=st.integers(0, 2**w - 1))
        )
    )
)
def test_fixed_width_round_trip(case):
    width, values = case
    packed = bitstream.pack_uint(values, width)
    assert len(packed) == (values.size * width + 7) // 8
    assert np.array_equal(bitstream.unpack_uint(packed, width, values.size), values)


@given(st.integers(0, 2**63 - 1))
def test_varint_round_trip(value):
    data = bitstream.write_varint(value)
    assert bitstream.read_varint(data, 0) == (value, len(data))


# --- relative index with filler zeros --------------------------------------------------------


def test_paper_figure_2_example():
    # Han et al. 2016, Fig. 2: nonzeros at 1, 4 and 15, 3-bit gaps (largest gap 8): the
    # distance 11 from 4 to 15 overflows, so a filler zero goes in at 12.
    gaps, positions = relative_index.encode_positions([1, 4, 15], gap_bits=3)
    assert list(gaps + 1) == [2, 3, 8, 3]
    assert list(positions) == [1, 4, 12, 15]


@pytest.mark.parametrize("distance,fillers", [(32, 0), (33, 1), (64, 1), (65, 2), (200, 6)])
def test_gap_overflow_inserts_filler_zeros(distance, fillers):
    # 5-bit gaps (fc layers): the largest gap is 32; every further 32 positions need a filler.
    flat = np.zeros(distance + 1, np.float32)
    flat[0] = flat[distance] = 1.0
    gaps, positions = relative_index.to_relative(flat, relative_index.FC_GAP_BITS)
    assert relative_index.filler_count(gaps, 2) == fillers
    assert gaps.max() < 32
    assert np.array_equal(positions[[0, -1]], [0, distance])
    assert np.all(flat[positions[1:-1]] == 0)  # fillers sit on zeros
    decoded = relative_index.decode_positions(gaps, relative_index.FC_GAP_BITS, flat.size)
    assert np.array_equal(decoded, positions)


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(np.bool_, st.integers(1, 3000)), st.integers(1, 8))
def test_relative_index_round_trip(nonzero, gap_bits):
    flat = nonzero.astype(np.float32)
    gaps, positions = relative_index.to_relative(flat, gap_bits)
    decoded = relative_index.decode_positions(gaps, gap_bits, flat.size)
    assert np.array_equal(decoded, positions)
    rebuilt = np.zeros_like(flat)
    rebuilt[decoded] = flat[decoded]
    assert np.array_equal(rebuilt, flat)
    # Entries: one per nonzero plus floor((distance − 1) / 2^g) fillers before each.
    distances = np.diff(np.flatnonzero(flat), prepend=-1)
    assert gaps.size == np.count_nonzero(flat) + int(np.sum((distances - 1) // 2**gap_bits))


def test_relative_index_past_the_end_is_rejected():
    with pytest.raises(StreamError, match="past the end"):
        relative_index.decode_positions([3, 3], gap_bits=2, size=7)


def test_default_gap_bits_follow_the_paper():
    assert relative_index.default_gap_bits((784, 300)) == 5
    assert relative_index.default_gap_bits((5, 5, 20, 50)) == 4
