"""Training curves as a PNG (matplotlib, headless Agg backend)."""

from __future__ import annotations

import os
import pathlib


def save_training_curves(history: dict, path, *, title: str = "") -> pathlib.Path:
    """Plot loss and accuracy per epoch (train and, when present, validation) into `path`.

    Written to a temporary name in the same folder, then renamed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = pathlib.Path(path)
    if not history.get("loss"):
        raise ValueError("history has no 'loss' values to plot")
    epochs = range(1, len(history["loss"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            if key in history:
                ax.plot(epochs, history[key], marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path
