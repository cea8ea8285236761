"""Turn a trained checkpoint into shipped zoo weights: compact `.npz` + measured model card.

The accuracy written to the card is measured on the exported file itself, loaded into a fresh
zoo definition the way `get(name, weights="pretrained")` loads it, over the full MNIST test split;
so are the bit-aware summary and the unique-kernel counts. The last epoch's flip ratios come
from the run's CSV log when it has them.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import json
import pathlib

from kbnn._io import check_output, commit_files
from kbnn.analysis import unique_kernels
from kbnn.errors import UsageError
from kbnn.models import summary
from kbnn.zoo import cards, registry
from kbnn.zoo import weights as weight_files
from kbnn.zoo.api import get
from kbnn.zoo.evaluation import evaluate_mnist
from kbnn.zoo.training import CSV_NAME, RUN_INFO_NAME


def export_weights(
    name: str,
    checkpoint,
    *,
    training_command: str,
    weights_dir=None,
    cards_dir=None,
    trained_on: str = "CPU",
) -> dict:
    """Export `checkpoint` (a `.keras` file from `kbnn train name`) as the zoo's weights for
    `name`; returns the model card written."""
    entry = registry.spec(name)
    if entry.dataset != "mnist":
        raise UsageError(f"only MNIST models are exported with measured accuracy, not {name!r}")
    if not training_command or not training_command.strip():
        raise UsageError("training_command must be the exact command that trained the weights")
    checkpoint = pathlib.Path(checkpoint)
    model = get(name, compile=False)
    weight_files.load_weights_file(model, checkpoint)

    weights_dir = pathlib.Path(weights_dir) if weights_dir else cards.package_dir("weights")
    cards_dir = pathlib.Path(cards_dir) if cards_dir else cards.package_dir("cards")
    path = weights_dir / f"{name}.npz"
    for folder in (weights_dir, cards_dir):
        folder.mkdir(parents=True, exist_ok=True)
    check_output(path, inputs=[checkpoint], flag="weights")  # before the slow evaluation
    check_output(cards.card_path({"name": name}, cards_dir), inputs=[checkpoint], flag="card")
    blob = weight_files.compact_bytes(model)  # written together with the card, at the end
    sha256 = hashlib.sha256(blob).hexdigest()

    fresh = get(name, compile=False)
    weight_files.load_compact(fresh, io.BytesIO(blob))
    accuracy = evaluate_mnist(fresh)

    card = {
        "name": name,
        "weights_file": path.name,
        "sha256": sha256,
        "size_bytes": len(blob),
        "measured_accuracy": round(accuracy, 4),
        "evaluated_on": "MNIST test split, all 10,000 images (tfds mnist 3.0.1)",
        "training_command": " ".join(training_command.split()),
        "trained_on": trained_on,
        "date": datetime.date.today().isoformat(),
    }

    run_info = checkpoint.parent / RUN_INFO_NAME
    if run_info.is_file():
        info = json.loads(run_info.read_text())
        card["training_epochs"] = info.get("epochs")
        card["training_seconds"] = info.get("seconds")
    flips = final_flip_ratios(checkpoint.parent / CSV_NAME)
    if flips:
        card["flip_ratio_last_epoch"] = flips
    card.update(analysis_fields(fresh))
    commit_files({path: blob, cards.card_path(card, cards_dir): cards.card_text(card)})
    return card


def analysis_fields(model) -> dict:
    """What the card says about the model's cost: `kbnn.models.summary` (bit-packed memory,
    binary ops / MACs, 45 nm energy, ratios to the float32 twin) and, for binary and ternary
    convolutions, `kbnn.analysis.unique_kernels` on the trained weights."""

    fields = {"summary": summary(model, print_fn=None).as_dict()}
    kernels = unique_kernels(model, max_bits=2)
    if len(kernels):
        fields["unique_kernels"] = kernels.as_dict()
    return fields


def final_flip_ratios(csv_path) -> dict[str, float]:
    """`flip_ratio/<layer>` of the last epoch in a `kbnn train` CSV log ({} when not logged):
    the mean fraction of each quantized kernel that changed level per step."""

    csv_path = pathlib.Path(csv_path)
    if not csv_path.is_file():
        return {}
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return {}
    last = rows[-1]
    return {
        key.split("/", 1)[1]: float(f"{float(value):.4g}")
        for key, value in last.items()
        if key.startswith("flip_ratio/") and value not in ("", "NA")
    }
