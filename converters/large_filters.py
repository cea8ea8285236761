"""Large binary filters skip LCE's MLIR: convert with a splat stand-in, then write the real
bit-packed filter into the flatbuffer.

LCE's converter binarizes a ±1 filter one element at a time: XNORNet's 37.7M-weight fc6 takes
it 6.8 s as a ±1 filter and 3.8 s as an all-ones one (`python benchmarks/conversion_time.py
--filter-forms`); on the whole lowered XNORNet the MLIR step goes from 9.4 s to 5.5 s. The
words LCE would write are known exactly (`report.pack_bconv_filter`, checked against LCE's
own packing in tests/test_converters_flatbuffer.py), so kbnn writes them itself. Every binary
convolution with at least `STANDIN_MIN_WEIGHTS` ±1 weights is converted with an all-ones
kernel (LCE emits a FILL or a constant of equal words for it); then the packed words of the
real kernel replace that input of its `LceBconv2d`, with the channels LCE negated negated
too. A layer is only stood in for when its packed filter shape is unique in the model, so the
op it became is found without doubt; when that op cannot be found, `install_filters` raises
`FilterNotFound` and `convert` converts normally.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from kbnn.converters.flatbuffer import read_flatbuffer
from kbnn.converters.flatbuffer_edit import replace_constant_inputs
from kbnn.converters.levels import is_sign_quantizer
from kbnn.converters.report import pack_bconv_filter, valid_bits

import larq as lq
import numpy as np

#: Binary kernels with at least this many weights get a stand-in. LCE's MLIR spends about
#: 0.16 s per million ±1 weights (XNORNet's fc6 above), so smaller kernels gain little.
STANDIN_MIN_WEIGHTS = 1 << 20


class FilterNotFound(LookupError):
    """The flatbuffer has no single LceBconv2d for a stood-in layer."""


@dataclass(frozen=True)
class StandIn:
    layer: lq.layers.QuantConv2D
    packed: np.ndarray  # LCE's filter words, (O, kh, kw, ⌈I/32⌉) uint32

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.packed.shape)


def find_standins(model, min_weights: int | None = None) -> list[StandIn]:
    """The binary convolutions of the lowered `model` worth converting with a stand-in."""
    min_weights = STANDIN_MIN_WEIGHTS if min_weights is None else min_weights
    # LCE also fuses a float Conv2D of ±1 inputs and ±1 weights into LceBconv2d, so the
    # shape must be unique among every layer with a 4-D kernel, not only binary ones.
    convs = [layer for layer in model.layers if _kernel_rank(layer) == 4]
    shapes = [_packed_shape(layer) for layer in convs]
    standins = []
    for layer, shape in zip(convs, shapes, strict=True):
        if not _is_plain_binary_conv(layer) or shapes.count(shape) > 1:
            continue
        if np.prod(layer.kernel.shape) < min_weights:
            continue
        kernel = layer.kernel.numpy()
        if not np.all(np.abs(kernel) == 1.0):
            continue
        standins.append(StandIn(layer, pack_bconv_filter(kernel.transpose(3, 0, 1, 2))))
    return standins


@contextlib.contextmanager
def splat_kernels(standins: list[StandIn]):
    """Give each stood-in layer an all-ones kernel for the duration (restored on exit)."""
    saved = [standin.layer.kernel.numpy() for standin in standins]
    try:
        for standin in standins:
            standin.layer.kernel.assign(np.ones(standin.layer.kernel.shape, np.float32))
        yield
    finally:
        for standin, kernel in zip(standins, saved, strict=True):
            standin.layer.kernel.assign(kernel)


def install_filters(flatbuffer: bytes, standins: list[StandIn]) -> bytes:
    """Write each stand-in's packed filter into the one LceBconv2d whose filter has its shape.

    LCE negates the filter of an output channel whose multiplier is negative (a batch norm
    with γ < 0 before a sign); the stand-in's channel then reads −1 everywhere, and the real
    filter's channel is written negated the same way."""
    parsed = read_flatbuffer(flatbuffer)
    graph = parsed.main
    users: dict[int, int] = {}
    for op in graph.operators:
        for index in op.inputs:
            users[index] = users.get(index, 0) + 1
    replacements = {}
    for standin in standins:
        found = [
            op
            for op in graph.operators
            if op.op == "LceBconv2d"
            and len(op.inputs) > 1
            and graph.tensors[op.inputs[1]].shape == standin.shape
        ]
        if len(found) != 1 or users[found[0].inputs[1]] != 1:
            raise FilterNotFound(
                f"{len(found)} LceBconv2d ops with a {standin.shape} filter for layer "
                f"'{standin.layer.name}'."
            )
        negated = _negated_channels(parsed, graph.tensors[found[0].inputs[1]], standin)
        words = standin.packed ^ np.where(negated[:, None, None, None], _valid_mask(standin), 0)
        replacements[(found[0].index, 1)] = words.astype("<u4").tobytes()
    return replace_constant_inputs(flatbuffer, replacements)


def _negated_channels(parsed, tensor, standin: StandIn) -> np.ndarray:
    """Per output channel: did LCE write the all-ones stand-in as all −1 (negated)?"""
    words = parsed.constant(tensor)
    if words is None:  # a splat written as FILL(shape, value)
        fill = next((op for op in parsed.main.operators if tensor.index in op.outputs), None)
        value = None
        if fill is not None and fill.op == "FILL":
            value = parsed.constant(parsed.main.tensors[fill.inputs[1]])
        if value is None or value.size != 1:
            raise FilterNotFound(f"the {standin.shape} filter is neither constant nor a FILL.")
        words = np.broadcast_to(value.reshape(()), standin.shape)
    words = np.asarray(words).astype(np.uint32).reshape(standin.shape[0], -1)
    mask = _valid_mask(standin).reshape(standin.shape[0], -1)
    positive, negative = np.all(words == 0, axis=1), np.all(words == mask, axis=1)
    if not np.all(positive | negative):
        raise FilterNotFound(f"the {standin.shape} filter is not the all-ones stand-in.")
    return negative


def _valid_mask(standin: StandIn) -> np.ndarray:
    inputs = int(standin.layer.kernel.shape[2])
    return np.broadcast_to(valid_bits(inputs, standin.shape[-1]), standin.shape)


def _kernel_rank(layer) -> int:
    kernel = getattr(layer, "kernel", None)
    return len(kernel.shape) if kernel is not None else 0


def _packed_shape(layer) -> tuple[int, ...]:
    kh, kw, inputs, outputs = layer.kernel.shape
    return (int(outputs), int(kh), int(kw), -(-int(inputs) // 32))


def _is_plain_binary_conv(layer) -> bool:
    """A larq QuantConv2D that LCE turns into one LceBconv2d: ±1 inputs, a constant kernel."""
    return (
        type(layer) is lq.layers.QuantConv2D
        and is_sign_quantizer(layer.input_quantizer)
        and layer.kernel_quantizer is None
        and layer.data_format == "channels_last"
        and layer.groups == 1
    )
