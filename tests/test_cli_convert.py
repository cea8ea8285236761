"""`kbnn convert`, `kbnn inspect` and `kbnn bench` (in-process via kbnn.cli.main, one subprocess)."""

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import converters
from kbnn import layers as kl
from kbnn.cli import main

import numpy as np
import pytest
import tensorflow as tf


def _model():
    model = tf.keras.Sequential(
        [
            tf.keras.Input((6, 6, 32)),
            kl.BinaryConv2D(16, 3, padding="same", name="conv"),
            tf.keras.layers.BatchNormalization(name="bn"),
            tf.keras.layers.Flatten(),
            kl.BinaryDense(10, name="dense"),
        ],
        name="tiny",
    )
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if hasattr(layer, "kernel"):
            layer.kernel.assign(rng.uniform(-1, 1, layer.kernel.shape))
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cli")
    path = directory / "tiny.keras"
    model = _model()
    model.save(path)
    converters.convert(model).save(directory / "api.tflite")
    return directory, path


def test_convert_writes_report_verification_twin_and_c_array(saved, capsys):
    directory, model_path = saved
    out = directory / "tiny.tflite"
    code = main(
        [
            "convert",
            str(model_path),
            "-o",
            str(out),
            "--verify",
            "40",
            "--float-twin",
            str(directory / "twin.tflite"),
            "--c-array",
            "tiny_model",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "LCE conversion" in captured.err  # the progress bar's stage names
    assert "lowering" in captured.out and "binary conv" in captured.out
    assert "PASS: 40 samples" in captured.out
    assert converters.inspect(out).op_counts["LceBconv2d"] == 2
    twin = (directory / "twin.tflite").read_bytes()
    assert not converters.inspect(twin).custom_ops
    assert (directory / "tiny_model.h").exists() and (directory / "tiny_model.cc").exists()


def test_convert_failure_writes_nothing(tmp_path, capsys):
    inputs = tf.keras.Input((5, 3))
    model = tf.keras.Model(inputs, tf.keras.layers.LSTM(2, name="recurrent")(inputs))
    model.save(tmp_path / "rnn.keras")
    out = tmp_path / "rnn.tflite"
    assert main(["convert", str(tmp_path / "rnn.keras"), "-o", str(out), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "'recurrent'" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rnn.keras"]
    assert main(["convert", str(tmp_path / "absent.keras"), "-o", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert (
        main(["convert", str(tmp_path / "rnn.keras"), "-o", str(out), "--c-array", "bad-name"]) == 2
    )
    assert "name" in capsys.readouterr().err


def test_inspect_and_bench(saved, capsys, tmp_path):
    directory, model_path = saved
    out = directory / "api.tflite"
    assert main(["inspect", str(out), "--tensors"]) == 0
    text = capsys.readouterr().out
    assert "LceBconv2d" in text and "custom ops:" in text and "const bytes" in text
    assert (
        main(["bench", str(out), "--model", str(model_path), "--runs", "3", "--threads", "2"]) == 0
    )
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith(("LCE", "float twin"))]
    assert len(rows) == 4  # LCE and the float twin, 1 and 2 threads
    assert "reference" in table  # the honest x86 note
    (tmp_path / "junk.tflite").write_bytes(b"not a flatbuffer at all")
    assert main(["inspect", str(tmp_path / "junk.tflite")]) == 2
    assert "not a TFLite flatbuffer" in capsys.readouterr().err


@pytest.mark.slow
def test_inspect_subprocess(saved, run_fresh_python):
    out = saved[0] / "api.tflite"
    result = run_fresh_python.completed("-m", "kbnn", "inspect", out, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "LceBconv2d" in result.stdout
