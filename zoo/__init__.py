"""kbnn.zoo: binarized and low-bit model definitions, training recipes, pretrained weights.

    import kbnn.zoo
    model = kbnn.zoo.get("binarynet_mnist", weights="pretrained")  # compiled, offline
    model = kbnn.zoo.load("binarynet_mnist")  # or kbnn.zoo.load("model.keras"): name or file
    kbnn.zoo.list_models(); kbnn.zoo.info("binarynet_mnist")

Source lives in the repository's `zoo/` folder, installed as `kbnn.zoo`.
"""

from __future__ import annotations

from kbnn.zoo.api import available_weights, get, info, load
from kbnn.zoo.registry import ModelSpec, Recipe, list_models, spec
from kbnn.zoo.weights import WeightsDownloadError, WeightsIntegrityError


def train(name, **kwargs):
    """Train zoo model `name` with its recipe (arguments override it): `kbnn.zoo.training.train`,
    on the default one-device strategy unless `strategy=` names another — one code path for 1
    and N replicas."""
    from kbnn.zoo.training import train as _train

    return _train(name, **kwargs)


__all__ = [
    "ModelSpec",
    "Recipe",
    "WeightsDownloadError",
    "WeightsIntegrityError",
    "available_weights",
    "get",
    "info",
    "list_models",
    "load",
    "spec",
    "train",
]
