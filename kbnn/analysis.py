"""Analyses of quantized models: unique binary kernels and the latent-weight flip ratio.

Unique kernels: a binary k×k kernel takes one of only 2^(k·k) values (512 for 3×3), so a layer
with C_in·C_out kernels repeats many of them. BinaryNet (Courbariaux, Hubara et al., 2016,
Sec. 3) found only 42% of the 3×3 kernels of its CIFAR-10 ConvNet unique per feature map and
proposed computing each distinct kernel's convolution once per input channel and reusing it.
A kernel and its negation give results that differ only in sign, so they can share the work too.

Flip ratio: the fraction of quantized weights whose value changed from one training step to
the next, averaged over the epoch (larq's `larq.metrics.FlipRatio`); it shows when binary
weights stop flipping (converged, or starved by a missing weight clip).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from kbnn import _validation as check
from kbnn.errors import UsageError
from kbnn.kernels import integer_levels, iter_layers, kernel_precision, kernel_quantizer

import larq as lq
import numpy as np
import tensorflow as tf

__all__ = ["UniqueKernels", "UniqueKernelsReport", "enable_flip_ratio", "unique_kernels"]

log = logging.getLogger(__name__)

# larq's quantizers with FlipRatio support all derive from this base (it calls the metric).
_LARQ_METRIC_QUANTIZER = lq.quantizers._BaseQuantizer


def _canonical_sign(rows: np.ndarray) -> np.ndarray:
    """Each row multiplied by the sign of its first non-zero entry (a row and −row coincide)."""
    nonzero = rows != 0
    first = np.argmax(nonzero, axis=1)
    lead = rows[np.arange(len(rows)), first]
    sign = np.where(lead < 0, -1, 1).astype(rows.dtype)
    return rows * sign[:, None]


def _count_unique(rows: np.ndarray) -> int:
    return len(np.unique(rows, axis=0)) if len(rows) else 0


@dataclasses.dataclass
class UniqueKernels:
    """Unique k×k kernels of one quantized convolution and the ops kernel reuse saves.

    `unique*` count distinct kernels over the whole layer; `unique_per_channel*` sum, over input
    channels, the distinct kernels applied to that channel — what a reuse scheme can share.
    `ops` = C_in·C_out·k_h·k_w·P (P output pixels; one XNOR-popcount per kernel element and
    pixel for binary layers);
    `ops_with_reuse` = Σ_channels unique·k_h·k_w·P. Reuse then needs `partial_sum_adds` =
    C_in·C_out·P small-integer adds to sum the per-channel results (a fused popcount does not).
    """

    layer: str
    kernel_size: tuple[int, int]
    bits: int
    num_levels: int | None  # values one kernel element can take (2 binary, 3 ternary)
    input_channels: int
    output_channels: int
    total: int
    unique: int
    unique_up_to_sign: int
    unique_per_channel: int
    unique_per_channel_up_to_sign: int
    output_pixels: int
    ops: int
    ops_with_reuse: int
    ops_with_reuse_up_to_sign: int
    partial_sum_adds: int

    @property
    def possible(self) -> int | None:
        """Distinct kernels the level set allows, e.g. 2^9 = 512 binary 3×3 kernels."""
        if self.num_levels is None:
            return None
        return self.num_levels ** (self.kernel_size[0] * self.kernel_size[1])

    @property
    def ratio(self) -> float:
        return self.unique / self.total

    @property
    def ratio_up_to_sign(self) -> float:
        return self.unique_up_to_sign / self.total

    @property
    def ratio_per_channel(self) -> float:
        return self.unique_per_channel / self.total

    @property
    def ratio_per_channel_up_to_sign(self) -> float:
        return self.unique_per_channel_up_to_sign / self.total

    @property
    def ops_saved(self) -> int:
        return self.ops - self.ops_with_reuse

    @property
    def ops_saved_up_to_sign(self) -> int:
        return self.ops - self.ops_with_reuse_up_to_sign

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["kernel_size"] = list(self.kernel_size)
        for name in (
            "possible",
            "ratio",
            "ratio_up_to_sign",
            "ratio_per_channel",
            "ratio_per_channel_up_to_sign",
            "ops_saved",
            "ops_saved_up_to_sign",
        ):
            data[name] = getattr(self, name)
        return data


@dataclasses.dataclass
class UniqueKernelsReport:
    """`unique_kernels`' result: one `UniqueKernels` per analysed convolution."""

    model: str
    layers: list[UniqueKernels]

    def __iter__(self):
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, name: str | int) -> UniqueKernels:
        """By layer name, or by position."""
        if isinstance(name, int):
            return self.layers[name]
        for layer in self.layers:
            if layer.layer == name:
                return layer
        raise KeyError(f"no analysed layer named {name!r}; have {[x.layer for x in self.layers]}")

    def total(self, field: str) -> int:
        """Sum of an integer field over the analysed layers, e.g. `total("ops_saved")`."""
        return sum(getattr(layer, field) for layer in self.layers)

    def as_dict(self) -> dict[str, Any]:
        totals = {
            name: self.total(name)
            for name in (
                "total",
                "unique_per_channel",
                "unique_per_channel_up_to_sign",
                "ops",
                "ops_saved",
                "ops_saved_up_to_sign",
                "partial_sum_adds",
            )
        }
        return {
            "model": self.model,
            "layers": [layer.as_dict() for layer in self.layers],
            "totals": totals,
        }

    def table(self) -> str:
        header = [
            "Layer",
            "Kernels",
            "Unique",
            "(±)",
            "Unique/channel",
            "(±)",
            "Ops",
            "Saved by reuse",
            "(±)",
        ]
        rows = [header]
        for x in self.layers:
            rows.append(
                [
                    x.layer,
                    f"{x.total} ({x.kernel_size[0]}x{x.kernel_size[1]})",
                    _count_ratio(x.unique, x.total),
                    _count_ratio(x.unique_up_to_sign, x.total),
                    _count_ratio(x.unique_per_channel, x.total),
                    _count_ratio(x.unique_per_channel_up_to_sign, x.total),
                    f"{x.ops:,}",
                    _count_ratio(x.ops_saved, x.ops),
                    _count_ratio(x.ops_saved_up_to_sign, x.ops),
                ]
            )
        total, ops = self.total("total"), self.total("ops")
        rows.append(
            [
                "Total",
                f"{total}",
                "",
                "",
                _count_ratio(self.total("unique_per_channel"), total),
                _count_ratio(self.total("unique_per_channel_up_to_sign"), total),
                f"{ops:,}",
                _count_ratio(self.total("ops_saved"), ops),
                _count_ratio(self.total("ops_saved_up_to_sign"), ops),
            ]
        )
        return lq.models.LayersTable(rows, title=f"{self.model} unique kernels").table

    def __str__(self) -> str:
        return self.table()


def _count_ratio(count: int, total: int) -> str:
    return f"{count:,} ({count / total:.0%})" if total else f"{count:,}"


def _output_pixels(layer) -> int:
    shape = layer.output_shape
    if not isinstance(shape, tuple) or len(shape) != 4 or None in shape[1:3]:
        raise UsageError(
            f"layer {layer.name!r} has no static 2-D output shape ({shape}); build the model "
            "with a fixed input shape"
        )
    return int(shape[1] * shape[2])


def _num_levels(layer) -> int | None:
    if kernel_precision(layer) == 1:
        return 2
    levels = getattr(kernel_quantizer(layer), "levels", None)
    return len(levels) if isinstance(levels, (tuple, list)) else None


def _analyse(layer) -> UniqueKernels:
    q = integer_levels(layer)
    kh, kw, cin, cout = q.shape
    # rows[i, o] is the flattened kernel applied to input channel i for output channel o
    rows = q.transpose(2, 3, 0, 1).reshape(cin, cout, kh * kw)
    flat = rows.reshape(cin * cout, kh * kw)
    signless = _canonical_sign(flat).reshape(cin, cout, kh * kw)
    per_channel = sum(_count_unique(rows[i]) for i in range(cin))
    per_channel_signless = sum(_count_unique(signless[i]) for i in range(cin))
    pixels = _output_pixels(layer)
    per_kernel_ops = kh * kw * pixels
    return UniqueKernels(
        layer=layer.name,
        kernel_size=(int(kh), int(kw)),
        bits=int(kernel_precision(layer)),
        num_levels=_num_levels(layer),
        input_channels=int(cin),
        output_channels=int(cout),
        total=int(cin * cout),
        unique=_count_unique(flat),
        unique_up_to_sign=_count_unique(signless.reshape(cin * cout, kh * kw)),
        unique_per_channel=per_channel,
        unique_per_channel_up_to_sign=per_channel_signless,
        output_pixels=pixels,
        ops=int(cin * cout * per_kernel_ops),
        ops_with_reuse=per_channel * per_kernel_ops,
        ops_with_reuse_up_to_sign=per_channel_signless * per_kernel_ops,
        partial_sum_adds=int(cin * cout * pixels),
    )


def _is_quantized_conv2d(layer, max_bits: int) -> bool:
    kernel = getattr(layer, "kernel", None)
    precision = kernel_precision(layer)
    return (
        isinstance(layer, tf.keras.layers.Conv2D)
        and not isinstance(layer, tf.keras.layers.Conv2DTranspose)
        and getattr(layer, "groups", 1) == 1
        and kernel is not None
        and len(kernel.shape) == 4
        and precision is not None
        and precision <= max_bits
        and kernel_quantizer(layer) is not None
    )


def unique_kernels(model, *, max_bits: int = 1) -> UniqueKernelsReport:
    """Count distinct k×k kernels of every quantized Conv2D with kernel precision ≤ `max_bits`.

    For each layer: distinct kernels over the layer and per input channel, each also counting a
    kernel and its negation as one, their ratio to C_in·C_out, and the XNOR-popcount ops that
    computing each distinct kernel once per input channel saves (see `UniqueKernels`).
    `max_bits=1` (default) analyses binary convolutions; 2 adds ternary ones.
    """
    check.check_type(model, "model", tf.keras.Model, "a tf.keras.Model")
    check.check_positive_int(max_bits, "max_bits")
    if not model.built:
        raise check.fail("model", "a built model (build it before unique_kernels)", model.name)
    layers = [
        _analyse(layer) for layer in iter_layers(model) if _is_quantized_conv2d(layer, max_bits)
    ]
    return UniqueKernelsReport(model=model.name, layers=layers)


def enable_flip_ratio(model) -> list[str]:
    """Attach larq's `FlipRatio` metric to every quantized kernel of `model`; call before `fit`.

    Works on models built outside `larq.context.metrics_scope(["flip_ratio"])` (e.g. loaded
    from a file). During `fit` each step compares the quantized kernel with the previous step's
    and the history gains one `flip_ratio/<layer>` entry per kernel: the mean fraction of
    weights that flipped per step over the epoch (the first step of each epoch has no previous
    step to compare with). Kernels with `integer_levels` (TWN, XNOR, five-level, DoReFa) feed
    the metric their levels (`kbnn.quantizers`), others their values. Kernels whose quantizer is not a
    larq metric-aware quantizer are skipped with a log message.

    Returns:
        The metric names added (or already present).
    """
    check.check_type(model, "model", tf.keras.Model, "a tf.keras.Model")
    names = []
    for layer in iter_layers(model):
        quantizer = kernel_quantizer(layer)
        if quantizer is None or getattr(layer, "kernel", None) is None:
            continue
        if not isinstance(quantizer, _LARQ_METRIC_QUANTIZER):
            log.info(
                "flip ratio not tracked for %s: %s is not a larq metric-aware quantizer",
                layer.name,
                type(quantizer).__name__,
            )
            continue
        if not hasattr(quantizer, "flip_ratio"):
            name = f"flip_ratio/{layer.name}"
            # int32, not larq's default int8: tf.distribute cannot broadcast int8 variables
            # (CollectiveBcastRecv) when a multi-worker strategy creates them.
            metric = lq.metrics.FlipRatio(values_dtype="int32", name=name)
            metric.build(layer.kernel.shape)
            quantizer.flip_ratio = metric
        names.append(quantizer.flip_ratio.name)
    return names
