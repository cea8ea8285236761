"""Integer reference of a lowered network in numpy, written independently of the C generator:
it reads the lowered integer parameters (`IntegerNetwork`), keeps activations as plain integers
(no bit packing, no popcount) and computes every convolution as an explicit sum over the padded
window. The generated C must reproduce its scores bit for bit.

Convolutions run as BLAS matrix products in float32 (float64 when a sum could reach 2^24): every
operand and partial sum is then an integer the float type holds exactly, so the products are
exact and the 10,000-digit check stays fast.
"""

from __future__ import annotations

from kbnn.converters.c_export.lowering import INT8_LIMIT, IntegerLayer, IntegerNetwork

import numpy as np

_CHUNK = 256  # images per block (bounds the im2col memory)


def _input_values(layer: IntegerLayer, images: np.ndarray) -> np.ndarray:
    values = images.astype(np.int64)
    return layer.input_lut[values] if layer.input_lut is not None else values


def _conv(layer: IntegerLayer, values: np.ndarray) -> np.ndarray:
    """acc[n, y, x, c] over the conv output grid (before pooling), int64."""
    kh, kw, cin, cout = layer.kernel.shape
    top, left = layer.pad
    ho, wo = layer.conv_shape
    n, h, w, _ = values.shape
    bottom, right = ho + kh - 1 - h - top, wo + kw - 1 - w - left
    padded = np.pad(
        values,
        ((0, 0), (top, max(bottom, 0)), (left, max(right, 0)), (0, 0)),
        constant_values=layer.pad_value,
    )[:, : ho + kh - 1, : wo + kw - 1]
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(1, 2))
    # windows: (n, ho, wo, cin, kh, kw) → patches in (kh, kw, cin) order
    patches = windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * ho * wo, kh * kw * cin)
    bound = np.abs(layer.kernel).sum() * max(np.abs(values).max(initial=0), abs(layer.pad_value))
    dtype = np.float32 if bound < 2**24 else np.float64  # exact either way: integers < 2^mantissa
    weights = layer.kernel.reshape(kh * kw * cin, cout).astype(dtype)
    acc = patches.astype(dtype) @ weights
    return np.rint(acc).astype(np.int64).reshape(n, ho, wo, cout)


def _pool(layer: IntegerLayer, acc: np.ndarray) -> np.ndarray:
    ph, pw = layer.pool
    ho, wo = acc.shape[1] // ph, acc.shape[2] // pw
    blocks = acc[:, : ho * ph, : wo * pw].reshape(acc.shape[0], ho, ph, wo, pw, -1)
    return np.where(layer.pool_min, blocks.min(axis=(2, 4)), blocks.max(axis=(2, 4)))


def _activate(layer: IntegerLayer, acc: np.ndarray) -> np.ndarray:
    """Integer activations (or scores) from pooled accumulators."""
    if layer.out_format == "sign":
        return np.where(acc >= layer.thresholds[:, 0], 1, -1)
    if layer.out_format == "planes":
        return (acc[..., None] >= layer.thresholds).sum(axis=-1)
    t = acc * layer.mult + layer.bias
    if layer.out_format == "scores":
        return t
    floor = np.floor_divide(t, 2**layer.shift)
    return np.clip(floor, -INT8_LIMIT, INT8_LIMIT)


def layer_outputs(network: IntegerNetwork, images: np.ndarray) -> list[np.ndarray]:
    """Every layer's integer output for uint8 images (N, H, W, C)."""
    values = _input_values(network.layers[0], images)
    outputs = []
    for layer in network.layers:
        values = _activate(layer, _pool(layer, _conv(layer, values)))
        outputs.append(values)
    return outputs


def scores(network: IntegerNetwork, images: np.ndarray) -> np.ndarray:
    """int64 class scores (N, classes) of uint8 images (N, H, W, C) in [0, 255]."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    out = []
    for start in range(0, len(images), _CHUNK):
        out.append(
            layer_outputs(network, images[start : start + _CHUNK])[-1].reshape(
                -1, network.num_classes
            )
        )
    return np.concatenate(out) if out else np.zeros((0, network.num_classes), np.int64)


def predict(network: IntegerNetwork, images: np.ndarray) -> np.ndarray:
    """Argmax of `scores`, ties to the lowest index (numpy's argmax, as the C does)."""
    return np.argmax(scores(network, images), axis=1)
