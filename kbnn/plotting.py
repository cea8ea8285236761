"""Plots for quantized models: weight histograms, per-layer memory/energy, training curves.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no
global backend switch) and written atomically: to a temporary file beside the target, then
renamed. The file format follows the path's suffix (png, pdf, svg, ...).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from pathlib import Path

from kbnn import kernels
from kbnn._io import atomic_path
from kbnn._validation import check_positive_int
from kbnn.errors import UsageError

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["plot_memory_energy", "plot_training_curves", "plot_weight_histograms", "save_figure"]

_MODEL_COLOR = "#1f77b4"
_TWIN_COLOR = "#bbbbbb"


def save_figure(fig: Figure, path, *, dpi: int = 100) -> Path:
    """Render `fig` with Agg and write it to `path` atomically; returns the path."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    supported = FigureCanvasAgg(fig).get_supported_filetypes()
    if fmt not in supported:
        raise UsageError(
            f"path {str(path)!r}: unsupported image format {fmt!r}; use one of "
            f"{', '.join(sorted(supported))}"
        )
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"directory {str(directory)!r} for the plot does not exist")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
    return path


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_memory_energy(summary_or_model, path, *, title: str | None = None) -> Path:
    """Per-layer bar chart of deployment memory and energy per inference, beside the float32 twin.

    Args:
        summary_or_model: a `kbnn.models.ModelSummary`, or a built Keras model (summarised
            silently with the default 45 nm energy model).
        path: image file to write (format from its suffix).
    """
    from kbnn.models import ModelSummary, summary

    result = summary_or_model
    if not isinstance(result, ModelSummary):
        result = summary(summary_or_model, print_fn=None)
    layers = [x for x in result.layers if x.float32_bytes or x.energy_pj]
    if not layers:
        raise UsageError(f"model {result.name!r} has no layer with weights to plot")
    names = [x.name for x in layers]
    y = np.arange(len(layers))
    fig = _new_figure(12, 1.2 + 0.45 * len(layers))
    panels = fig.subplots(1, 2, sharey=True)
    source = result.energy_model.weight_memory.upper()
    series = (
        (
            panels[0],
            "Deployment memory (bytes)",
            [x.memory_bytes for x in layers],
            [x.float32_bytes for x in layers],
        ),
        (
            panels[1],
            f"Energy per inference (pJ, 45 nm, weights from {source})",
            [x.energy_pj for x in layers],
            [x.float32_energy_pj for x in layers],
        ),
    )
    for ax, label, model_values, twin_values in series:
        ax.barh(y - 0.2, twin_values, height=0.4, color=_TWIN_COLOR, label="float32 twin")
        ax.barh(y + 0.2, model_values, height=0.4, color=_MODEL_COLOR, label=result.name)
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.grid(axis="x", which="major", alpha=0.3)
    panels[0].set_yticks(y, names)
    panels[0].invert_yaxis()
    panels[0].legend(loc="lower right", fontsize="small")
    fig.suptitle(
        title
        or (
            f"{result.name}: {result.memory_ratio:.1f}x smaller, {result.energy_ratio:.1f}x less "
            "energy than its float32 twin"
        )
    )
    return save_figure(fig, path)


def plot_weight_histograms(model, path, *, bins: int = 60, max_layers: int = 12) -> Path:
    """Histogram of latent (float) weights beside the quantized levels, one row per layer.

    The right column counts the values the forward pass uses, as integer levels where the
    quantizer has them (binary ±1, ternary −1/0/1, DoReFa odd integers; per-channel scales such
    as TWN's α left out, so each level is one bar), otherwise the quantized values.
    """
    layers = kernels.quantized_kernel_layers(model)
    if not layers:
        raise UsageError(f"model {model.name!r} has no layer with a quantized kernel")
    check_positive_int(max_layers, "max_layers")
    layers = layers[:max_layers]
    fig = _new_figure(10, 1.2 + 2.0 * len(layers))
    axes = fig.subplots(len(layers), 2, squeeze=False)
    for (latent_ax, quant_ax), layer in zip(axes, layers, strict=True):
        latent = np.asarray(kernels.kernel_variable(layer).numpy()).ravel()
        quantized = kernels.integer_levels(layer).ravel()
        latent_ax.hist(latent, bins=bins, color=_TWIN_COLOR)
        latent_ax.set_ylabel(layer.name, fontsize="small")
        values, counts = np.unique(np.round(quantized, 6), return_counts=True)
        if len(values) <= 16:  # few levels: one bar per level
            step = np.min(np.diff(values)) if len(values) > 1 else 1.0
            quant_ax.bar(values, counts, width=0.5 * step, color=_MODEL_COLOR)
            quant_ax.set_xticks(values)
        else:
            quant_ax.hist(quantized, bins=bins, color=_MODEL_COLOR)
        precision = kernels.kernel_precision(layer)
        quant_ax.set_title(f"{precision}-bit kernel: {len(values)} levels used", fontsize="small")
    axes[0][0].set_title("latent weights", fontsize="small")
    axes[-1][0].set_xlabel("value")
    axes[-1][1].set_xlabel("quantized level")
    fig.suptitle(f"{model.name}: latent vs quantized kernels")
    return save_figure(fig, path)


def _read_history(history_or_csv) -> dict[str, list[float]]:
    if hasattr(history_or_csv, "history") and isinstance(history_or_csv.history, Mapping):
        history = history_or_csv.history
    elif isinstance(history_or_csv, Mapping):
        history = history_or_csv
    elif isinstance(history_or_csv, (str, os.PathLike)):
        path = Path(history_or_csv)
        if not path.is_file():
            raise FileNotFoundError(f"training log {str(path)!r} does not exist")
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        # CSVLogger writes "NA" for a metric missing from an epoch's logs
        history = {
            key: [float(row[key]) if row[key] not in ("", "NA", None) else math.nan for row in rows]
            for key in (rows[0] if rows else {})
        }
        history.pop("epoch", None)
    else:
        raise UsageError(
            "history_or_csv must be a keras History, a dict of metric lists or a CSV path "
            f"(tf.keras.callbacks.CSVLogger), got {type(history_or_csv).__name__}"
        )
    # Skipped: all-NaN columns (CSVLogger's "NA" val_ columns of a run without validation) and
    # val_flip_ratio (kernels do not change while evaluating: always 0).
    curves = {
        key: [float(v) for v in values]
        for key, values in history.items()
        if np.ndim(values) == 1
        and len(values) > 0
        and not key.startswith("val_flip_ratio")
        and not np.all(np.isnan(np.asarray(values, dtype=float)))
    }
    if not curves:
        raise UsageError("history_or_csv holds no metric values to plot")
    return curves


def _panel_of(key: str) -> str:
    base = key.removeprefix("val_")
    if base.startswith("flip_ratio"):
        return "flip ratio"
    if base == "loss" or base.endswith("loss"):
        return "loss"
    if "acc" in base:
        return "accuracy"
    if base in ("lr", "learning_rate"):
        return "learning rate"
    return "other"


def plot_training_curves(history_or_csv, path, *, title: str | None = None) -> Path:
    """Loss, accuracy, flip ratio and learning rate per epoch, one panel each.

    Args:
        history_or_csv: the `History` returned by `model.fit`, its `.history` dict, or the CSV
            written by `tf.keras.callbacks.CSVLogger`.
        path: image file to write.
    """
    curves = _read_history(history_or_csv)
    order = ["loss", "accuracy", "flip ratio", "learning rate", "other"]
    panels: dict[str, list[str]] = {}
    for key in curves:
        panels.setdefault(_panel_of(key), []).append(key)
    names = [name for name in order if name in panels]
    fig = _new_figure(5 * len(names), 3.6)
    axes = np.atleast_1d(fig.subplots(1, len(names)))
    for ax, name in zip(axes, names, strict=True):
        for key in panels[name]:
            values = curves[key]
            epochs = np.arange(1, len(values) + 1)
            style = "--" if key.startswith("val_") else "-"
            ax.plot(
                epochs,
                values,
                style,
                marker="o" if len(values) < 30 else None,
                markersize=3,
                label=key,
            )
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if name == "learning rate":
            ax.set_yscale("log")
        ax.legend(fontsize="x-small")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
