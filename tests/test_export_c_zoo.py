"""kbnn export-c on the shipped zoo models: the C (host harness that includes only
kbnn_model.h) equals the numpy integer reference bit for bit, scores included, and agrees with
Keras' argmax; on the full 10,000-digit test split for the binary models (slow)."""

from __future__ import annotations

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
import kbnn.zoo
from kbnn.converters.c_export import export_c
from kbnn.converters.c_export import reference as ref
from kbnn.data import mnist_sample
from kbnn.zoo import cards

import numpy as np
import pytest
from c_export_helpers import build_host, run_host

BINARY = ["binarynet_mnist", "binarynet_mcu_mnist"]


def _shipped(name):
    card = cards.read_card(name)
    if card is None:
        pytest.skip(f"{name} has no shipped weights yet")
    return card


def _export(name, tmp_path):
    model = kbnn.zoo.get(name, weights="pretrained", compile=False)
    result = export_c(model, tmp_path / name)
    return model, result, build_host(tmp_path / name, tmp_path / "build")


def _check(name, model, result, exe, images, labels, min_agreement):
    """C == reference (scores), and the C's argmax vs Keras'; returns (C accuracy, agreement)."""
    best, scores = run_host(exe, images)
    np.testing.assert_array_equal(scores, ref.scores(result.network, images))
    x = images.astype(np.float32) / np.float32(255)
    logits = model.predict(x, batch_size=500, verbose=0)
    keras_best = np.argmax(logits, axis=1)
    disagree = np.flatnonzero(best != keras_best)
    top2 = np.sort(logits, axis=1)[:, -2:]
    margins = [
        f"#{i}: C {best[i]} vs Keras {keras_best[i]} (Keras top-2 gap "
        f"{top2[i, 1] - top2[i, 0]:.3g})"
        for i in disagree[:10]
    ]
    agreement = 1 - len(disagree) / len(images)
    accuracy = float(np.mean(best == labels))
    print(
        f"\n{name}: {len(images)} digits, C scores == reference; C accuracy {accuracy:.4%}, "
        f"Keras accuracy {np.mean(keras_best == labels):.4%}, argmax agreement "
        f"{agreement:.4%}; disagreements: {margins or 'none'}"
    )
    assert agreement >= min_agreement, f"{name}: {agreement:.4%} agreement; {margins}"
    return accuracy, agreement


@pytest.mark.parametrize("name", BINARY)
def test_sample_digits_c_equals_reference_and_keras(name, tmp_path):
    _shipped(name)
    images, labels = mnist_sample()
    model, result, exe = _export(name, tmp_path)
    _check(name, model, result, exe, images[:300, :, :, None], labels[:300], 0.99)


@pytest.mark.slow
@pytest.mark.parametrize("name", BINARY)
def test_full_test_split_reproduces_the_card(name, tmp_path, mnist_available):
    """All 10,000 digits: bit-exact scores vs the reference, ≥ 99.9% argmax agreement with
    Keras, and the C's accuracy is the card's (within the disagreements)."""
    card = _shipped(name)
    from kbnn.data import mnist_arrays

    x, labels = mnist_arrays("test")
    images = np.rint(x * 255).astype(np.uint8)
    model, result, exe = _export(name, tmp_path)
    accuracy, agreement = _check(name, model, result, exe, images, labels, 0.999)
    assert abs(accuracy - card["measured_accuracy"]) <= 1 - agreement + 1e-9


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dorefanet_mnist", "ternarynet_mnist"])
def test_k_bit_and_ternary_models(name, tmp_path):
    """DoReFa (3-bit planes, int8 float last layer) and TWN (ternary weights, int8 activations
    for its float ones): bit-exact vs the reference; the int8 fixed point keeps Keras' argmax
    on ≥ 99% of 100 digits."""
    _shipped(name)
    images, labels = mnist_sample()
    model, result, exe = _export(name, tmp_path)
    _check(name, model, result, exe, images[:100, :, :, None], labels[:100], 0.99)
