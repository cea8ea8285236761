"""Turn a trained checkpoint into shipped zoo weights: compact `.npz` + measured model card.

The accuracy written to the card is measured on the exported file itself, loaded into a fresh
zoo definition the way `get(name, weights="pretrained")` loads it, over the full MNIST test split.
"""

from __future__ import annotations

import datetime
import json
import pathlib

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn.zoo import cards, registry
from kbnn.zoo import weights as weight_files

RUN_INFO_NAME = "run.json"


def export_weights(name: str, checkpoint, *, training_command: str, weights_dir=None,
                   cards_dir=None, trained_on: str = "CPU") -> dict:
    """Export `checkpoint` (a `.keras` file from `kbnn train name`) as the zoo's weights for
    `name`; returns the model card written."""
    from kbnn.zoo.api import get
    from kbnn.zoo.evaluation import evaluate_mnist

    entry = registry.spec(name)
    if entry.dataset != "mnist":
        raise ValueError(f"only MNIST models are exported with measured accuracy, not {name!r}")
    if not training_command or not training_command.strip():
        raise ValueError("training_command must be the exact command that trained the weights")
    checkpoint = pathlib.Path(checkpoint)
    model = get(name, compile=False)
    weight_files.load_weights_file(model, checkpoint)

    weights_dir = pathlib.Path(weights_dir) if weights_dir else cards.package_dir("weights")
    path = weights_dir / f"{name}.npz"
    sha256 = weight_files.save_compact(model, path)

    fresh = get(name, compile=False)
    weight_files.load_compact(fresh, path, sha256=sha256)
    accuracy = evaluate_mnist(fresh)

    card = {
        "name": name,
        "weights_file": path.name,
        "sha256": sha256,
        "size_bytes": path.stat().st_size,
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
    cards.write_card(card, cards_dir)
    return card
