"""Model cards: what was measured for shipped weights (`zoo/cards/<name>.json`).

A card records the weights file and its sha256, the measured accuracy on the full MNIST test
split, the exact command that trained the weights, the date, and what the model costs: the
`kbnn.models.summary` of the shipped weights (memory, ops, 45 nm energy, ratios to the float32
twin), their unique binary/ternary kernels and the last epoch's latent-weight flip ratios. `write_card` is used by the
export step (`kbnn zoo export`), `read_card` by `kbnn.zoo.info` and `get(weights="pretrained")`.
"""

from __future__ import annotations

import json
import pathlib
from importlib import resources

from kbnn._io import write_atomic

CARD_FIELDS = (
    "name",
    "weights_file",
    "sha256",
    "size_bytes",
    "measured_accuracy",
    "evaluated_on",
    "training_command",
    "training_epochs",
    "training_seconds",
    "trained_on",
    "date",
    "flip_ratio_last_epoch",
    "summary",
    "unique_kernels",
)


def package_dir(kind: str) -> pathlib.Path:
    """The folder of package data `kind` ("cards" or "weights") inside kbnn.zoo."""
    return pathlib.Path(str(resources.files("kbnn.zoo").joinpath(kind)))


def read_card(name: str) -> dict | None:
    """The card of `name`, or None if the zoo ships no weights for it."""
    path = resources.files("kbnn.zoo").joinpath("cards", f"{name}.json")
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def write_card(card: dict, folder=None) -> pathlib.Path:
    """Write `card` as `<folder>/<name>.json` (atomically); unknown keys are refused."""
    folder = pathlib.Path(folder) if folder else package_dir("cards")
    path = card_path(card, folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(path, card_text(card))
    return path


def card_path(card: dict, folder) -> pathlib.Path:
    """Where `write_card(card, folder)` writes."""
    if "name" not in card:
        raise ValueError("a model card needs a 'name'")
    return pathlib.Path(folder) / f"{card['name']}.json"


def card_text(card: dict) -> str:
    """The JSON text of `card` (fields in CARD_FIELDS order); unknown keys are refused."""
    unknown = set(card) - set(CARD_FIELDS)
    if unknown:
        raise ValueError(f"unknown model card fields {sorted(unknown)}; known: {CARD_FIELDS}")
    ordered = {key: card[key] for key in CARD_FIELDS if key in card}
    return json.dumps(ordered, indent=2) + "\n"


def packaged_weights(name: str) -> pathlib.Path | None:
    """Path of the weights file shipped for `name` (from its card), or None."""
    card = read_card(name)
    if not card or not card.get("weights_file"):
        return None
    path = package_dir("weights") / card["weights_file"]
    return path if path.is_file() else None


def shipped_weights(name: str) -> tuple[pathlib.Path, str] | None:
    """(path, sha256 from its card) of the weights shipped for `name`, or None."""
    path = packaged_weights(name)
    return None if path is None else (path, read_card(name)["sha256"])


# `kbnn zoo list` reads this index instead of the registry, whose model definitions import
# TensorFlow; tests/test_cli_startup.py checks that it equals the live registry.
# Regenerate with `python -m kbnn.zoo.cards` after adding a model or shipping weights.
INDEX_FILE = "_registry.json"
INDEX_FIELDS = ("name", "dataset", "bits", "expected_accuracy", "weights")


def build_zoo_index() -> list[dict]:
    """One row per registered model, from the live registry (imports TensorFlow)."""
    from kbnn.zoo import api, registry

    rows = []
    for name in registry.list_models():
        info = api.info(name, params=False)
        rows.append({field: info[field] for field in INDEX_FIELDS})
    return rows


def read_zoo_index() -> list[dict] | None:
    """The committed index, or None if it is missing."""
    path = package_dir("cards") / INDEX_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def write_zoo_index() -> pathlib.Path:
    path = package_dir("cards") / INDEX_FILE
    write_atomic(path, json.dumps(build_zoo_index(), indent=1) + "\n")
    return path


if __name__ == "__main__":
    print(write_zoo_index())
