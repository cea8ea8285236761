"""`kbnn zoo`, `kbnn train`, `kbnn evaluate` (in-process through kbnn.cli.main)."""

import csv
import json

import kbnn.zoo
from kbnn.cli import main
from kbnn.zoo import cards

import pytest


def test_zoo_list_prints_every_model(capsys):
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[0].split() == ["name", "dataset", "bits", "expected", "measured", "weights"]
    assert len(lines) == 1 + len(kbnn.zoo.list_models())
    row = next(line for line in lines if line.startswith("binarynet_mnist "))
    card = cards.read_card("binarynet_mnist")
    if card:
        assert f"{100 * card['measured_accuracy']:.2f}%" in row and row.endswith("package")


def test_zoo_info_prints_the_card(capsys):
    assert main(["zoo", "info", "binarynet_mnist"]) == 0
    out = capsys.readouterr().out
    assert "Binarized Neural Networks" in out and "params: 858,824 (857,376 binary)" in out
    card = cards.read_card("binarynet_mnist")
    if card:
        assert card["sha256"] in out and card["training_command"] in out
        totals = card["summary"]["totals"]
        assert (
            f"memory: {totals['memory_bytes']:,} B deployed vs {totals['float32_bytes']:,} B "
            f"float32 ({totals['float32_bytes'] / totals['memory_bytes']:.1f}x smaller)"
        ) in out
        conv2 = next(x for x in card["unique_kernels"]["layers"] if x["layer"] == "conv2")
        assert f"unique kernels conv2: {conv2['unique']:,}/2,048 (" in out
        assert '"layers"' not in out  # the full summary only with --json
    assert main(["zoo", "info", "quicknet_small", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["input_shape"] == [224, 224, 3] and info["weights"] is None


def test_zoo_info_unknown_model_is_one_line_error(capsys):
    assert main(["zoo", "info", "resnet_nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown zoo model 'resnet_nope'" in err


@pytest.mark.slow
def test_train_writes_checkpoint_logs_and_curves_then_evaluates(tmp_path, capsys, mnist_available):
    out_dir = tmp_path / "run"
    code = main(
        [
            "train",
            "binarynet_mnist",
            "--epochs",
            "2",
            "--steps-per-epoch",
            "3",
            "--batch-size",
            "32",
            "--validation-size",
            "200",
            "--output",
            str(out_dir),
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "test accuracy:" in printed
    for name in (
        "model.keras",
        "training_log.csv",
        "training_curves.png",
        "run.json",
        "weight_histograms.png",
    ):
        assert (out_dir / name).is_file(), name
    for png in ("training_curves.png", "weight_histograms.png"):
        assert (out_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any((out_dir / "tensorboard").rglob("events.out.tfevents.*"))
    with open(out_dir / "training_log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(rows[0])
    run = json.loads((out_dir / "run.json").read_text())
    assert run["epochs"] == 2 and run["steps_per_epoch"] == 3 and run["optimizer"] == "adam"
    assert run["strategy"] == "default" and run["replicas"] == 1
    assert run["global_batch_size"] == 32 and run["lr_scaling"] == "sqrt"
    assert run["learning_rate"] == pytest.approx(0.01 * (32 / 100) ** 0.5)  # recipe: 0.01 @ 100
    # the latent-weight flip ratio of every binary kernel is logged, as a fraction per step
    flips = {
        key: [float(row[key]) for row in rows] for key in rows[0] if key.startswith("flip_ratio/")
    }
    assert set(flips) == {
        "flip_ratio/conv1",
        "flip_ratio/conv2",
        "flip_ratio/dense1",
        "flip_ratio/dense2",
    }
    assert all(0.0 <= v <= 1.0 for values in flips.values() for v in values)
    assert any(v > 0 for values in flips.values() for v in values)  # lr 0.006: signs do flip

    assert main(["evaluate", str(out_dir / "model.keras")]) == 0
    line = capsys.readouterr().out.strip()
    accuracy = float(line.split("test accuracy ")[1].split()[0])
    assert 0.0 <= accuracy <= 1.0 and "10,000 images" in line


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["train", "binarynet_mnist", "--per-replica-batch-size", "-1"],
            "per_replica_batch_size: expected a positive integer, got -1",
        ),
        (["train", "binarynet_mnist", "--epochs", "0"], "epochs: expected a positive integer"),
        (["train", "binarynet_mnist", "--batch-size", "0"], "batch_size: expected a positive"),
        (["evaluate", "no_such_model_or_file"], "neither a zoo model"),
    ],
)
def test_bad_arguments_are_one_line_errors(argv, message, capsys, tmp_path):
    if argv[0] == "train":
        argv = [*argv, "--output", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--optimizer", "sgd"], "invalid choice: 'sgd'"),
        (["--strategy", "ps"], "invalid choice: 'ps'"),
        (["--backup-freq", "0"], "--backup-freq: must be 'epoch' or a positive number of steps"),
        (["--mixed-precision", "float8"], "invalid choice: 'float8'"),
    ],
)
def test_train_rejects_bad_choices_before_loading_anything(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "binarynet_mnist", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


@pytest.mark.slow
def test_evaluate_pretrained_name_prints_the_card_accuracy(capsys, mnist_available):
    card = cards.read_card("binarynet_mnist")
    assert main(["evaluate", "binarynet_mnist"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("binarynet_mnist: test accuracy ")
    assert float(line.split("test accuracy ")[1].split()[0]) == pytest.approx(
        card["measured_accuracy"], abs=1e-4
    )
