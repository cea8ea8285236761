"""Check a converted flatbuffer against its Keras model in LCE's interpreter.

LCE's `Interpreter` runs LCE's custom ops (and TFLite builtins) on this CPU. On x86 the
binary kernels are reference implementations. `KERNEL_OPTIONS` follow what is cheapest on ARM,
LCE's target (docs/arm64.md): LCE's default optimized BGEMM, not the indirect BGEMM that is
faster on x86 only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kbnn.converters.errors import VerificationError
from kbnn.converters.flatbuffer import format_table, read_flatbuffer
from kbnn.converters.graph import is_flat, rebuild
from kbnn.converters.levels import input_encoding, is_sign_quantizer

import numpy as np
import tensorflow as tf

#: Interpreter options used by `verify` and `benchmark` unless told otherwise: LCE's defaults
#: (optimized BGEMM), the cheapest on aarch64 (binarynet_mnist: 1.03 M instructions per
#: inference against 1.31 M with the indirect BGEMM; docs/arm64.md, `kbnn bench --target arm64`).
KERNEL_OPTIONS: dict[str, bool] = {"use_indirect_bgemm": False}

#: Default agreement thresholds of `VerifyReport.check`.
MIN_ARGMAX_AGREEMENT = 0.999
RELATIVE_TOLERANCE = 1e-4


def interpreter(flatbuffer: bytes, *, num_threads: int = 1, **options):
    """LCE's interpreter for `flatbuffer` with `KERNEL_OPTIONS` unless `options` override them."""
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    return Interpreter(flatbuffer, num_threads=num_threads, **{**KERNEL_OPTIONS, **options})


@dataclass
class OutputAgreement:
    """Agreement of one model output over all samples."""

    index: int
    shape: tuple[int, ...]
    max_abs_diff: float
    mean_abs_diff: float
    max_abs_reference: float
    argmax_agreement: float | None
    argmax_exact: float | None = None  # without counting float-tolerance ties as agreement
    within_tolerance: float = 1.0  # fraction of samples whose every value is within tolerance

    @property
    def tolerance(self) -> float:
        """Float tolerance: RELATIVE_TOLERANCE · max(1, max |reference|) (see `tolerance`)."""
        return RELATIVE_TOLERANCE * max(1.0, self.max_abs_reference)


@dataclass
class VerifyReport:
    """Agreement between Keras and LCE's interpreter on the same inputs."""

    samples: int
    outputs: list[OutputAgreement]
    kernel_options: dict = field(default_factory=dict)

    @property
    def max_abs_diff(self) -> float:
        return max(output.max_abs_diff for output in self.outputs)

    @property
    def argmax_agreement(self) -> float | None:
        values = [o.argmax_agreement for o in self.outputs if o.argmax_agreement is not None]
        return min(values) if values else None

    def passed(self, *, min_argmax_agreement: float = MIN_ARGMAX_AGREEMENT) -> bool:
        """Every output within its float tolerance and argmax agreement ≥ the minimum."""
        close = all(o.max_abs_diff <= o.tolerance for o in self.outputs)
        agreement = self.argmax_agreement
        return close and (agreement is None or agreement >= min_argmax_agreement)

    def check(self, *, min_argmax_agreement: float = MIN_ARGMAX_AGREEMENT) -> VerifyReport:
        """Raise VerificationError unless `passed`; returns self for chaining."""
        if not self.passed(min_argmax_agreement=min_argmax_agreement):
            raise VerificationError(f"flatbuffer disagrees with the Keras model: {self.summary()}")
        return self

    def summary(self) -> str:
        agreement = self.argmax_agreement
        text = f"{self.samples} samples, max |diff| {self.max_abs_diff:.3g}"
        if agreement is not None:
            text += f", argmax agreement {100 * agreement:.2f}%"
        return text

    def __str__(self) -> str:
        rows = [
            (
                "output",
                "shape",
                "max |diff|",
                "mean |diff|",
                "max |keras|",
                "tolerance",
                "samples within",
                "argmax agree",
            )
        ]
        for o in self.outputs:
            rows.append(
                (
                    str(o.index),
                    "x".join(map(str, o.shape)),
                    f"{o.max_abs_diff:.3g}",
                    f"{o.mean_abs_diff:.3g}",
                    f"{o.max_abs_reference:.3g}",
                    f"{o.tolerance:.3g}",
                    f"{100 * o.within_tolerance:.2f}%",
                    "" if o.argmax_agreement is None else f"{100 * o.argmax_agreement:.2f}%",
                )
            )
        verdict = "PASS" if self.passed() else "FAIL"
        return f"{format_table(rows)}\n{verdict}: {self.summary()}"


def _as_inputs(model, x) -> list[np.ndarray]:
    arrays = list(x) if isinstance(x, list | tuple) else [x]
    if len(arrays) != len(model.inputs):
        raise ValueError(
            f"`x` has {len(arrays)} input array(s), the model has {len(model.inputs)} input(s)."
        )
    result = []
    for array, spec in zip(arrays, model.inputs, strict=True):
        array = np.asarray(array)
        if not np.issubdtype(array.dtype, np.number):
            raise ValueError(f"`x` must be numeric, got dtype {array.dtype}.")
        expected = tuple(spec.shape[1:])
        if array.ndim != len(expected) + 1 or any(
            want is not None and got != want
            for got, want in zip(array.shape[1:], expected, strict=True)
        ):
            raise ValueError(
                f"`x` has shape {array.shape}, the model expects (batch,) + {expected}."
            )
        if array.shape[0] == 0:
            raise ValueError("`x` holds no samples.")
        result.append(array.astype(spec.dtype.as_numpy_dtype))
    if len({a.shape[0] for a in result}) != 1:
        raise ValueError("every array in `x` must hold the same number of samples.")
    return result


def keras_outputs(model, inputs: list[np.ndarray], batch_size: int = 256) -> list[np.ndarray]:
    """Outputs of `model` at inference (training=False), as a list of arrays."""
    batches = []
    for start in range(0, inputs[0].shape[0], batch_size):
        chunk = [array[start : start + batch_size] for array in inputs]
        outputs = model(chunk if len(chunk) > 1 else chunk[0], training=False)
        batches.append([np.asarray(o) for o in tf.nest.flatten(outputs)])
    return [np.concatenate(parts) for parts in zip(*batches, strict=True)]


def lce_outputs(flatbuffer: bytes, inputs: list[np.ndarray], **options) -> list[np.ndarray]:
    """Outputs of `flatbuffer` in LCE's interpreter, one sample at a time (batch 1), in the
    flatbuffer's own input and output order."""
    engine = interpreter(flatbuffer, **options)
    wrapper = engine.interpreter
    scales, zero_points = engine.input_scales, engine.input_zero_points
    types = engine.input_types
    out_scales, out_zero_points = engine.output_scales, engine.output_zero_points
    collected = []
    for i in range(inputs[0].shape[0]):
        sample = []
        for j, array in enumerate(inputs):
            value = array[i : i + 1]
            if np.dtype(types[j]) == np.int8 and scales[j]:
                value = np.clip(np.round(value / scales[j] + zero_points[j]), -128, 127)
            sample.append(value.astype(types[j]))
        collected.append(wrapper.predict(sample))
    outputs = [np.concatenate(parts) for parts in zip(*collected, strict=True)]
    for j, output in enumerate(outputs):
        if output.dtype == np.int8 and out_scales[j]:
            outputs[j] = (output.astype(np.float32) - out_zero_points[j]) * out_scales[j]
    return outputs


def _check_input_shapes(graph, inputs) -> None:
    """A model that is not the flatbuffer's would make LCE's interpreter raise a raw
    RuntimeError: name the mismatch instead."""
    for position, (index, array) in enumerate(zip(graph.inputs, inputs, strict=True)):
        expected = tuple(graph.tensors[index].shape[1:])
        if tuple(array.shape[1:]) != expected:
            raise VerificationError(
                f"the flatbuffer's input {position} takes samples of shape {expected}, the "
                f"model's {tuple(array.shape[1:])}: they are not the same model"
            )


def check_matches(model, flatbuffer: bytes) -> None:
    """Raise VerificationError unless `model` has the flatbuffer's per-sample input and
    output shapes (e.g. `kbnn bench FLATBUFFER --model M` given an unrelated model)."""
    graph = read_flatbuffer(bytes(flatbuffer)).main
    for kind, indices, tensors in (
        ("input", graph.inputs, model.inputs),
        ("output", graph.outputs, model.outputs),
    ):
        theirs = sorted(tuple(graph.tensors[i].shape[1:]) for i in indices if i >= 0)
        ours = sorted(tuple(int(d) for d in t.shape[1:]) for t in tensors)
        if theirs != ours:
            raise VerificationError(
                f"the model's {kind} shapes {ours} are not the flatbuffer's {theirs}: "
                f"model {model.name!r} is not the one this flatbuffer was converted from"
            )


def verify(model, flatbuffer: bytes, x, **kernel_options) -> VerifyReport:
    """Run `x` through `model` (Keras, training=False) and `flatbuffer` (LCE's interpreter).

    Reports per output the max and mean |diff|, the largest |Keras output| (the float
    tolerance scales with it) and, for outputs with more than one value per sample, the
    fraction of samples whose argmax agrees. `kernel_options` override `KERNEL_OPTIONS`.
    """
    if not isinstance(flatbuffer, bytes | bytearray):
        raise ValueError(f"`flatbuffer` must be bytes, got {type(flatbuffer).__name__}.")
    inputs = _as_inputs(model, x)
    reference = keras_outputs(model, inputs)
    parsed = read_flatbuffer(bytes(flatbuffer))
    if len(parsed.main.inputs) != len(inputs):
        raise VerificationError(
            f"the flatbuffer has {len(parsed.main.inputs)} inputs, the model {len(inputs)}."
        )
    # The flatbuffer orders inputs and outputs by its signature; match them by Keras name.
    input_order = parsed.io_positions(list(model.input_names), "inputs")
    ordered_inputs = [inputs[i] for i in input_order] if input_order else inputs
    _check_input_shapes(parsed.main, ordered_inputs)
    actual = lce_outputs(bytes(flatbuffer), ordered_inputs, **kernel_options)
    if len(actual) != len(reference):
        raise VerificationError(
            f"the flatbuffer has {len(actual)} outputs, the model {len(reference)}."
        )
    output_order = parsed.io_positions(list(model.output_names), "outputs")
    if output_order:
        by_keras = [None] * len(actual)
        for flat_position, keras_position in enumerate(output_order):
            by_keras[keras_position] = actual[flat_position]
        actual = by_keras
    else:
        actual = _align_outputs(reference, actual)
    outputs = []
    for index, (want, got) in enumerate(zip(reference, actual, strict=True)):
        got = got.reshape(want.shape).astype(np.float64)
        want = want.astype(np.float64)
        diff = np.abs(got - want)
        per_sample = want.reshape(want.shape[0], -1)
        per_sample_diff = diff.reshape(diff.shape[0], -1).max(axis=1)
        within = float(np.mean(per_sample_diff <= tolerance(want)))
        argmax = exact = None
        if per_sample.shape[1] > 1:
            rows = got.reshape(per_sample.shape)
            argmax = argmax_agreement(per_sample, rows, tolerance(want))
            exact = float(np.mean(per_sample.argmax(axis=1) == rows.argmax(axis=1)))
        outputs.append(
            OutputAgreement(
                index=index,
                shape=tuple(want.shape[1:]),
                max_abs_diff=float(diff.max()),
                mean_abs_diff=float(diff.mean()),
                max_abs_reference=float(np.abs(want).max()),
                argmax_agreement=argmax,
                argmax_exact=exact,
                within_tolerance=within,
            )
        )
    return VerifyReport(
        samples=inputs[0].shape[0],
        outputs=outputs,
        kernel_options={**KERNEL_OPTIONS, **kernel_options},
    )


def tolerance(reference: np.ndarray) -> float:
    """Float tolerance of an output: RELATIVE_TOLERANCE · max(1, max |reference|)."""
    return RELATIVE_TOLERANCE * max(1.0, float(np.abs(reference).max()))


def argmax_agreement(reference: np.ndarray, actual: np.ndarray, atol: float) -> float:
    """Fraction of rows whose argmax agrees, counting a tie as agreement: the interpreter's
    argmax must be a maximum of the Keras row up to `atol` (untrained binary networks produce
    exactly tied integer logits, which float rounding then orders arbitrarily)."""
    picked = actual.argmax(axis=1)
    best = reference.max(axis=1)
    chosen = reference[np.arange(len(reference)), picked]
    return float(np.mean(chosen >= best - atol))


def sign_margins(model, x, batch_size: int = 256) -> np.ndarray:
    """Per sample, how far every value a sign quantizer reads is from the tie at 0.

    For each tensor t that a ±1 input quantizer (`ste_sign`, `approx_sign`, …) or a sign layer
    (`kbnn.layers.Sign`) reads, and each sample, the relative margin is min |t| / max(1, max |t|)
    over that sample's values; the result is the smallest over all such tensors, shape
    (samples,). Keras and LCE compute the values before a sign in float32 in different orders
    (LCE's binary convolutions fold K − 2·popcount into their float bias, an absolute rounding
    error of a few 1e-6 · K·|multiplier|), so a sample whose margin is below ~1e-5 can take
    another sign in LCE than in Keras and legitimately disagree downstream; see
    docs/converters.md, "Verification". Samples with larger margins must agree to float
    tolerance. Models without sign inputs give +inf."""
    inputs = _as_inputs(model, x)
    if not is_flat(model) or any(len(layer._inbound_nodes) > 1 for layer in model.layers):
        model = rebuild(model)
    tensors, seen = [], set()
    for layer in model.layers:
        if input_encoding(layer).kind != "sign" and not is_sign_quantizer(layer):
            continue
        tensor = layer.input
        if isinstance(tensor, list | tuple) or id(tensor) in seen:
            continue
        seen.add(id(tensor))
        tensors.append(tensor)
    samples = inputs[0].shape[0]
    if not tensors:
        return np.full(samples, np.inf)
    probe = tf.keras.Model(model.inputs, tensors)
    margins = np.full(samples, np.inf)
    for start in range(0, samples, batch_size):
        chunk = [array[start : start + batch_size] for array in inputs]
        values = probe(chunk if len(chunk) > 1 else chunk[0], training=False)
        for value in tf.nest.flatten(values):
            flat = np.abs(np.asarray(value, np.float64)).reshape(len(chunk[0]), -1)
            scale = np.maximum(1.0, flat.max(axis=1))
            part = margins[start : start + len(flat)]
            np.minimum(part, flat.min(axis=1) / scale, out=part)
    return margins


def _align_outputs(reference, actual):
    """Flatbuffer outputs in the Keras order (matched by size, then by closeness)."""
    if len(actual) == 1:
        return actual
    remaining = list(actual)
    ordered = []
    for want in reference:
        fitting = [a for a in remaining if a.size == want.size]
        if not fitting:
            raise VerificationError(
                f"no flatbuffer output matches a Keras output of shape {want.shape}."
            )
        best = min(fitting, key=lambda a: float(np.abs(a.reshape(want.shape) - want).max()))
        remaining = [a for a in remaining if a is not best]
        ordered.append(best)
    return ordered
