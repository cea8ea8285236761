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

#: A disagreeing sample is a sign tie, not a conversion error, when some value a sign quantizer
#: reads lies within TIE_MARGIN · max(1, max |tensor|) of 0 (`sign_margins`), where Keras' and
#: LCE's float32 rounding can pick different signs (birealnet18's flipped value: 7e-7 from 0;
#: docs/converters.md, "Verification"). Kept small on purpose: in a large model almost every
#: sample has some value within 1e-5 of 0, and excusing those hid a real LCE error (larq-zoo
#: BiRealNet at 32×32, zero-padded binary convs on 1×1 maps: 6 of 8 samples "ties" at 1e-5).
TIE_MARGIN = 1e-6

#: Batch size of the Keras reference: `Model.predict`'s default.
PREDICT_BATCH_SIZE = 32


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
    judged_max_abs_diff: float = 0.0  # over the samples not excused as sign ties
    judged_argmax_agreement: float | None = None  # likewise

    @property
    def tolerance(self) -> float:
        """Float tolerance: RELATIVE_TOLERANCE · max(1, max |reference|) (see `tolerance`)."""
        return RELATIVE_TOLERANCE * max(1.0, self.max_abs_reference)


@dataclass
class VerifyReport:
    """Agreement between Keras `predict` and LCE's interpreter on the same inputs.

    A sample *disagrees* when some output value differs by more than the output's float
    tolerance. A disagreeing sample is a *tie* (`ties`, excused) when some value a sign
    quantizer reads in Keras lies within `tie_margin` (relative) of 0, where Keras' and LCE's
    float rounding may pick different signs; any other disagreeing sample is a real
    disagreement (`disagreements`) and fails verification. `outputs` hold statistics over all
    samples and (`judged_*`) over the samples that are not ties."""

    samples: int
    outputs: list[OutputAgreement]
    kernel_options: dict = field(default_factory=dict)
    ties: list[int] = field(default_factory=list)
    disagreements: list[int] = field(default_factory=list)
    tie_margin: float = TIE_MARGIN
    reference: str = "Keras predict"

    @property
    def max_abs_diff(self) -> float:
        return max(output.max_abs_diff for output in self.outputs)

    @property
    def argmax_agreement(self) -> float | None:
        values = [o.argmax_agreement for o in self.outputs if o.argmax_agreement is not None]
        return min(values) if values else None

    @property
    def judged_argmax_agreement(self) -> float | None:
        """Argmax agreement over the samples that are not excused as sign ties."""
        values = [
            o.judged_argmax_agreement for o in self.outputs if o.judged_argmax_agreement is not None
        ]
        return min(values) if values else None

    def passed(self, *, min_argmax_agreement: float = MIN_ARGMAX_AGREEMENT) -> bool:
        """No real disagreement, argmax agreement away from ties ≥ the minimum, and at least
        one sample that is not a tie (a report made only of excused ties verified nothing)."""
        if self.disagreements or len(self.ties) >= self.samples:
            return False
        agreement = self.judged_argmax_agreement
        return agreement is None or agreement >= min_argmax_agreement

    def check(self, *, min_argmax_agreement: float = MIN_ARGMAX_AGREEMENT) -> VerifyReport:
        """Raise VerificationError unless `passed`; returns self for chaining."""
        if not self.passed(min_argmax_agreement=min_argmax_agreement):
            raise VerificationError(f"flatbuffer disagrees with the Keras model: {self.summary()}")
        return self

    def summary(self) -> str:
        agreement = self.argmax_agreement
        text = f"{self.samples} samples vs {self.reference}, max |diff| {self.max_abs_diff:.3g}"
        if agreement is not None:
            text += f", argmax agreement {100 * agreement:.2f}%"
        if self.ties:
            text += (
                f"; {len(self.ties)} disagreeing sample(s) at a sign tie, excused (a binarized "
                f"input within {self.tie_margin:g} of 0): {_indices(self.ties)}"
            )
            if len(self.ties) >= self.samples:
                text += "; no sample away from a tie, nothing verified: use other inputs"
        if self.disagreements:
            judged = max(o.judged_max_abs_diff for o in self.outputs)
            text += (
                f"; {len(self.disagreements)} real disagreement(s) away from sign ties, max "
                f"|diff| {judged:.3g}: samples {_indices(self.disagreements)}"
            )
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
                "max |diff| w/o ties",
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
                    f"{o.judged_max_abs_diff:.3g}",
                )
            )
        verdict = "PASS" if self.passed() else "FAIL"
        return f"{format_table(rows)}\n{verdict}: {self.summary()}"


def _indices(samples: list[int], shown: int = 10) -> str:
    text = ", ".join(map(str, samples[:shown]))
    return f"[{text}, … {len(samples) - shown} more]" if len(samples) > shown else f"[{text}]"


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


def keras_outputs(
    model, inputs: list[np.ndarray], batch_size: int = PREDICT_BATCH_SIZE
) -> list[np.ndarray]:
    """Outputs of `model.predict` (inference, as a compiled tf.function): what users get.

    Eager `model(x)` can differ from it by float rounding (other kernels, other fusions), which
    at a sign tie flips a sign (BinaryDenseNet28: 0.11 in the outputs), so the reference is
    `predict`."""
    outputs = model.predict(
        inputs if len(inputs) > 1 else inputs[0], batch_size=batch_size, verbose=0
    )
    return [np.asarray(o) for o in tf.nest.flatten(outputs)]


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
    """Run `x` through `model` (Keras `predict`) and `flatbuffer` (LCE's interpreter).

    Reports per output the max and mean |diff|, the largest |Keras output| (the float
    tolerance scales with it) and, for outputs with more than one value per sample, the
    fraction of samples whose argmax agrees. Samples that disagree beyond tolerance are split
    into sign ties (excused, `VerifyReport.ties`) and real disagreements. `kernel_options`
    override `KERNEL_OPTIONS`.
    """
    if not isinstance(flatbuffer, bytes | bytearray):
        raise ValueError(f"`flatbuffer` must be bytes, got {type(flatbuffer).__name__}.")
    inputs = _as_inputs(model, x)
    reference = keras_outputs(model, inputs)
    actual = _flatbuffer_outputs(model, bytes(flatbuffer), inputs, reference, kernel_options)
    pairs = [
        (want.astype(np.float64), got.reshape(want.shape).astype(np.float64))
        for want, got in zip(reference, actual, strict=True)
    ]
    disagreeing = np.zeros(len(inputs[0]), bool)
    for want, got in pairs:
        per_sample = np.abs(got - want).reshape(len(want), -1).max(axis=1, initial=0.0)
        disagreeing |= ~(per_sample <= tolerance(want))  # NaN counts as disagreeing
    ties, real = classify_disagreements(model, inputs, np.flatnonzero(disagreeing))
    judged = np.ones(len(inputs[0]), bool)
    judged[ties] = False
    return VerifyReport(
        samples=inputs[0].shape[0],
        outputs=[_agreement(i, want, got, judged) for i, (want, got) in enumerate(pairs)],
        kernel_options={**KERNEL_OPTIONS, **kernel_options},
        ties=ties,
        disagreements=real,
    )


def classify_disagreements(
    model, inputs: list[np.ndarray], samples, margin: float = TIE_MARGIN
) -> tuple[list[int], list[int]]:
    """Split disagreeing `samples` (indices) into (sign ties, real disagreements).

    A tie has a value that a sign quantizer reads within `margin` (relative, `sign_margins`)
    of 0, computed in `predict`'s mode. Raw model inputs are excluded: Keras and LCE read
    those exact same floats, so a sign of a model input cannot flip."""
    samples = [int(i) for i in samples]
    if not samples:
        return [], []
    subset = [array[samples] for array in inputs]
    margins = sign_margins(model, subset, include_model_inputs=False)
    at_tie = [bool(m < margin) for m in margins]
    ties = [i for i, tie in zip(samples, at_tie, strict=True) if tie]
    return ties, [i for i, tie in zip(samples, at_tie, strict=True) if not tie]


def _flatbuffer_outputs(model, flatbuffer: bytes, inputs, reference, kernel_options):
    """The flatbuffer's outputs on `inputs`, in the Keras model's output order."""
    parsed = read_flatbuffer(flatbuffer)
    if len(parsed.main.inputs) != len(inputs):
        raise VerificationError(
            f"the flatbuffer has {len(parsed.main.inputs)} inputs, the model {len(inputs)}."
        )
    # The flatbuffer orders inputs and outputs by its signature; match them by Keras name.
    input_order = parsed.io_positions(list(model.input_names), "inputs")
    ordered_inputs = [inputs[i] for i in input_order] if input_order else inputs
    _check_input_shapes(parsed.main, ordered_inputs)
    actual = lce_outputs(flatbuffer, ordered_inputs, **kernel_options)
    if len(actual) != len(reference):
        raise VerificationError(
            f"the flatbuffer has {len(actual)} outputs, the model {len(reference)}."
        )
    output_order = parsed.io_positions(list(model.output_names), "outputs")
    if not output_order:
        return _align_outputs(reference, actual)
    by_keras = [None] * len(actual)
    for flat_position, keras_position in enumerate(output_order):
        by_keras[keras_position] = actual[flat_position]
    return by_keras


def _agreement(index: int, want: np.ndarray, got: np.ndarray, judged: np.ndarray):
    """`OutputAgreement` of one output; `judged` marks the samples that are not ties."""
    diff = np.abs(got - want)
    atol = tolerance(want)
    per_sample = diff.reshape(len(diff), -1).max(axis=1, initial=0.0)
    rows, got_rows = want.reshape(len(want), -1), got.reshape(len(got), -1)
    argmax = exact = judged_argmax = None
    if rows.shape[1] > 1:
        argmax = argmax_agreement(rows, got_rows, atol)
        exact = float(np.mean(rows.argmax(axis=1) == got_rows.argmax(axis=1)))
        if judged.any():
            judged_argmax = argmax_agreement(rows[judged], got_rows[judged], atol)
    return OutputAgreement(
        index=index,
        shape=tuple(want.shape[1:]),
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        max_abs_reference=float(np.abs(want).max()),
        argmax_agreement=argmax,
        argmax_exact=exact,
        within_tolerance=float(np.mean(per_sample <= atol)),
        judged_max_abs_diff=float(per_sample[judged].max(initial=0.0)),
        judged_argmax_agreement=judged_argmax,
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


def sign_margins(
    model, x, batch_size: int = PREDICT_BATCH_SIZE, *, include_model_inputs: bool = True
) -> np.ndarray:
    """Per sample, how far every value a sign quantizer reads is from the tie at 0.

    For each tensor t that a ±1 input quantizer (`ste_sign`, `approx_sign`, …) or a sign layer
    (`kbnn.layers.Sign`) reads, and each sample, the relative margin is min |t| / max(1, max |t|)
    over that sample's values; the result is the smallest over all such tensors, shape
    (samples,), computed with `predict` (the mode `verify` compares in). Keras and LCE compute
    the values before a sign in float32 in different orders (LCE's binary convolutions fold
    K − 2·popcount into their float bias, an absolute rounding error of a few 1e-6 · K·|m|),
    so a sample whose margin is below ~1e-6 (`TIE_MARGIN`) can take another sign in LCE than
    in Keras and legitimately disagree downstream; see docs/converters.md, "Verification".
    Samples with larger margins must agree to float tolerance. `include_model_inputs=False`
    skips quantizers that read a model input directly (both read the same floats). Models
    without such sign inputs give +inf."""
    inputs = _as_inputs(model, x)
    if not is_flat(model) or any(len(layer._inbound_nodes) > 1 for layer in model.layers):
        model = rebuild(model)
    tensors = _sign_inputs(model, include_model_inputs)
    samples = inputs[0].shape[0]
    if not tensors:
        return np.full(samples, np.inf)
    probe = tf.keras.Model(model.inputs, tensors)
    margins = np.full(samples, np.inf)
    for start in range(0, samples, batch_size):  # predict's mode, one batch at a time
        chunk = [array[start : start + batch_size] for array in inputs]
        values = probe.predict_on_batch(chunk if len(chunk) > 1 else chunk[0])
        for value in tf.nest.flatten(values):
            flat = np.abs(np.asarray(value, np.float64)).reshape(len(chunk[0]), -1)
            scale = np.maximum(1.0, flat.max(axis=1))
            part = margins[start : start + len(flat)]
            np.minimum(part, flat.min(axis=1) / scale, out=part)
    return margins


def _sign_inputs(model, include_model_inputs: bool) -> list:
    """The distinct tensors that sign quantizers and sign layers of the flat `model` read."""
    skipped = set() if include_model_inputs else {id(t) for t in model.inputs}
    tensors, seen = [], set(skipped)
    for layer in model.layers:
        if input_encoding(layer).kind != "sign" and not is_sign_quantizer(layer):
            continue
        tensor = layer.input
        if isinstance(tensor, list | tuple) or id(tensor) in seen:
            continue
        seen.add(id(tensor))
        tensors.append(tensor)
    return tensors


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
