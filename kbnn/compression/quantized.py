"""Quantized (binary / ternary / five-level) kernels: materialise them, measure their bits.

A larq/kbnn layer trains latent float weights and computes with q(W). For storage only q(W)
matters: with the quantizer's `integer_levels`, q(W) = levels·scale, i.e. an integer symbol
per weight plus a per-channel scale. `materialize_quantized` replaces the latent weights by
q(W) so that the exact file format can store the symbols; `level_statistics` reports what the
entropy coder makes of them. A ternary kernel with sparsity s has entropy
H = −s·log2 s − (1−s)·log2((1−s)/2) bits per weight, below log2 3 ≈ 1.585 as soon as the
three levels are not equally likely. Huffman coding of three symbols spends 1 bit on the most
frequent level and 2 on the others: 1 + (1 − s) bits per weight when zeros dominate.
"""

from __future__ import annotations

import dataclasses

from kbnn import kernels
from kbnn.compression import encoding as enc
from kbnn.compression import huffman
from kbnn.compression import layers as klayers
from kbnn.compression.pruning import copy_model

import numpy as np
import tensorflow as tf


def quantized_layers(model: tf.keras.Model) -> list[tf.keras.layers.Layer]:
    """Layers of `model` whose kernel is quantized on read (larq/kbnn Quant* layers)."""
    return [
        layer
        for layer in model.layers
        if klayers.kernel_attribute(layer)
        and klayers.kernel_quantizer(layer) is not None
        and layer.built
    ]


def quantized_kernel(layer) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """`(q(W), (levels, scale) or None)` of a quantized layer's current latent kernel."""
    quantizer = klayers.kernel_quantizer(layer)
    latent = tf.convert_to_tensor(klayers.kernel_variable(layer).numpy())
    if hasattr(quantizer, "integer_levels"):
        levels, scale = (np.asarray(v) for v in quantizer.integer_levels(latent))
        return enc.levels_times_scale(levels, scale), (levels, scale)
    return enc.canonical_zeros(kernels.quantized_kernel(layer)), None


def materialize_quantized(model: tf.keras.Model, rtol: float = 1e-4):
    """Copy of `model` whose quantized kernels hold q(W) instead of latent W.

    Only where the quantizer is idempotent, q(q(W)) ≈ q(W) (binary sign, XNOR, TWN,
    five-level, DoReFa up to 3 bits): there the materialised layer computes what the latent
    one did. DoReFa weights of 4+ bits are not (the tanh normalisation moves the levels), and
    keep their latent kernel. (`rtol` absorbs the float rounding of recomputed scales.)
    Returns `(model, notes)` with one note per kernel left latent.
    """
    clone = copy_model(model)
    notes = []
    for layer in quantized_layers(clone):
        quantized, _ = quantized_kernel(layer)
        requantized = np.asarray(klayers.kernel_quantizer(layer)(tf.constant(quantized)))
        if not np.allclose(requantized, quantized, rtol=rtol, atol=0.0):
            notes.append(
                f"layer {layer.name!r}: its quantizer is not idempotent, so the latent "
                "kernel is kept (stored as float)"
            )
            continue
        klayers.kernel_variable(layer).assign(quantized)
    return clone, notes


@dataclasses.dataclass(frozen=True)
class LevelStatistics:
    """Symbols of one quantized kernel and what coding them costs."""

    layer: str
    weights: int
    levels: tuple[int, ...]
    counts: tuple[int, ...]
    entropy_bits_per_weight: float
    huffman_bits_per_weight: float  # dense level stream, code table included
    fixed_bits_per_weight: float  # ceil(log2(#levels)) per weight
    stored_bits_per_weight: float  # smallest exact encoding (sparse layout, scales included)
    stored_encoding: str

    @property
    def sparsity(self) -> float:
        return dict(zip(self.levels, self.counts, strict=True)).get(0, 0) / self.weights


def level_statistics(model: tf.keras.Model) -> list[LevelStatistics]:
    """Entropy and coded bits per weight of every quantized kernel with `integer_levels`.

    `stored_bits_per_weight`: what `save_compressed` spends on q(W) once materialised.
    """
    stats = []
    for layer in quantized_layers(model):
        quantized, levels = quantized_kernel(layer)
        if levels is None:
            continue
        values = np.round(levels[0]).astype(np.int64).ravel()
        low, high = int(values.min()), int(values.max())
        counts = np.bincount(values - low, minlength=high - low + 1)
        stream = huffman.encode_stream(values - low, high - low + 1)
        stored = enc.choose(quantized, levels=levels).chosen
        stats.append(
            LevelStatistics(
                layer=layer.name,
                weights=values.size,
                levels=tuple(range(low, high + 1)),
                counts=tuple(int(c) for c in counts),
                entropy_bits_per_weight=huffman.entropy_bits(counts) / values.size,
                huffman_bits_per_weight=8 * len(stream) / values.size,
                fixed_bits_per_weight=float(max(1, (high - low).bit_length())),
                stored_bits_per_weight=8 * stored.nbytes / values.size,
                stored_encoding=stored.name,
            )
        )
    return stats
