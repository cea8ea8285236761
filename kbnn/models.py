"""Bit-aware model summary: parameters by bit width, deployment memory, ops and a 45 nm energy estimate.

Builds on `larq.models` (its `LayerProfile` finds each layer's input precision, weight bit widths
and MAC counts); kbnn adds what a deployment question needs on top:

* **Deployment memory in bytes.** A weight of precision p ≤ 8 is stored as p packed bits (binary:
  1 sign bit; ternary: 2 bit planes, t = (b₁ + b₂)/2 with bᵢ ∈ {±1}; five-level: 3 planes;
  DoReFa k-bit: k planes); float weights as float32; each tensor rounded up to whole bytes.
  Quantizers with per-channel scales (`integer_levels(w) -> (levels, scale)` with scale ≠ 1,
  e.g. TWN's α) add one float32 per scale entry.
* **Ops by execution kind.** Each MAC larq counts is assigned the cheapest of:
  bit-serial XNOR-popcount (a MAC of an a-bit input and a w-bit weight, both ≤ 8 bits, is a·w
  binary ops over ±1 bit planes), an int8 MAC (int8 multiply + int32 accumulate), or a float32
  MAC. A layer is "int8" when its input and kernel quantizers both have precision 8 (e.g.
  `larq.quantizers.NoOp(precision=8)` or DoReFa 8-bit): 64 bit-plane ops cost more than one
  int8 MAC.
* **Energy** from Horowitz (ISSCC 2014, 45 nm) — see `EnergyModel` — and the same figures for
  the model's float32 twin (same layers, every weight float32, every MAC a float32 MAC).

Ops of layers without MACs (batch norm, pooling, activations) are not counted, as in larq.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from kbnn._validation import check_choice, check_positive_number, check_type, fail
from kbnn.errors import UsageError

import numpy as np
import tensorflow as tf
from larq import models as lq_models
from larq.utils import memory_as_readable_str

__all__ = ["EnergyModel", "HOROWITZ_45NM", "LayerSummary", "ModelSummary", "mac_cost", "summary"]

FLOAT_BITS = 32
INT8_BITS = 8


@dataclasses.dataclass(frozen=True)
class EnergyModel:
    """Energy per operation in picojoules, defaults from Horowitz, ISSCC 2014 (45 nm, 0.9 V).

    Figures (pJ): 32-bit float add 0.9, mult 3.7; 32-bit int add 0.1, mult 3.1; 8-bit int add
    0.03, mult 0.2; 32-bit read from an 8 KB SRAM 5; from DRAM 640.

    Derived costs and the assumptions behind them:

    * `binary_op` (one 1-bit MAC, XNOR + popcount) = 2 · int8_add / 8 = 0.0075 pJ: an 8-bit
      ripple-carry add is 8 one-bit full adders, so one full adder ≈ int8_add / 8; a binary MAC is
      one XNOR gate plus one full adder of the popcount tree (summing N bits takes ≈ N full
      adders), and the XNOR is charged as much as a full adder (an upper bound).
    * `int8_mac` = int8_mult + int32_add: products are accumulated in int32 (as TFLite does).
    * `float_mac` = float32_mult + float32_add; `float_accumulate` = float32_add for a MAC whose
      operand is in {−1, 0, +1} (precision ≤ 2): a sign flip and an add, no multiply
      (BinaryConnect, TWN). Per-channel scales, applied once per output, are not counted.
    * Weights are read once per inference, one `word_read` per 32-bit word (packed weights
      share words), from `weight_memory` = "dram" (640 pJ) or "sram" (5 pJ). Activations are
      assumed to stay on chip and are not charged.
    """

    float32_add: float = 0.9
    float32_mult: float = 3.7
    int32_add: float = 0.1
    int32_mult: float = 3.1
    int8_add: float = 0.03
    int8_mult: float = 0.2
    sram_read_32bit: float = 5.0
    dram_read_32bit: float = 640.0
    weight_memory: str = "dram"

    def __post_init__(self):
        check_choice(self.weight_memory, "weight_memory", ("dram", "sram"))
        for field in dataclasses.fields(self):
            if field.name != "weight_memory":
                check_positive_number(getattr(self, field.name), f"EnergyModel.{field.name} (pJ)")

    @property
    def binary_op(self) -> float:
        return 2.0 * self.int8_add / 8.0

    @property
    def int8_mac(self) -> float:
        return self.int8_mult + self.int32_add

    @property
    def float_mac(self) -> float:
        return self.float32_mult + self.float32_add

    @property
    def float_accumulate(self) -> float:
        return self.float32_add

    @property
    def word_read(self) -> float:
        return self.dram_read_32bit if self.weight_memory == "dram" else self.sram_read_32bit

    def as_dict(self) -> dict[str, Any]:
        derived = ("binary_op", "int8_mac", "float_mac", "float_accumulate", "word_read")
        return {**dataclasses.asdict(self), **{name: getattr(self, name) for name in derived}}


HOROWITZ_45NM = EnergyModel()


@dataclasses.dataclass(frozen=True)
class MacCost:
    """How one MAC of an a-bit input and a w-bit weight is executed, and what it costs."""

    kind: str  # "binary" | "int8" | "float"
    binary_ops: int  # XNOR-popcounts per MAC (bit-serial kind only)
    energy_pj: float


def mac_cost(input_bits: int | None, weight_bits: int | None, energy: EnergyModel) -> MacCost:
    """Cheapest execution of one MAC; `None` bits mean a float32 operand.

    Both operands ≤ 8 bits: bit-serial with input_bits · weight_bits XNOR-popcounts when that
    costs no more than one int8 MAC, else an int8 MAC. Otherwise a float32 MAC, multiply-free
    when one operand has precision ≤ 2 (values in {−1, 0, +1} times a scale).
    """
    a = input_bits or FLOAT_BITS
    w = weight_bits or FLOAT_BITS
    if a <= INT8_BITS and w <= INT8_BITS:
        planes = a * w
        if planes * energy.binary_op <= energy.int8_mac:
            return MacCost("binary", planes, planes * energy.binary_op)
        return MacCost("int8", 0, energy.int8_mac)
    if min(a, w) <= 2:
        return MacCost("float", 0, energy.float_accumulate)
    return MacCost("float", 0, energy.float_mac)


def _deployment_bytes(bits: int) -> int:
    return math.ceil(bits / 8)


def _words(bits: int) -> int:
    return math.ceil(bits / 32)


def _stored_scale_count(weight) -> int:
    """Float32 scale entries a quantizer with `integer_levels` needs besides the packed levels."""
    quantizer = getattr(weight, "quantizer", None)
    integer_levels = getattr(quantizer, "integer_levels", None)
    if integer_levels is None:
        return 0
    _, scale = integer_levels(weight.latent_variable)
    scale = np.asarray(scale)
    return 0 if np.all(scale == 1) else int(scale.size)


class WeightProfile(lq_models.WeightProfile):
    """larq's profile of one weight tensor plus its deployment size."""

    def __init__(self, weight, trainable: bool = True):
        super().__init__(weight, trainable=trainable)
        self.scale_count = _stored_scale_count(weight)

    @property
    def deployment_bytes(self) -> int:
        """Packed bytes of the weight plus 4 per float32 scale (see module docstring)."""
        return _deployment_bytes(self.memory) + 4 * self.scale_count

    @property
    def words(self) -> int:
        """32-bit words read to fetch the weight (packed levels, then each scale)."""
        return _words(self.memory) + self.scale_count


class LayerProfile(lq_models.LayerProfile):
    """larq's layer profile; `macs` pairs each MAC count with its input and weight bit widths."""

    def __init__(self, layer):
        try:
            super().__init__(layer)
        except TypeError as err:  # larq compares `None` precisions
            raise UsageError(
                f"layer {layer.name!r} ({type(layer).__name__}) has a quantizer without an "
                "integer `precision`; kbnn.models.summary needs one to count its bits"
            ) from err
        self.layer = layer
        self.weight_profiles = [
            WeightProfile(p._weight, trainable=p.trainable) for p in self.weight_profiles
        ]
        # larq gives a MAC layer one op profile per non-bias weight, in order; others none.
        kernels = [p for p in self.weight_profiles if not p.is_bias()] if self.op_profiles else []
        self.macs = [
            (op.n, self.input_precision, k.bitwidth)
            for op, k in zip(self.op_profiles, kernels, strict=True)
        ]
        self.kernel_bits = tuple(sorted({k.bitwidth for k in kernels}))


class ModelProfile(lq_models.ModelProfile):
    """larq's model profile built from kbnn's layer profiles (nested models recurse)."""

    def __init__(self, model):
        self.name = model.name
        self.layer_profiles = [
            ModelProfile(layer) if isinstance(layer, tf.keras.Model) else LayerProfile(layer)
            for layer in model.layers
        ]

    def iter_layers(self, prefix: str = ""):
        for profile in self.layer_profiles:
            if isinstance(profile, ModelProfile):
                yield from profile.iter_layers(f"{prefix}{profile.name}/")
            else:
                yield prefix + profile.name, profile


@dataclasses.dataclass
class LayerSummary:
    """One row of the summary; energies in picojoules, memory in bytes."""

    name: str
    layer_type: str
    input_bits: int | None  # None: float input (no input quantizer)
    kernel_bits: tuple[int, ...]
    output_shape: Any
    params: dict[int, int]  # bit width -> parameter count
    scale_params: int
    memory_bytes: int
    float32_bytes: int
    binary_ops: int
    int8_macs: int
    float_macs: int
    float_macs_multiply_free: int
    compute_energy_pj: float
    memory_energy_pj: float
    float32_compute_energy_pj: float
    float32_memory_energy_pj: float

    @property
    def energy_pj(self) -> float:
        return self.compute_energy_pj + self.memory_energy_pj

    @property
    def float32_energy_pj(self) -> float:
        return self.float32_compute_energy_pj + self.float32_memory_energy_pj

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["kernel_bits"] = list(self.kernel_bits)
        data["params"] = {str(bits): count for bits, count in sorted(self.params.items())}
        data["output_shape"] = _jsonable_shape(self.output_shape)
        data["energy_pj"] = self.energy_pj
        data["float32_energy_pj"] = self.float32_energy_pj
        return data


_TOTALS = (
    "scale_params",
    "memory_bytes",
    "float32_bytes",
    "binary_ops",
    "int8_macs",
    "float_macs",
    "float_macs_multiply_free",
    "compute_energy_pj",
    "memory_energy_pj",
    "float32_compute_energy_pj",
    "float32_memory_energy_pj",
)


@dataclasses.dataclass
class ModelSummary:
    """What `summary` returns: per-layer rows, totals, and ratios against the float32 twin."""

    name: str
    layers: list[LayerSummary]
    energy_model: EnergyModel

    def total(self, field: str):
        if field not in _TOTALS and field not in ("energy_pj", "float32_energy_pj"):
            raise fail("field", f"one of {_TOTALS}", field)
        return sum(getattr(layer, field) for layer in self.layers)

    @property
    def params(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for layer in self.layers:
            for bits, count in layer.params.items():
                counts[bits] = counts.get(bits, 0) + count
        return dict(sorted(counts.items()))

    @property
    def total_params(self) -> int:
        return sum(self.params.values())

    @property
    def memory_bytes(self) -> int:
        return self.total("memory_bytes")

    @property
    def float32_bytes(self) -> int:
        return self.total("float32_bytes")

    @property
    def energy_pj(self) -> float:
        return self.total("energy_pj")

    @property
    def float32_energy_pj(self) -> float:
        return self.total("float32_energy_pj")

    @property
    def compute_ratio(self) -> float:
        """float32 twin compute energy / model compute energy (weight reads left out)."""
        return self.total("float32_compute_energy_pj") / max(self.total("compute_energy_pj"), 1e-12)

    @property
    def memory_ratio(self) -> float:
        """float32 twin bytes / deployment bytes (how many times smaller)."""
        return self.float32_bytes / max(self.memory_bytes, 1)

    @property
    def energy_ratio(self) -> float:
        """float32 twin energy / model energy (how many times cheaper per inference)."""
        return self.float32_energy_pj / max(self.energy_pj, 1e-12)

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (bit-width keys as strings)."""
        totals = {field: self.total(field) for field in _TOTALS}
        totals.update(
            params={str(bits): count for bits, count in self.params.items()},
            total_params=self.total_params,
            energy_pj=self.energy_pj,
            float32_energy_pj=self.float32_energy_pj,
            compute_ratio=self.compute_ratio,
            memory_ratio=self.memory_ratio,
            energy_ratio=self.energy_ratio,
        )
        return {
            "name": self.name,
            "energy_model": self.energy_model.as_dict(),
            "layers": [layer.as_dict() for layer in self.layers],
            "totals": totals,
        }

    def table(self) -> str:
        """The per-layer table and the totals, as printed by `summary`."""
        bit_widths = list(self.params)
        header = [
            "Layer",
            "In bits",
            "W bits",
            "Outputs",
            *(f"# {bits}-bit" for bits in bit_widths),
            "Memory",
            "Binary ops",
            "int8 MACs",
            "Float MACs",
            "Energy",
        ]
        rows = [header]
        for layer in self.layers:
            rows.append(
                [
                    layer.name,
                    layer.input_bits or "-",
                    "/".join(map(str, layer.kernel_bits)) or "-",
                    str(_jsonable_shape(layer.output_shape) or "?"),
                    *(layer.params.get(bits, 0) for bits in bit_widths),
                    _bytes_str(layer.memory_bytes),
                    layer.binary_ops,
                    layer.int8_macs,
                    layer.float_macs,
                    _energy_str(layer.energy_pj),
                ]
            )
        rows.append(
            [
                "Total",
                "",
                "",
                "",
                *(self.params[bits] for bits in bit_widths),
                _bytes_str(self.memory_bytes),
                self.total("binary_ops"),
                self.total("int8_macs"),
                self.total("float_macs"),
                _energy_str(self.energy_pj),
            ]
        )
        source = self.energy_model.weight_memory.upper()
        totals = [
            ["Total params", f"{self.total_params:,}"],
            *([f"  {bits}-bit params", f"{count:,}"] for bits, count in self.params.items()),
            ["Deployment memory", _bytes_str(self.memory_bytes)],
            ["Float32 twin memory", _bytes_str(self.float32_bytes)],
            ["Memory reduction", f"{self.memory_ratio:.2f}x"],
            ["Binary ops (XNOR-popcount)", f"{self.total('binary_ops'):,}"],
            ["int8 MACs", f"{self.total('int8_macs'):,}"],
            [
                "Float32 MACs",
                f"{self.total('float_macs'):,}"
                f" ({self.total('float_macs_multiply_free'):,} multiply-free)",
            ],
            ["Energy, compute (45 nm)", _energy_str(self.total("compute_energy_pj"))],
            [f"Energy, weight reads ({source})", _energy_str(self.total("memory_energy_pj"))],
            ["Energy per inference", _energy_str(self.energy_pj)],
            ["Float32 twin energy", _energy_str(self.float32_energy_pj)],
            ["Energy reduction, compute only", f"{self.compute_ratio:.2f}x"],
            ["Energy reduction", f"{self.energy_ratio:.2f}x"],
        ]
        layers_table = lq_models.LayersTable(rows, title=f"{self.name} (kbnn)").table
        totals_table = lq_models.SummaryTable(totals, title=f"{self.name} totals").table
        return f"{layers_table}\n{totals_table}"

    def markdown(self) -> str:
        """Markdown tables (layers with weights or ops, then totals), e.g. for model cards."""
        lines = [
            "| Layer | In bits | W bits | Params | Memory | Binary ops | int8 MACs "
            "| Float MACs | Energy | Float32 twin energy |",
            "|---" * 10 + "|",
        ]
        for x in self.layers:
            if not (x.params or x.binary_ops or x.int8_macs or x.float_macs):
                continue
            params = ", ".join(f"{count:,}×{bits}b" for bits, count in x.params.items())
            lines.append(
                f"| {x.name} | {x.input_bits or ('float' if x.kernel_bits else '-')} | "
                f"{'/'.join(map(str, x.kernel_bits)) or '-'} | {params} | "
                f"{_bytes_str(x.memory_bytes)} | {x.binary_ops:,} | {x.int8_macs:,} | "
                f"{x.float_macs:,} | {_energy_str(x.energy_pj)} | "
                f"{_energy_str(x.float32_energy_pj)} |"
            )
        source = self.energy_model.weight_memory.upper()
        lines += [
            "",
            "| Total | |",
            "|---|---|",
            f"| Parameters | {self.total_params:,} ("
            + ", ".join(f"{count:,} × {bits}-bit" for bits, count in self.params.items())
            + ") |",
            f"| Deployment memory | {_bytes_str(self.memory_bytes)} "
            f"(float32 twin {_bytes_str(self.float32_bytes)}, {self.memory_ratio:.2f}× smaller) |",
            f"| Binary ops / int8 MACs / float32 MACs | {self.total('binary_ops'):,} / "
            f"{self.total('int8_macs'):,} / {self.total('float_macs'):,} |",
            f"| Energy per inference, 45 nm, weights from {source} | "
            f"{_energy_str(self.energy_pj)} (compute {_energy_str(self.total('compute_energy_pj'))}"
            f", weight reads {_energy_str(self.total('memory_energy_pj'))}) |",
            f"| Float32 twin energy | {_energy_str(self.float32_energy_pj)} "
            f"({self.energy_ratio:.2f}× more; compute alone {self.compute_ratio:.2f}×) |",
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _jsonable_shape(shape):
    if shape is None:
        return None
    if isinstance(shape, list):
        return [_jsonable_shape(s) for s in shape]
    return [None if d == -1 else int(d) for d in shape]


def _bytes_str(num_bytes: int) -> str:
    if num_bytes < 1024:
        return f"{num_bytes} B"
    return memory_as_readable_str(8 * num_bytes)


def _energy_str(pj: float) -> str:
    for unit, scale in (("pJ", 1.0), ("nJ", 1e3), ("uJ", 1e6), ("mJ", 1e9)):
        if pj < 1000 * scale:
            return f"{pj / scale:.3g} {unit}"
    return f"{pj / 1e12:.3g} J"


def _summarize_layer(name: str, profile: LayerProfile, energy: EnergyModel) -> LayerSummary:
    params: dict[int, int] = {}
    for weight in profile.weight_profiles:
        params[weight.bitwidth] = params.get(weight.bitwidth, 0) + weight.count
    counts = {"binary": 0, "int8": 0, "float": 0}
    multiply_free = 0
    compute = 0.0
    float32_compute = 0.0
    for n, input_bits, weight_bits in profile.macs:
        cost = mac_cost(input_bits, weight_bits, energy)
        counts[cost.kind] += n * (cost.binary_ops if cost.kind == "binary" else 1)
        if cost.kind == "float" and cost.energy_pj == energy.float_accumulate:
            multiply_free += n
        compute += n * cost.energy_pj
        float32_compute += n * energy.float_mac
    words = sum(w.words for w in profile.weight_profiles)
    float32_words = sum(w.count for w in profile.weight_profiles)
    return LayerSummary(
        name=name,
        layer_type=type(profile.layer).__name__,
        input_bits=profile.input_precision if profile.macs else None,
        kernel_bits=profile.kernel_bits,
        output_shape=profile.output_shape,
        params=dict(sorted(params.items())),
        scale_params=sum(w.scale_count for w in profile.weight_profiles),
        memory_bytes=sum(w.deployment_bytes for w in profile.weight_profiles),
        float32_bytes=4 * float32_words,
        binary_ops=counts["binary"],
        int8_macs=counts["int8"],
        float_macs=counts["float"],
        float_macs_multiply_free=multiply_free,
        compute_energy_pj=compute,
        memory_energy_pj=words * energy.word_read,
        float32_compute_energy_pj=float32_compute,
        float32_memory_energy_pj=float32_words * energy.word_read,
    )


def summary(
    model,
    *,
    print_fn: Callable[[str], Any] | None = print,
    energy_model: EnergyModel = HOROWITZ_45NM,
) -> ModelSummary:
    """Print and return a bit-aware summary of a built Keras model.

    Per layer: input and kernel precision, parameters by bit width, deployment memory in bytes
    (1-bit packed, ternary as 2 planes, k-bit as k planes, int8, float32), binary ops
    (XNOR-popcount), int8 MACs, float32 MACs and the energy of one inference under
    `energy_model` (Horowitz 2014, 45 nm; assumptions in `EnergyModel`), with totals and the
    ratios against the model's float32 twin. Counting of weights and MACs is larq's
    (`larq.models.LayerProfile`).

    Args:
        model: a built `tf.keras.Model`.
        print_fn: called with the printed table; `None` prints nothing.
        energy_model: energy per operation; e.g. `dataclasses.replace(HOROWITZ_45NM,
            weight_memory="sram")` to read weights from SRAM instead of DRAM.

    Returns:
        `ModelSummary`; `.as_dict()` is JSON-serialisable.
    """
    if not (hasattr(model, "layers") and hasattr(model, "built")):
        raise fail("model", "a tf.keras.Model", type(model).__name__)
    if not model.built:
        raise UsageError(
            f"model {model.name!r} is not built: call it on data or give the first layer an "
            "`input_shape` before kbnn.models.summary"
        )
    check_type(energy_model, "energy_model", EnergyModel, "a kbnn.models.EnergyModel")
    if print_fn is not None and not callable(print_fn):
        raise fail("print_fn", "a callable or None", print_fn)
    profile = ModelProfile(model)
    result = ModelSummary(
        name=model.name,
        layers=[_summarize_layer(name, p, energy_model) for name, p in profile.iter_layers()],
        energy_model=energy_model,
    )
    if print_fn is not None:
        print_fn(result.table())
    return result
