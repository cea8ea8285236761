"""Test accuracy on the full MNIST test split (10,000 images via tfds)."""

from __future__ import annotations

from kbnn.errors import UsageError

import numpy as np


def evaluate_mnist(model, *, batch_size: int = 1000, data_dir=None) -> float:
    """Top-1 accuracy of `model` (softmax or logits outputs) on MNIST `test`, as a fraction."""
    from kbnn.data import mnist

    correct = total = 0
    for images, labels in mnist("test", batch_size, data_dir=data_dir).as_numpy_iterator():
        predictions = model(images, training=False).numpy()
        correct += int(np.sum(np.argmax(predictions, axis=-1) == labels))
        total += len(labels)
    if total == 0:
        raise UsageError("the MNIST test split is empty")
    return correct / total


def load_for_evaluation(model_or_name: str, *, weights=None):
    """(model, label) from a zoo name (pretrained weights unless `weights`) or a model file."""
    import os

    import kbnn.zoo
    from kbnn.errors import UsageError

    if model_or_name in kbnn.zoo.list_models():
        model = kbnn.zoo.get(model_or_name, weights=weights or "pretrained")
        return model, model_or_name
    if weights is not None:
        raise UsageError("--weights applies to a zoo model NAME, not to a model file")
    if not os.path.exists(model_or_name):
        raise UsageError(
            f"{model_or_name!r} is neither a zoo model ({', '.join(kbnn.zoo.list_models())}) "
            "nor an existing model file"
        )
    from kbnn._loading import load_model

    return load_model(model_or_name), model_or_name
