"""Latency of a flatbuffer in LCE's interpreter (or TensorFlow Lite's), median and p90.

On x86, LCE's binary kernels are reference implementations, so these numbers say little about
ARM phones, LCE's target; see docs/converters.md.
"""

from __future__ import annotations

import time

from kbnn.converters.flatbuffer import read_flatbuffer
from kbnn.converters.interpreters import float_interpreter
from kbnn.converters.verify import KERNEL_OPTIONS, interpreter

import numpy as np

RUNTIMES = ("auto", "lce", "tflite")


def _check_int(value, name, low):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}, got {value!r}.")


def benchmark(
    flatbuffer: bytes,
    x=None,
    *,
    num_threads: int = 1,
    runs: int = 50,
    warmup: int = 5,
    runtime: str = "auto",
    **options,
) -> dict:
    """Time single-sample inference of `flatbuffer`.

    # Arguments
        x: one input sample with batch axis 1 (array, or list for several inputs); None uses
            standard-normal inputs of the model's input shapes. Larger batches use sample 0.
        num_threads: interpreter threads.
        runs, warmup: timed and untimed invocations.
        runtime: "lce" (LCE's interpreter, LCE ops and builtins), "tflite" (LiteRT through
            `kbnn.converters.interpreters`, default delegates) or "auto" (LCE when the
            flatbuffer has LCE ops, else TFLite).
        options: LCE interpreter options overriding `KERNEL_OPTIONS`
            (use_indirect_bgemm, use_reference_bconv, use_xnnpack).

    # Returns
        dict with median_ms, p90_ms, mean_ms, min_ms, runs, num_threads, runtime, options.
    """
    if not isinstance(flatbuffer, bytes | bytearray):
        raise ValueError(f"`flatbuffer` must be bytes, got {type(flatbuffer).__name__}.")
    _check_int(num_threads, "num_threads", 1)
    _check_int(runs, "runs", 1)
    _check_int(warmup, "warmup", 0)
    if runtime not in RUNTIMES:
        raise ValueError(f"`runtime` must be one of {RUNTIMES}, got {runtime!r}.")
    flatbuffer = bytes(flatbuffer)
    if runtime == "auto":
        custom = read_flatbuffer(flatbuffer).custom_ops()
        runtime = "lce" if any(op.startswith("Lce") for op in custom) else "tflite"
    if runtime == "tflite" and options:
        raise ValueError(f"LCE kernel options {sorted(options)} do not apply to runtime='tflite'.")
    invoke, shapes, dtypes = (_lce if runtime == "lce" else _tflite)(
        flatbuffer, num_threads, options
    )
    samples = _samples(x, shapes, dtypes)
    for _ in range(warmup):
        invoke(samples)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        invoke(samples)
        times.append((time.perf_counter() - start) * 1e3)
    times = np.asarray(times)
    return {
        "median_ms": float(np.median(times)),
        "p90_ms": float(np.percentile(times, 90)),
        "mean_ms": float(times.mean()),
        "min_ms": float(times.min()),
        "runs": runs,
        "num_threads": num_threads,
        "runtime": runtime,
        "options": {**KERNEL_OPTIONS, **options} if runtime == "lce" else {},
    }


def _lce(flatbuffer, num_threads, options):
    engine = interpreter(flatbuffer, num_threads=num_threads, **options)
    wrapper = engine.interpreter
    return wrapper.predict, engine.input_shapes, engine.input_types


def _tflite(flatbuffer, num_threads, options):
    engine = float_interpreter(flatbuffer, num_threads=num_threads)
    inputs = engine.get_input_details()
    outputs = engine.get_output_details()

    def invoke(samples):
        for detail, sample in zip(inputs, samples, strict=True):
            engine.set_tensor(detail["index"], sample)
        engine.invoke()
        return [engine.get_tensor(detail["index"]) for detail in outputs]

    return invoke, [tuple(d["shape"]) for d in inputs], [d["dtype"] for d in inputs]


def _samples(x, shapes, dtypes):
    if x is None:
        rng = np.random.default_rng(0)
        return [
            rng.standard_normal(shape).astype(dtype)
            for shape, dtype in zip(shapes, dtypes, strict=True)
        ]
    arrays = list(x) if isinstance(x, list | tuple) else [x]
    if len(arrays) != len(shapes):
        raise ValueError(f"`x` has {len(arrays)} arrays, the model has {len(shapes)} inputs.")
    samples = []
    for array, shape, dtype in zip(arrays, shapes, dtypes, strict=True):
        array = np.asarray(array)
        if array.ndim == len(shape) - 1:
            array = array[None]
        if tuple(array.shape[1:]) != tuple(shape[1:]):
            raise ValueError(f"`x` has shape {array.shape}, the flatbuffer expects {tuple(shape)}.")
        samples.append(np.ascontiguousarray(array[:1]).astype(dtype))
    return samples
