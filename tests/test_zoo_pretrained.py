"""Shipped pretrained MNIST weights: load offline, match their card, reach their target."""

import json
import pathlib

import kbnn.zoo
from kbnn.zoo import cards
from kbnn.zoo import weights as W

import numpy as np
import pytest

# The accuracy floors on the full MNIST test split. The MLP has none there (optional);
# its 15-epoch recipe measured 98.56% (the paper's 99.04% took 1000 epochs with dropout), so its
# floor only guards against a broken file or definition.
TARGETS = {
    "binarynet_mnist": 0.990,
    "ternarynet_mnist": 0.993,
    "dorefanet_mnist": 0.990,
    "binarynet_mlp_mnist": 0.985,
    "binarynet_mcu_mnist": 0.990,
    "binarynet_s2_mnist": 0.9912,  # issue #14: binarynet_mnist's accuracy, with a cheaper stem
}
SHIPPED = [name for name in kbnn.zoo.list_models() if cards.read_card(name)]
PACKAGE_BUDGET_BYTES = 2 * 1024 * 1024


def test_binarynet_mnist_is_shipped():
    assert "binarynet_mnist" in SHIPPED  # the quickstart loads it


@pytest.mark.parametrize("name", SHIPPED)
def test_card_is_complete_and_matches_the_file(name):
    card = cards.read_card(name)
    path = cards.packaged_weights(name)
    assert path is not None and path.is_file()
    assert W.sha256_of(path) == card["sha256"]
    assert path.stat().st_size == card["size_bytes"]
    assert card["training_command"].startswith(f"kbnn train {name}")
    assert card["evaluated_on"].startswith("MNIST test split, all 10,000 images")
    assert kbnn.zoo.info(name, params=False)["weights"] == "package"


def test_package_data_is_small():
    total = sum(p.stat().st_size for p in cards.package_dir("weights").iterdir() if p.is_file())
    assert total < PACKAGE_BUDGET_BYTES


@pytest.mark.parametrize("name", SHIPPED)
def test_pretrained_reaches_the_card_accuracy_on_full_mnist_test(
    name, mnist_available, monkeypatch, tmp_path
):
    monkeypatch.setenv("KBNN_HOME", str(tmp_path))  # no cache involved: package data
    from kbnn.data import mnist_arrays

    model = kbnn.zoo.get(name, weights="pretrained")
    assert model.optimizer is not None and model.compiled_loss is not None
    images, labels = mnist_arrays("test")
    assert len(labels) == 10_000
    predictions = model.predict(images, batch_size=1000, verbose=0)
    accuracy = float(np.mean(np.argmax(predictions, axis=1) == labels))
    card = cards.read_card(name)
    assert accuracy == pytest.approx(card["measured_accuracy"], abs=1e-4)
    assert accuracy >= TARGETS[name], f"{name}: {accuracy:.4f} below the issue's target"
    assert not any(pathlib.Path(tmp_path).iterdir())  # nothing downloaded or cached


@pytest.mark.parametrize("name", SHIPPED)
def test_corrupted_package_weights_give_a_sha_error(name, tmp_path, monkeypatch):
    """A damaged copy of the package data is refused with the sha256 error, not loaded."""
    original = cards.packaged_weights(name)
    damaged = tmp_path / "weights"
    damaged.mkdir()
    data = bytearray(original.read_bytes())
    data[100] ^= 0x01
    (damaged / original.name).write_bytes(bytes(data))
    real_dir = cards.package_dir

    monkeypatch.setattr(
        cards, "package_dir", lambda kind: damaged if kind == "weights" else real_dir(kind)
    )
    with pytest.raises(W.WeightsIntegrityError, match="sha256 mismatch"):
        kbnn.zoo.get(name, weights="pretrained")


def test_cards_are_valid_json_with_known_fields():
    for path in cards.package_dir("cards").glob("*.json"):
        if path.name == "_registry.json":  # the zoo index `kbnn zoo list` reads, not a card
            continue
        card = json.loads(path.read_text())
        assert set(card) <= set(cards.CARD_FIELDS)
        assert card["name"] == path.stem


@pytest.mark.parametrize("name", SHIPPED)
def test_card_states_the_summary_and_unique_kernels_of_the_shipped_weights(name):
    """The card's cost figures are those of the shipped weights: the summary is recomputed, the
    unique-kernel counts re-derived with numpy from the loaded kernels' signs/levels."""
    from kbnn.kernels import integer_levels
    from kbnn.models import summary

    card = cards.read_card(name)
    model = kbnn.zoo.get(name, weights="pretrained", compile=False)
    expected = summary(model, print_fn=None).as_dict()
    totals, expected_totals = dict(card["summary"]["totals"]), dict(expected["totals"])
    assert totals.pop("params") == expected_totals.pop("params")
    assert totals == pytest.approx(expected_totals)
    assert [row["name"] for row in card["summary"]["layers"]] == [
        row["name"] for row in expected["layers"]
    ]
    assert card["summary"]["totals"]["memory_bytes"] < card["summary"]["totals"]["float32_bytes"]
    for row in card.get("unique_kernels", {}).get("layers", []):  # the MLP has no conv
        levels = np.sign(integer_levels(model.get_layer(row["layer"])))  # (kh, kw, in, out)
        kh, kw, cin, cout = levels.shape
        kernels = levels.transpose(2, 3, 0, 1).reshape(cin * cout, kh * kw)
        assert row["total"] == cin * cout
        assert row["unique"] == len({tuple(k) for k in kernels})
        canonical = {min(tuple(k), tuple(-k)) for k in kernels}
        assert row["unique_up_to_sign"] == len(canonical)
