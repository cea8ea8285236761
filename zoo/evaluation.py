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
