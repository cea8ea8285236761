"""`convert`: rewrite a Keras model with kbnn's graph passes, then LCE's converter.

LCE's own `convert_keras_model` turns only fully binary convolutions into `LceBconv2d`;
`convert` first runs `kbnn.converters.passes.lower` so dense, ternary, five-level and k-bit
layers reach LCE as binary convolutions too, then reads the flatbuffer back to report, per
user layer, which ops it became and how many bytes they take.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from dataclasses import dataclass, field

from kbnn._io import write_atomic
from kbnn.converters import large_filters, passes
from kbnn.converters.errors import ConversionError
from kbnn.converters.flatbuffer import read_flatbuffer
from kbnn.converters.graph import all_layers, check_graph_network
from kbnn.converters.plan import check_supported, plan_cache
from kbnn.converters.report import ConversionReport, build_report
from kbnn.converters.verify import VerifyReport, verify
from kbnn.errors import UsageError

import tensorflow as tf
from tqdm import tqdm

TARGETS = ("arm", "xcore")
IO_TYPES = (tf.float32, tf.int8)


@dataclass
class Conversion:
    """The result of `convert`.

    flatbuffer: the .tflite bytes (LCE custom ops included).
    report: per-layer rows (`str(report)` prints the table).
    lowered_model: the rewritten Keras model that was handed to LCE.
    verification: the `VerifyReport` when `verify_with` was given.
    """

    flatbuffer: bytes
    report: ConversionReport
    lowered_model: tf.keras.Model = field(repr=False)
    verification: VerifyReport | None = None

    @property
    def ops(self) -> dict[str, int]:
        """Op name -> count in the flatbuffer (custom ops by their custom code)."""
        return dict(self.report.op_counts)

    @property
    def size(self) -> int:
        return len(self.flatbuffer)

    def save(self, path):
        """Write the flatbuffer to `path` atomically (temporary file, then rename)."""
        return write_atomic(path, self.flatbuffer)

    def __repr__(self) -> str:
        ops = ", ".join(f"{op} x{n}" for op, n in self.ops.items())
        return f"Conversion({self.size:,} bytes; {ops})"


def _dtype(value, argument: str) -> tf.DType:
    try:
        dtype = tf.as_dtype(value)
    except TypeError as err:
        raise UsageError(f"`{argument}` must be tf.float32 or tf.int8, got {value!r}.") from err
    if dtype not in IO_TYPES:
        raise UsageError(f"`{argument}` must be tf.float32 or tf.int8, got {dtype.name}.")
    return dtype


def _validate(model, target, input_type, output_type, progress, allow_unknown_layers):
    if not isinstance(target, str) or target not in TARGETS:
        raise UsageError(f"`target` must be one of {TARGETS}, got {target!r}.")
    input_type = _dtype(input_type, "input_type")
    output_type = _dtype(output_type, "output_type")
    if not isinstance(progress, bool):
        raise UsageError(f"`progress` must be True or False, got {progress!r}.")
    if not isinstance(allow_unknown_layers, bool):
        raise UsageError(
            f"`allow_unknown_layers` must be True or False, got {allow_unknown_layers!r}."
        )
    if not isinstance(model, tf.keras.Model):
        raise UsageError(
            f"`model` must be a tf.keras.Model (Keras 2: `import kbnn` before TensorFlow), got "
            f"{type(model).__name__}."
        )
    return input_type, output_type


class _Stages:
    """A tqdm bar with one step per stage; long stages keep the elapsed time ticking."""

    def __init__(self, enabled: bool, total: int):
        self.bar = tqdm(
            total=total,
            disable=not enabled,
            file=sys.stderr,
            bar_format="{desc:<34} {bar:20} {n_fmt}/{total_fmt} [{elapsed}]",
            leave=True,
        )

    @contextlib.contextmanager
    def stage(self, description: str):
        self.bar.set_description_str(description)
        stop = threading.Event()
        ticker = None
        if not self.bar.disable:

            def tick():
                while not stop.wait(0.25):
                    self.bar.refresh()

            ticker = threading.Thread(target=tick, daemon=True)
            ticker.start()
        try:
            yield
        finally:
            stop.set()
            if ticker is not None:
                ticker.join()
        self.bar.update(1)

    def close(self):
        self.bar.close()


def convert(
    model,
    *,
    target: str = "arm",
    input_type=tf.float32,
    output_type=tf.float32,
    verify_with=None,
    progress: bool = False,
    allow_unknown_layers: bool = False,
) -> Conversion:
    """Convert a Keras model (larq or kbnn layers) into an LCE flatbuffer.

    # Arguments
        model: a functional or Sequential tf.keras (Keras 2) model.
        target: "arm" (default) or "xcore", passed to LCE.
        input_type, output_type: tf.float32 or tf.int8 model inputs/outputs (int8 needs a
            quantized graph; kbnn's rewrites produce float32 graphs).
        verify_with: inputs (array, or list of arrays for several model inputs); when given,
            the flatbuffer is run in LCE's interpreter and compared with Keras `predict`; a
            `VerificationError` is raised on a real disagreement beyond float tolerance
            (samples that differ only through a sign tie are reported, not failed).
        progress: show a progress bar (stderr) for the stages, the MLIR step being the slow one.
        allow_unknown_layers: hand layer types kbnn has not checked to LCE instead of raising.

    # Raises
        ConversionError: an unsupported layer (named, with the reason) or an LCE failure.
        UsageError (a ValueError): a bad option.
    """
    input_type, output_type = _validate(
        model, target, input_type, output_type, progress, allow_unknown_layers
    )
    check_graph_network(model)
    check_supported(all_layers(model), allow_unknown=allow_unknown_layers)
    stages = _Stages(progress, total=4 if verify_with is not None else 3)
    try:
        # One level plan per layer for the passes and the report, dropped on return.
        with plan_cache():
            with stages.stage("rewriting graph (kbnn passes)"):
                lowered = passes.lower(model)
            with stages.stage("LCE conversion (SavedModel + MLIR)"):
                flatbuffer, packed = _convert_lowered(lowered, target, input_type, output_type)
            with stages.stage("reading flatbuffer back"):
                parsed = read_flatbuffer(flatbuffer)
                _check_io_types(parsed, input_type, output_type)
                report = build_report(model, lowered, parsed, packed_filters=packed)
            conversion = Conversion(flatbuffer=flatbuffer, report=report, lowered_model=lowered)
            if verify_with is not None:
                with stages.stage("verifying in LCE's interpreter"):
                    conversion.verification = verify(model, flatbuffer, verify_with).check()
    finally:
        stages.close()
    return conversion


def _check_io_types(parsed, input_type, output_type) -> None:
    """LCE silently keeps float32 inputs/outputs for float graphs; say so instead."""
    graph = parsed.main
    for role, indices, wanted in (
        ("input_type", graph.inputs, input_type),
        ("output_type", graph.outputs, output_type),
    ):
        found = {graph.tensors[i].dtype for i in indices}
        if found != {wanted.name}:
            raise ConversionError(
                f"{role}={wanted.name} was requested but the flatbuffer's {role[:-5]}s are "
                f"{', '.join(sorted(found))}: int8 inputs/outputs need an int8-quantized graph "
                "(fake-quantization ranges), and kbnn's rewrites produce float32 graphs."
            )


def _convert_lowered(lowered, target, input_type, output_type):
    """LCE's conversion of the lowered model with large binary filters written by kbnn
    (`large_filters`), or a normal one where their ops cannot be told apart. Returns the
    flatbuffer and the packed filters kbnn wrote, by layer name. Only for target "arm": the
    packing written is LCE's ARM layout."""
    standins = large_filters.find_standins(lowered) if target == "arm" else []
    if standins:
        with large_filters.splat_kernels(standins):
            flatbuffer = _lce_convert(lowered, target, input_type, output_type)
        with contextlib.suppress(large_filters.FilterNotFound):
            flatbuffer = large_filters.install_filters(flatbuffer, standins)
            return flatbuffer, {standin.layer.name: standin.packed for standin in standins}
    return _lce_convert(lowered, target, input_type, output_type), {}


def _lce_convert(model, target, input_type, output_type) -> bytes:
    import larq_compute_engine as lce

    try:
        return lce.convert_keras_model(
            model,
            inference_input_type=input_type,
            inference_output_type=output_type,
            target=target,
        )
    except Exception as err:  # LCE raises many types (ValueError, RuntimeError, converter errors)
        hint = ""
        if input_type != tf.float32 or output_type != tf.float32:
            hint = " (int8 inputs/outputs need an int8-quantized graph; kbnn emits float32 I/O)"
        text = " ".join(str(err).split())[:600]
        raise ConversionError(
            f"LCE could not convert the model{hint}: {type(err).__name__}: {text}"
        ) from err
