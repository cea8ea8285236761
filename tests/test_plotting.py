"""kbnn.plotting: every plot renders a real, non-blank image (Agg), written atomically."""

import csv

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import layers as kl
from kbnn.models import summary
from kbnn.plotting import (
    _panel_of,
    _read_history,
    plot_memory_energy,
    plot_training_curves,
    plot_weight_histograms,
)

import matplotlib
import matplotlib.image
import numpy as np
import pytest
import tensorflow as tf


def _model():
    return tf.keras.Sequential(
        [
            tf.keras.Input((8, 8, 1)),
            kl.BinaryConv2D(8, 3, input_quantizer=None, name="conv1"),
            tf.keras.layers.BatchNormalization(name="bn1"),
            kl.TernaryConv2D(8, 3, name="conv2"),
            tf.keras.layers.Flatten(),
            kl.DorefaDense(10, bit_w=2, bit_a=2, name="dense"),
        ],
        name="tiny",
    )


def _assert_image(path, min_bytes=5000):
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > min_bytes
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels[..., :3].std() > 0.05  # not a blank canvas
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def test_memory_energy_chart(tmp_path):
    backend = matplotlib.get_backend()
    path = plot_memory_energy(summary(_model(), print_fn=None), tmp_path / "chart.png")
    _assert_image(path)
    assert plot_memory_energy(_model(), tmp_path / "from_model.png").stat().st_size > 5000
    assert matplotlib.get_backend() == backend  # no global backend switch


def test_weight_histograms(tmp_path):
    _assert_image(plot_weight_histograms(_model(), tmp_path / "hist.png"))
    with pytest.raises(ValueError, match="no layer with a quantized kernel"):
        plot_weight_histograms(
            tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(2)]),
            tmp_path / "none.png",
        )


def test_training_curves_from_history_and_csv(tmp_path):
    history = {
        "loss": [2.0, 1.2, 0.8],
        "accuracy": [0.3, 0.6, 0.8],
        "val_loss": [2.1, 1.4, 1.0],
        "val_accuracy": [0.3, 0.5, 0.7],
        "flip_ratio/conv1": [0.02, 0.01, 0.004],
        "lr": [1e-2, 5e-3, 1e-3],
    }
    _assert_image(plot_training_curves(history, tmp_path / "curves.png"))
    log = tmp_path / "log.csv"
    with open(log, "w", newline="") as handle:  # the layout tf.keras.callbacks.CSVLogger writes
        writer = csv.writer(handle)
        writer.writerow(["epoch", *history])
        for epoch in range(3):
            writer.writerow([epoch, *(values[epoch] for values in history.values())])
    _assert_image(plot_training_curves(str(log), tmp_path / "from_csv.png"))


def test_training_curves_skip_na_columns_and_validation_flip_ratio(tmp_path):
    """CSVLogger without validation data writes val_ columns of "NA"; evaluation never moves
    the kernels, so val_flip_ratio is 0 by construction: neither is plotted."""
    log = tmp_path / "log.csv"
    log.write_text(
        "epoch,flip_ratio/conv1,loss,val_flip_ratio/conv1,val_loss\n"
        "0,0.03,2.5,NA,NA\n1,0.01,0.9,NA,NA\n"
    )
    assert _read_history(log) == {"flip_ratio/conv1": [0.03, 0.01], "loss": [2.5, 0.9]}
    history = {
        "loss": [1.0, 0.5],
        "val_loss": [1.1, float("nan")],
        "val_flip_ratio/conv1": [0.0, 0.0],
    }
    curves = _read_history(history)
    assert list(curves) == ["loss", "val_loss"] and curves["val_loss"][0] == 1.1
    _assert_image(plot_training_curves(log, tmp_path / "na.png"))


def test_training_curves_from_a_real_fit(tmp_path):
    model = tf.keras.Sequential([tf.keras.Input((4,)), kl.BinaryDense(3, input_quantizer=None)])
    model.compile(
        "adam",
        tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    history = model.fit(x, np.arange(16) % 3, epochs=2, verbose=0)
    _assert_image(plot_training_curves(history, tmp_path / "fit.png"))


@pytest.mark.parametrize(
    "key, panel",
    [
        ("loss", "loss"),
        ("val_loss", "loss"),
        ("sparse_categorical_accuracy", "accuracy"),
        ("val_accuracy", "accuracy"),
        ("flip_ratio/conv1", "flip ratio"),
        ("lr", "learning rate"),
        ("top5", "other"),
    ],
)
def test_curve_panels(key, panel):
    assert _panel_of(key) == panel


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unsupported image format 'xyz'"):
        plot_training_curves({"loss": [1.0]}, tmp_path / "curves.xyz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        plot_training_curves({"loss": [1.0]}, tmp_path / "missing" / "curves.png")
    with pytest.raises(FileNotFoundError, match="training log"):
        plot_training_curves(tmp_path / "no.csv", tmp_path / "curves.png")
    with pytest.raises(ValueError, match="no metric values"):
        plot_training_curves({"loss": []}, tmp_path / "curves.png")
    with pytest.raises(ValueError, match="history_or_csv"):
        plot_training_curves(42, tmp_path / "curves.png")
    assert list(tmp_path.iterdir()) == []
