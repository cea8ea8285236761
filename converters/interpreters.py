"""The one place that opens a TFLite interpreter for a float (builtin-ops-only) flatbuffer.

Float flatbuffers (float twins, `TFLiteConverter` output) run on LiteRT,
`ai_edge_litert.interpreter.Interpreter`: the successor of `tf.lite.Interpreter`, which TF
deprecates with a warning on every use and has scheduled for deletion. `tf.lite.Interpreter`
is only the fallback where `ai_edge_litert` is not installed (it has no wheel for some
platforms); both give identical outputs (docs/stack.md).

LCE flatbuffers (custom `Lce*` ops) cannot run here: LiteRT does not know LCE's ops. They stay
on LCE's interpreter, `kbnn.converters.verify.interpreter`.
"""

from __future__ import annotations

import numpy as np

#: Backends tried in order by `float_interpreter`.
BACKENDS = ("ai_edge_litert", "tf.lite")


def _interpreter_class():
    """`(backend name, Interpreter class)`: LiteRT when importable, else TensorFlow's."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        return "tf.lite", tf.lite.Interpreter
    return "ai_edge_litert", Interpreter


def float_backend() -> str:
    """Name of the backend `float_interpreter` uses here: "ai_edge_litert" or "tf.lite"."""
    return _interpreter_class()[0]


def float_interpreter(flatbuffer: bytes, *, num_threads: int = 1):
    """A TFLite `Interpreter` over `flatbuffer` with its tensors allocated.

    # Raises
        ValueError: `flatbuffer` is not bytes, `num_threads` is not a positive integer, or the
            interpreter refuses the model (for example an LCE flatbuffer: custom ops).
    """
    if not isinstance(flatbuffer, bytes | bytearray):
        raise ValueError(f"`flatbuffer` must be bytes, got {type(flatbuffer).__name__}.")
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"`num_threads` must be an integer >= 1, got {num_threads!r}.")
    _, interpreter_class = _interpreter_class()
    try:
        engine = interpreter_class(model_content=bytes(flatbuffer), num_threads=num_threads)
        engine.allocate_tensors()
    except (RuntimeError, ValueError) as err:
        raise ValueError(
            f"the TFLite interpreter cannot open this flatbuffer (LCE flatbuffers need LCE's "
            f"interpreter, kbnn.converters.verify.interpreter): {err}"
        ) from err
    return engine


def run_float(flatbuffer: bytes, x, *, num_threads: int = 1) -> list[np.ndarray]:
    """Outputs of a float flatbuffer on a batch `x` (array, or list for several inputs).

    Samples are run one at a time (TFLite's input shapes have batch 1), so any batch size
    works; returns one array per model output, stacked over the batch.
    """
    engine = float_interpreter(flatbuffer, num_threads=num_threads)
    inputs, outputs = engine.get_input_details(), engine.get_output_details()
    arrays = [np.asarray(a) for a in (x if isinstance(x, list | tuple) else [x])]
    if len(arrays) != len(inputs):
        raise ValueError(f"`x` has {len(arrays)} arrays, the model has {len(inputs)} inputs.")
    results = [[] for _ in outputs]
    for i in range(len(arrays[0])):
        for detail, array in zip(inputs, arrays, strict=True):
            engine.set_tensor(detail["index"], array[i : i + 1].astype(detail["dtype"]))
        engine.invoke()
        for result, detail in zip(results, outputs, strict=True):
            result.append(engine.get_tensor(detail["index"])[0])
    return [np.stack(result) for result in results]
