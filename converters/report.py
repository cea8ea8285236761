"""Per-layer conversion report: which flatbuffer ops each user layer became, and their bytes.

Ops are attributed to layers of the lowered Keras model in two ways:

- weight ops (LceBconv2d, CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV) by
  content: the filter in the flatbuffer is compared with each layer's kernel (bit-unpacked
  signs for LceBconv2d, per-channel proportionality for float/int8 filters, because the
  converter folds batch-norm multipliers into filters). Tensor names cannot be used for this:
  the MLIR converter truncates fused names and names constants `arith.constant…`;
- other ops by the layer names in their output tensor's name (e.g. `model/conv1_kb_sum/add`).

Lowered layers map back to the user's layers through `kbnn.converters.graph.origin`.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from dataclasses import dataclass, field

from kbnn.converters import levels as klevels
from kbnn.converters.flatbuffer import FlatbufferModel, Operator, format_table
from kbnn.converters.graph import all_layers, call_counts, origin, producer
from kbnn.converters.plan import Lowering, plan_layer
from kbnn.normalization import ShiftBatchNormalization

import numpy as np
import tensorflow as tf

WEIGHT_OPS = ("LceBconv2d", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
_NO_OP_AT_INFERENCE = (
    tf.keras.layers.Dropout,
    tf.keras.layers.GaussianNoise,
    tf.keras.layers.GaussianDropout,
    tf.keras.layers.AlphaDropout,
    tf.keras.layers.ActivityRegularization,
)
_FUSABLE = (
    tf.keras.layers.BatchNormalization,
    tf.keras.layers.Activation,
    tf.keras.layers.ReLU,
)


@dataclass
class LayerReport:
    """One user layer: what it became and what it costs in the flatbuffer."""

    layer: str
    type: str
    lowering: Lowering | None
    ops: dict[str, int]
    weights: int = 0
    kernel_bytes: int = 0
    other_bytes: int = 0
    fused_into: str | None = None
    fused: list[str] = field(default_factory=list)

    @property
    def weight_bits(self) -> int | None:
        return self.lowering.weight_bits if self.lowering and self.weights else None

    @property
    def limit_bytes(self) -> int | None:
        """⌈weights · bits / 8⌉: the bytes the kernel needs at its bit count."""
        if not self.weight_bits or self.weight_bits >= 32:
            return None
        return math.ceil(self.weights * self.weight_bits / 8)

    @property
    def ratio(self) -> float | None:
        limit = self.limit_bytes
        return self.kernel_bytes / limit if limit else None

    @property
    def action(self) -> str:
        if self.lowering is not None:
            return self.lowering.describe()
        if self.fused_into:
            return f"fused into {self.fused_into}"
        if not self.ops:
            return "no op of its own (merged, folded or a no-op)"
        return "as is"

    def to_dict(self) -> dict:
        return {
            "layer": self.layer,
            "type": self.type,
            "action": self.action,
            "ops": dict(self.ops),
            "weight_bits": self.weight_bits,
            "weights": self.weights,
            "kernel_bytes": self.kernel_bytes,
            "limit_bytes": self.limit_bytes,
            "ratio": self.ratio,
            "other_bytes": self.other_bytes,
            "fused": list(self.fused),
        }


@dataclass
class ConversionReport:
    """Per-layer rows, op counts and totals of one conversion (`str(report)` is the table)."""

    layers: list[LayerReport]
    op_counts: dict[str, int]
    size: int
    unattributed: dict[str, int]
    warnings: list[str]

    def __getitem__(self, name: str) -> LayerReport:
        for row in self.layers:
            if row.layer == name:
                return row
        raise KeyError(f"no layer named {name!r} in the conversion report")

    @property
    def fallbacks(self) -> list[LayerReport]:
        return [row for row in self.layers if row.lowering and row.lowering.action == "float"]

    def table(self) -> str:
        rows = [
            (
                "layer",
                "type",
                "lowering",
                "ops",
                "bits",
                "weights",
                "kernel B",
                "limit B",
                "ratio",
                "other B",
                "fused",
            )
        ]
        for row in self.layers:
            rows.append(
                (
                    row.layer,
                    row.type,
                    row.action,
                    _ops_cell(row.ops),
                    str(row.weight_bits or ""),
                    f"{row.weights:,}" if row.weights else "",
                    f"{row.kernel_bytes:,}" if row.weights else "",
                    f"{row.limit_bytes:,}" if row.limit_bytes else "",
                    f"{row.ratio:.2f}" if row.ratio else "",
                    f"{row.other_bytes:,}" if row.other_bytes else "",
                    ", ".join(row.fused),
                )
            )
        return format_table(rows)

    def __str__(self) -> str:
        lines = [self.table(), ""]
        lines.append(f"flatbuffer: {self.size:,} bytes")
        lines.append("ops: " + ", ".join(f"{op} x{n}" for op, n in self.op_counts.items()))
        if self.unattributed:
            lines.append(
                "not attributed to a layer: "
                + ", ".join(f"{op} x{n}" for op, n in self.unattributed.items())
            )
        for row in self.fallbacks:
            lines.append(f"float fallback: {row.layer} ({row.lowering.reason})")
        lines.extend(f"warning: {text}" for text in self.warnings)
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "layers": [row.to_dict() for row in self.layers],
            "op_counts": dict(self.op_counts),
            "size": self.size,
            "unattributed": dict(self.unattributed),
            "warnings": list(self.warnings),
        }


def _ops_cell(ops: dict[str, int], shown: int = 4) -> str:
    """Kernel ops first, at most `shown` kinds, the rest counted."""
    order = sorted(ops.items(), key=lambda item: (item[0] not in WEIGHT_OPS, -item[1], item[0]))
    cells = [f"{op} x{n}" if n > 1 else op for op, n in order[:shown]]
    rest = sum(n for _, n in order[shown:])
    if rest:
        cells.append(f"+{rest} more")
    return ", ".join(cells)


# ----------------------------------------------------------------------------------------------
# Attribution
# ----------------------------------------------------------------------------------------------


def expected_filter(layer) -> np.ndarray | None:
    """`layer`'s quantized kernel in TFLite's filter layout, output channels first.

    Depthwise kernels come out as (C·M, kh, kw); TFLite stores them as (1, kh, kw, C·M), which
    `_match_filter` transposes to this layout before comparing."""
    kernel = getattr(layer, "kernel", None)
    if kernel is None and hasattr(layer, "depthwise_kernel"):
        depthwise = klevels.quantized_kernel(layer)  # (kh, kw, C, M)
        kh, kw, c, m = depthwise.shape
        return depthwise.reshape(kh, kw, c * m).transpose(2, 0, 1)
    if kernel is None:
        return None
    quantized = klevels.quantized_kernel(layer)
    if isinstance(layer, tf.keras.layers.Conv2DTranspose):
        return quantized.transpose(2, 0, 1, 3)
    if quantized.ndim == 2:  # Dense (I, O)
        return quantized.T
    if quantized.ndim == 3:  # Conv1D (k, I, O) -> (O, 1, k, I)
        return quantized.transpose(2, 0, 1)[:, None]
    return quantized.transpose(3, 0, 1, 2)


def unpack_bconv_filter(packed: np.ndarray) -> np.ndarray:
    """LCE's bit-packed filter (O, kh, kw, ⌈I/32⌉) int32 → ±1 (O, kh, kw, 32·⌈I/32⌉).

    Measured: bit b of word w holds input channel 32·w + b, bit value 1 means −1.
    """
    words = np.asarray(packed).astype(np.uint32)
    bits = (words[..., None] >> np.arange(32, dtype=np.uint32)) & 1
    bits = bits.reshape(*words.shape[:-1], words.shape[-1] * 32)
    return 1.0 - 2.0 * bits.astype(np.float32)


def pack_bconv_filter(filter_values: np.ndarray) -> np.ndarray:
    """(O, kh, kw, I) real filter → LCE's bit-packed uint32 words (O, kh, kw, ⌈I/32⌉) of its
    signs (the inverse of `unpack_bconv_filter`; bit 1 means < 0, padding bits 0)."""
    # Packed with the output channels last, the layout Keras kernels are stored in (a filter
    # made by `kernel.transpose(3, 0, 1, 2)` is read in memory order): 3× faster on a 37.7M
    # kernel than packing the transposed bits, and the transpose then moves 8× fewer bytes.
    negative = np.moveaxis(np.asarray(filter_values), 0, -1) < 0
    padding = (-negative.shape[-2]) % 32
    if padding:
        pad_width = [(0, 0)] * negative.ndim
        pad_width[-2] = (0, padding)
        negative = np.pad(negative, pad_width)
    packed = np.packbits(negative, axis=-2, bitorder="little")
    return np.ascontiguousarray(np.moveaxis(packed, -1, 0)).view("<u4")


def valid_bits(inputs: int, words: int) -> np.ndarray:
    """Per-word mask of the bits that hold one of `inputs` channels (the rest is padding)."""
    mask = np.full(words, 0xFFFFFFFF, np.uint32)
    if inputs % 32:
        mask[inputs // 32] = np.uint32((1 << (inputs % 32)) - 1)
    return mask


def _matches(op: str, actual: np.ndarray, expected: np.ndarray, packed) -> bool:
    """`packed()` returns `pack_bconv_filter(expected)` (memoized by the caller)."""
    channels = expected.shape[0]
    if actual.shape[0] != channels:
        return False
    if op == "LceBconv2d":  # `actual` is LCE's packed words: compare packed, 32 signs a word
        inputs = expected.shape[-1]
        if actual.shape[:-1] != expected.shape[:-1] or actual.shape[-1] != -(-inputs // 32):
            return False
        mask = valid_bits(inputs, actual.shape[-1])
        differ = (np.asarray(actual).astype(np.uint32) ^ packed()) & mask
        differ = differ.reshape(channels, -1)
        same = np.all(differ == 0, axis=1) | np.all(
            differ == np.broadcast_to(mask, actual.shape).reshape(channels, -1), axis=1
        )
        if np.all(same):
            return True
        zero = np.all(expected.reshape(channels, -1) == 0, axis=1)
        return bool(np.all(same | zero))
    a = actual.astype(np.float64).reshape(channels, -1)
    b = expected.astype(np.float64).reshape(channels, -1)
    if a.shape != b.shape:
        return False
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    zero = norms == 0
    cosine = np.abs(np.sum(a * b, axis=1)) / np.where(zero, 1.0, norms)
    return bool(np.all(zero | (cosine > 0.999)))


def attribute(flatbuffer: FlatbufferModel, lowered, packed_filters=None) -> dict[int, str]:
    """op index (main subgraph) -> name of the lowered-model layer it implements.
    `packed_filters`: layer name -> `pack_bconv_filter` of its filter, where already known."""
    layers = {layer.name: layer for layer in all_layers(lowered)}
    candidates = []
    for layer in layers.values():
        expected = expected_filter(layer)
        if expected is not None:
            candidates.append((layer.name, expected))
    used: set[str] = set()
    packed_cache: dict[str, np.ndarray] = dict(packed_filters or {})
    result: dict[int, str] = {}
    graph = flatbuffer.main
    final = {}
    order = flatbuffer.io_positions(list(lowered.output_names), "outputs")
    if order is None and len(graph.outputs) == len(lowered.outputs):
        order = list(range(len(graph.outputs)))
    for index, position in zip(graph.outputs, order or [], strict=False):
        layer = producer(lowered.outputs[position])
        if layer is not None:
            final[index] = layer.name
    made_by = {index: op.index for op in graph.operators for index in op.outputs}
    for op in graph.operators:
        name = None
        if op.op in WEIGHT_OPS and len(op.inputs) > 1 and op.inputs[1] >= 0:
            name = _match_filter(flatbuffer, op, candidates, used, packed_cache)
        if name is None:
            name = next(
                (
                    n
                    for n in _named_layers(graph.tensors, op, layers)
                    if _plausible(layers[n], op.op)
                ),
                None,
            )
        if name is None:
            # A model output is named after the signature (StatefulPartitionedCall:0); it
            # comes from the layer that produces the same model output in Keras.
            name = next((final[i] for i in op.outputs if i in final), None)
            if name is not None and not _plausible(layers[name], op.op):
                name = None
        if name is None:
            # An op named after a layer it was merged with (e.g. a RESHAPE carrying a fused
            # batch norm's name) belongs with the op that produced its input.
            sources = [result.get(made_by[i]) for i in op.inputs if i in made_by]
            name = next((source for source in sources if source is not None), None)
        if name is not None:
            result[op.index] = name
    return result


#: Ops a normalization or activation layer can emit on its own; anything else named after it
#: was merged into it by the converter.
_NORMALIZATION_OPS = {"MUL", "ADD", "SUB"}
_ACTIVATION_OPS = {
    "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "TANH", "LOGISTIC", "SOFTMAX",
    "LOG_SOFTMAX", "HARD_SWISH", "ELU", "LEAKY_RELU", "PRELU", "GELU", "MINIMUM", "MAXIMUM",
    "MUL", "SUB", "DIV", "EXP", "ABS", "NEG", "SIGN", "SQUARE", "SQRT", "RSQRT",
}  # fmt: skip


def _plausible(layer, op: str) -> bool:
    if isinstance(layer, tf.keras.layers.BatchNormalization) or type(layer).__name__ == (
        "ShiftBatchNormalization"
    ):
        return op in _NORMALIZATION_OPS
    if isinstance(
        layer, tf.keras.layers.Activation | tf.keras.layers.ReLU | tf.keras.layers.Softmax
    ):
        return op in _ACTIVATION_OPS
    return True


def _packed(cache: dict, name: str, expected: np.ndarray) -> np.ndarray:
    if name not in cache:
        cache[name] = pack_bconv_filter(expected)
    return cache[name]


def _match_filter(
    flatbuffer, op: Operator, candidates, used: set[str], packed_cache: dict
) -> str | None:
    tensor = flatbuffer.main.tensors[op.inputs[1]]
    actual = flatbuffer.constant(tensor)
    if actual is None:
        return None
    if op.op == "DEPTHWISE_CONV_2D" and actual.ndim == 4 and actual.shape[0] == 1:
        actual = actual[0].transpose(2, 0, 1)  # TFLite (1, kh, kw, C·M) -> (C·M, kh, kw)
    found = [
        name
        for name, expected in candidates
        if _matches(
            op.op, actual, expected, functools.partial(_packed, packed_cache, name, expected)
        )
    ]
    for name in found:
        if name not in used:
            used.add(name)
            return name
    return found[0] if found else None


def _named_layers(tensors, op: Operator, layers) -> list[str]:
    """Lowered-layer names found in the op's output tensor names, in order."""
    found = []
    for index in op.outputs:
        if index < 0:
            continue
        for part in tensors[index].name.split(";"):
            for segment in part.split("/")[1:]:
                if segment in layers and segment not in found:
                    found.append(segment)
    return found


# ----------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------


def build_report(
    original, lowered, flatbuffer: FlatbufferModel, packed_filters=None
) -> ConversionReport:
    """Rows for every layer of `original` (nested models flattened); `packed_filters` as in
    `attribute`."""
    ops_of = attribute(flatbuffer, lowered, packed_filters)
    user_layers = all_layers(original)
    user_names = {layer.name for layer in user_layers}
    rows = {
        layer.name: LayerReport(
            layer=layer.name, type=type(layer).__name__, lowering=plan_layer(layer), ops={}
        )
        for layer in user_layers
    }
    graph = flatbuffer.main
    counted_buffers: set[int] = set()
    unattributed: Counter = Counter()
    for op in graph.operators:
        lowered_name = ops_of.get(op.index)
        owner = origin(lowered_name) if lowered_name else None
        if owner not in user_names:
            unattributed[op.op] += 1
            continue
        row = rows[owner]
        row.ops[op.op] = row.ops.get(op.op, 0) + 1
        for position, index in enumerate(op.inputs):
            if index < 0:
                continue
            tensor = graph.tensors[index]
            if not tensor.is_constant or tensor.buffer in counted_buffers:
                continue
            counted_buffers.add(tensor.buffer)
            if op.op in WEIGHT_OPS and position == 1:
                row.kernel_bytes += tensor.nbytes
            else:
                row.other_bytes += tensor.nbytes
    for layer in user_layers:
        row = rows[layer.name]
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            kernel = getattr(layer, "depthwise_kernel", None)
        if kernel is not None:
            row.weights = int(np.prod(kernel.shape))
        row.ops = dict(sorted(row.ops.items(), key=lambda item: (-item[1], item[0])))
    _mark_fused(user_layers, rows)
    warnings = _check_expected_ops(rows.values(), call_counts(original))
    return ConversionReport(
        layers=list(rows.values()),
        op_counts=flatbuffer.op_counts(),
        size=flatbuffer.size,
        unattributed=dict(unattributed),
        warnings=warnings,
    )


def _fusable_types() -> tuple[type, ...]:
    return _FUSABLE + (ShiftBatchNormalization,)


def _mark_fused(user_layers, rows: dict[str, LayerReport]) -> None:
    """A BN/activation with no op of its own was fused into the kernel layer upstream of it."""
    kernel_names = {name for name, row in rows.items() if row.lowering is not None}
    fusable = _fusable_types()
    for layer in user_layers:
        row = rows[layer.name]
        if row.ops or not isinstance(layer, fusable) or isinstance(layer, _NO_OP_AT_INFERENCE):
            continue
        upstream = _upstream_kernel(layer, kernel_names)
        if upstream is not None:
            row.fused_into = upstream
            rows[upstream].fused.append(layer.name)


def _upstream_kernel(layer, kernel_names: set[str]) -> str | None:
    seen = 0
    current = layer
    while current is not None and seen < 16:
        nodes = current._inbound_nodes
        if len(nodes) != 1 or len(nodes[0].keras_inputs) != 1:
            return None
        current = producer(nodes[0].keras_inputs[0])
        if current is not None and current.name in kernel_names:
            return current.name
        seen += 1
    return None


def _check_expected_ops(rows, calls: dict[str, int]) -> list[str]:
    """A lowered layer must appear as its planned number of LceBconv2d (per call)."""
    warnings = []
    for row in rows:
        if row.lowering is None or not row.lowering.bconvs:
            continue
        found = row.ops.get("LceBconv2d", 0)
        expected = row.lowering.bconvs * calls.get(row.layer, 1)
        if found != expected:
            warnings.append(f"layer '{row.layer}': expected {expected} LceBconv2d, found {found}")
    return warnings
