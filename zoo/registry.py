"""The zoo's one table: every model's builder, paper, bits, expected accuracy and recipe.

Definitions register themselves with `@register(...)`; `list_models()` and `spec(name)` read the
table. Measured results of shipped weights live in the model cards (`kbnn.zoo.cards`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from kbnn.errors import UsageError


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Default training hyper-parameters of `kbnn train NAME` (Adam + cosine decay)."""

    epochs: int
    batch_size: int
    optimizer: str = "adam"
    learning_rate: float = 1e-2


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the zoo knows about one model before any weights are loaded."""

    name: str
    builder: Callable
    paper: str
    dataset: str  # "mnist", "cifar10" or "imagenet"
    input_shape: tuple[int, ...]
    num_classes: int
    bits: str  # weights/activations, e.g. "W1A1"
    expected_accuracy: float  # fraction, from the paper or reference code
    expected_source: str  # where expected_accuracy comes from
    recipe: Recipe | None = None
    weights_url: str | None = None  # for weights too large to ship as package data
    weights_sha256: str | None = None


_REGISTRY: dict[str, ModelSpec] = {}


def register(**fields) -> Callable:
    """Decorator adding a model builder to the table under `fields["name"]` (default: its
    function name)."""

    def wrap(builder):
        name = fields.pop("name", builder.__name__)
        if name in _REGISTRY:
            raise UsageError(f"zoo model {name!r} is registered twice")
        _REGISTRY[name] = ModelSpec(name=name, builder=builder, **fields)
        return builder

    return wrap


def list_models() -> list[str]:
    """Names of all zoo models, sorted."""
    _load_definitions()
    return sorted(_REGISTRY)


def spec(name: str) -> ModelSpec:
    """The registry entry of `name`; `UsageError` naming the known models otherwise."""
    _load_definitions()
    if not isinstance(name, str) or name not in _REGISTRY:
        raise UsageError(
            f"unknown zoo model {name!r}; known models: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]


def _load_definitions() -> None:
    """Import the definition modules (they register on import)."""
    from kbnn.zoo import cifar, imagenet, mcu, mnist  # noqa: F401
