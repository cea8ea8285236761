"""Edit a TFLite flatbuffer: give operator inputs new constant data.

Reading stays in `flatbuffer.py`; this is the one place that writes flatbuffers. It uses the
object API of the schema bindings LCE ships (the same flatc-generated module), so every field
LCE's exporter writes is carried over. Constant buffers are written 16-byte aligned, as
TFLite's own exporter does, so kernels can read them in place.
"""

from __future__ import annotations

from kbnn.converters.flatbuffer import FILE_IDENTIFIER, read_flatbuffer

import numpy as np
from larq_compute_engine.mlir.python import tflite_schema as schema

BUFFER_ALIGNMENT = 16


class _AlignedBuffer(schema.BufferT):
    """A BufferT whose data vector starts on a 16-byte boundary."""

    def Pack(self, builder):  # noqa: N802 (flatc's name)
        data = None
        if self.data is not None and len(self.data):
            payload = np.asarray(self.data, dtype=np.uint8).tobytes()
            builder.StartVector(1, len(payload), BUFFER_ALIGNMENT)
            builder.head -= len(payload)
            builder.Bytes[builder.head : builder.head + len(payload)] = payload
            builder.vectorNumElems = len(payload)
            data = builder.EndVector()
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        schema.BufferAddOffset(builder, self.offset)
        schema.BufferAddSize(builder, self.size)
        return schema.BufferEnd(builder)


def replace_constant_inputs(flatbuffer: bytes, replacements: dict[tuple[int, int], bytes]) -> bytes:
    """Return `flatbuffer` with new constant data for some operator inputs of the main subgraph.

    `replacements` maps (operator index, input position) to the raw little-endian bytes of the
    tensor, which must be exactly its shape × element size. The input may be a constant
    (its buffer is replaced) or the output of a FILL (the splat that LCE's exporter writes for
    a constant whose values are all equal): the tensor then gets its own buffer and the FILL is
    removed. Tensors, buffers and operator codes nothing uses any more are dropped.
    """
    parsed = read_flatbuffer(flatbuffer).main
    producers = {out: op for op in parsed.operators for out in op.outputs}
    model = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    if any(buffer.offset > 1 for buffer in model.buffers):
        raise ValueError("flatbuffers with external buffers (over 2 GB) are not edited.")
    graph = model.subgraphs[0]
    removed_ops: set[int] = set()
    for (op_index, position), payload in replacements.items():
        tensor = parsed.tensors[parsed.operators[op_index].inputs[position]]
        if len(payload) != tensor.size:
            raise ValueError(
                f"operator {op_index} input {position} ('{tensor.name}') holds {tensor.size} "
                f"bytes, the replacement has {len(payload)}."
            )
        producer = producers.get(tensor.index)
        if producer is not None:
            if producer.op != "FILL":
                raise ValueError(
                    f"operator {op_index} input {position} ('{tensor.name}') is computed by "
                    f"{producer.op}, not a constant or a FILL."
                )
            removed_ops.add(producer.index)
        graph.tensors[tensor.index].buffer = len(model.buffers)
        model.buffers.append(_buffer(payload))
    graph.operators = [op for i, op in enumerate(graph.operators) if i not in removed_ops]
    _drop_unused(model)
    model.buffers = [_aligned(buffer) for buffer in model.buffers]
    builder = schema.flatbuffers.Builder(len(flatbuffer) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def _drop_unused(model) -> None:
    """Remove tensors, buffers and operator codes that no longer have a user (main subgraph
    tensors only; buffers and codes across every subgraph)."""
    graph = model.subgraphs[0]
    used = set(_ints(graph.inputs)) | set(_ints(graph.outputs))
    for op in graph.operators:
        used.update(i for i in _ints(op.inputs) if i >= 0)
        used.update(_ints(op.outputs))
        used.update(_ints(op.intermediates))
    for signature in model.signatureDefs or []:
        if signature.subgraphIndex == 0:
            used.update(t.tensorIndex for t in (signature.inputs or []) + (signature.outputs or []))
    new_index = {old: new for new, old in enumerate(sorted(used))}
    graph.tensors = [graph.tensors[old] for old in sorted(used)]
    remap = np.vectorize(lambda i: new_index[int(i)] if i >= 0 else -1, otypes=[np.int32])
    graph.inputs, graph.outputs = _remapped(graph.inputs, remap), _remapped(graph.outputs, remap)
    for op in graph.operators:
        op.inputs, op.outputs = _remapped(op.inputs, remap), _remapped(op.outputs, remap)
        op.intermediates = _remapped(op.intermediates, remap)
    for signature in model.signatureDefs or []:
        if signature.subgraphIndex == 0:
            for entry in (signature.inputs or []) + (signature.outputs or []):
                entry.tensorIndex = new_index[entry.tensorIndex]
    _drop_unused_buffers(model)
    _drop_unused_codes(model)


def _drop_unused_buffers(model) -> None:
    # Buffer 0 is TFLite's empty sentinel; metadata entries point at buffers too.
    used = {0} | {t.buffer for g in model.subgraphs for t in g.tensors}
    used |= {m.buffer for m in model.metadata or []}
    used |= set(_ints(model.metadataBuffer))
    new_index = {old: new for new, old in enumerate(sorted(used))}
    model.buffers = [model.buffers[old] for old in sorted(used)]
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            tensor.buffer = new_index[tensor.buffer]
    for entry in model.metadata or []:
        entry.buffer = new_index[entry.buffer]
    if model.metadataBuffer is not None:
        model.metadataBuffer = [new_index[int(i)] for i in _ints(model.metadataBuffer)]


def _drop_unused_codes(model) -> None:
    used = sorted({op.opcodeIndex for g in model.subgraphs for op in g.operators})
    new_index = {old: new for new, old in enumerate(used)}
    model.operatorCodes = [model.operatorCodes[old] for old in used]
    for graph in model.subgraphs:
        for op in graph.operators:
            op.opcodeIndex = new_index[op.opcodeIndex]


def _buffer(payload: bytes):
    buffer = _AlignedBuffer()
    buffer.data = np.frombuffer(payload, dtype=np.uint8)
    return buffer


def _aligned(buffer):
    if isinstance(buffer, _AlignedBuffer):
        return buffer
    aligned = _AlignedBuffer()
    aligned.data, aligned.offset, aligned.size = buffer.data, buffer.offset, buffer.size
    return aligned


def _ints(values) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def _remapped(values, remap):
    if values is None or len(values) == 0:
        return values
    return remap(np.asarray(values))
