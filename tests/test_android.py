"""kbnn.apps.android / `kbnn export-android`: the assets the Android demo reads, checked by its JVM core."""

import contextlib
import hashlib
import io
import json
import pathlib
import shutil
import subprocess

import kbnn
from kbnn.apps import android
from kbnn.cli import main
from kbnn.converters.interpreters import float_interpreter
from kbnn.data import mnist_sample, normalize_mnist
from kbnn.errors import UsageError

import numpy as np
import pytest
import tensorflow as tf

REPO = pathlib.Path(__file__).resolve().parents[1]
CORE = REPO / "android_demo" / "core"
RESOURCES = CORE / "src" / "test" / "resources"
SAMPLES = 100

needs_converters = pytest.mark.skipif(
    not hasattr(kbnn.converters, "convert")
    or not hasattr(kbnn.converters, "float_twin_flatbuffer"),
    reason="kbnn.converters.convert / float_twin_flatbuffer not available yet",
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One export through the CLI of a tiny larq model saved as .keras (conversion is slow:
    the tests that use it are marked slow, outside the fast lane)."""
    if not hasattr(kbnn.converters, "convert"):
        pytest.skip("kbnn.converters.convert not available yet")
    root = tmp_path_factory.mktemp("export")
    model_path = root / "tiny.keras"
    android.example_model(seed=1).save(model_path)
    out = root / "assets"
    out.mkdir()
    # an earlier export of another model into the same folder: its flatbuffer must go
    (out / "old.tflite").write_bytes(b"old")
    (out / "model.json").write_text(json.dumps({"models": [{"file": "old.tflite"}]}))
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(
            [
                "export-android",
                "--model",
                str(model_path),
                "--out",
                str(out),
                "--samples",
                str(SAMPLES),
                "--name",
                "tiny",
            ]
        )
    assert code == 0
    return out, json.loads((out / "model.json").read_text()), stdout.getvalue(), model_path


@pytest.fixture(scope="session")
def jvm_core(tmp_path_factory):
    """The app's pure JVM core compiled with javac, or skip when there is no JDK."""
    javac, java = shutil.which("javac"), shutil.which("java")
    if not (javac and java):
        pytest.skip("no JDK (javac/java) on this machine")
    classes = tmp_path_factory.mktemp("jvm-core")
    sources = sorted(str(p) for p in (CORE / "src" / "main" / "java").rglob("*.java"))
    subprocess.run(
        [javac, "--release", "8", "-encoding", "UTF-8", "-d", str(classes), *sources],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return java, classes


def validate_with_jvm(jvm_core, assets_dir):
    java, classes = jvm_core
    return subprocess.run(
        [java, "-cp", str(classes), "org.kbnn.demo.core.ValidateAssets", str(assets_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
@needs_converters
def test_export_writes_flatbuffers_labels_and_model_json(exported):
    out, spec, printed, _ = exported
    assert sorted(p.name for p in out.iterdir()) == [
        "labels.txt",
        "model.json",
        "tiny.tflite",
        "tiny_float.tflite",
    ]  # old.tflite removed
    assert (out / "labels.txt").read_text() == "".join(f"{i}\n" for i in range(10))
    assert "exported 'tiny'" in printed and "tiny.tflite" in printed
    assert spec["format"] == "kbnn-android-model" and spec["version"] == 1
    assert spec["input"]["shape"] == [1, 28, 28, 1]
    assert spec["input"]["normalization"] == {"scale": 255.0, "mean": 0.0, "std": 1.0}
    assert spec["input"]["preprocessing"] == {
        "method": "mnist_centre_of_mass",
        "digit_box": 20,
        "ink_threshold": 0,
    }
    assert spec["output"] == {"shape": [1, 10], "dtype": "float32", "activation": "softmax"}
    assert spec["labels"] == [str(i) for i in range(10)]


@pytest.mark.slow
@needs_converters
def test_model_entries_describe_the_files(exported):
    out, spec, _, model_path = exported
    binary, twin = spec["models"]
    assert (binary["role"], twin["role"]) == ("binary", "float")
    for entry in spec["models"]:
        data = (out / entry["file"]).read_bytes()
        assert entry["bytes"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert data[4:8] == b"TFL3"
    assert binary["requires_lce"] and binary["ops"]["LceBconv2d"] >= 1
    assert not twin["requires_lce"] and not any(op.startswith("Lce") for op in twin["ops"])
    assert binary["bytes"] < twin["bytes"]
    model = tf.keras.models.load_model(model_path, compile=False)
    # larq's profile counts batch norm as deployed: 2 values per channel (scale, offset), not 4
    batch_norm = sum(
        int(np.prod(w.shape))
        for layer in model.layers
        if isinstance(layer, tf.keras.layers.BatchNormalization)
        for w in layer.weights
    )
    assert sum(binary["weight_bits"].values()) == model.count_params() - batch_norm // 2
    # 1-bit: the binary conv (3·3·32·32) and binary dense (1152·10) kernels
    assert binary["weight_bits"]["1"] == 3 * 3 * 32 * 32 + 6 * 6 * 32 * 10
    assert "not a trained float model" in twin["note"]


@pytest.mark.slow
@needs_converters
def test_recorded_accuracy_matches_independent_evaluations(exported):
    out, spec, _, model_path = exported
    images, labels = mnist_sample()
    x, y = normalize_mnist(images[:SAMPLES]), labels[:SAMPLES]
    binary, twin = spec["models"]
    # Keras on the saved model: LCE's flatbuffer computes the same function
    keras_top1 = np.mean(
        np.argmax(tf.keras.models.load_model(model_path).predict(x, verbose=0), -1) == y
    )
    assert binary["accuracy"]["samples"] == SAMPLES
    assert binary["accuracy"]["top1"] == pytest.approx(keras_top1, abs=2 / SAMPLES)
    # the float twin through LiteRT (kbnn.converters.interpreters), not LCE's interpreter
    interpreter = float_interpreter((out / twin["file"]).read_bytes())
    interpreter.allocate_tensors()
    inp, outp = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    hits = 0
    for image, label in zip(x, y, strict=True):
        interpreter.set_tensor(inp["index"], image[None])
        interpreter.invoke()
        hits += int(np.argmax(interpreter.get_tensor(outp["index"])) == label)
    assert twin["accuracy"]["top1"] == pytest.approx(hits / SAMPLES, abs=1e-9)


@pytest.mark.slow
@needs_converters
def test_exported_assets_pass_the_jvm_validator(exported, jvm_core, tmp_path):
    out, spec, _, _ = exported
    result = validate_with_jvm(jvm_core, out)
    assert result.returncode == 0, result.stderr
    assert "passes the app's model.json validator" in result.stdout
    assert "binary model: tiny.tflite" in result.stdout

    tampered = tmp_path / "tampered"
    shutil.copytree(out, tampered)
    data = bytearray((tampered / "tiny.tflite").read_bytes())
    data[-1] ^= 0xFF
    (tampered / "tiny.tflite").write_bytes(bytes(data))
    broken = json.loads((tampered / "model.json").read_text())
    broken["input"]["shape"] = [1, 28, 28, 3]
    (tampered / "model.json").write_text(json.dumps(broken))
    result = validate_with_jvm(jvm_core, tampered)
    assert result.returncode == 1
    assert (
        "input.shape: expected [1, height, width, 1] (one grayscale image), got [1, 28, 28, 3]"
        in result.stderr
    )


def test_committed_example_assets_are_consistent():
    example = RESOURCES / "assets_example"
    spec = json.loads((example / "model.json").read_text())
    total = 0
    for entry in spec["models"]:
        data = (example / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        total += len(data)
    assert total < 200_000  # keep the repository small
    assert (example / "labels.txt").read_text().splitlines() == spec["labels"]


def test_committed_example_assets_pass_the_jvm_validator(jvm_core):
    result = validate_with_jvm(jvm_core, RESOURCES / "assets_example")
    assert result.returncode == 0, result.stderr
    assert "binary model: tiny_bnn_mnist.tflite" in result.stdout


def _assert_same_up_to_rounding(committed, fresh, where="golden"):
    """Structure, strings, ints and bools exactly; floats to 1e-12 relative: the golden was
    written on one machine, and libm's exp/log may differ in the last bit on another."""
    if isinstance(committed, dict):
        assert isinstance(fresh, dict) and committed.keys() == fresh.keys(), where
        for key in committed:
            _assert_same_up_to_rounding(committed[key], fresh[key], f"{where}.{key}")
    elif isinstance(committed, list):
        assert isinstance(fresh, list) and len(committed) == len(fresh), where
        for index, (a, b) in enumerate(zip(committed, fresh, strict=True)):
            _assert_same_up_to_rounding(a, b, f"{where}[{index}]")
    elif isinstance(committed, float) or isinstance(fresh, float):
        assert fresh == pytest.approx(committed, rel=1e-12, abs=1e-300), where
    else:
        assert type(committed) is type(fresh) and committed == fresh, where


def test_decoding_golden_is_current():
    committed = json.loads((RESOURCES / "golden" / android.DECODING_GOLDEN).read_text())
    _assert_same_up_to_rounding(committed, json.loads(json.dumps(android.decoding_golden())))


def test_golden_comparison_tolerates_last_bit_but_not_real_changes():
    golden = {"p": [0.1, 2.0], "top3": [3, 1, 2], "name": "x"}
    last_bit = {"p": [float(np.nextafter(0.1, 1.0)), 2.0], "top3": [3, 1, 2], "name": "x"}
    _assert_same_up_to_rounding(golden, last_bit)
    for changed in (
        {**golden, "p": [0.1000001, 2.0]},
        {**golden, "top3": [1, 3, 2]},
        {**golden, "name": "y"},
        {"p": [0.1], "top3": [3, 1, 2], "name": "x"},
    ):
        with pytest.raises(AssertionError):
            _assert_same_up_to_rounding(golden, changed)


def test_softmax_detection():
    assert android._is_softmax(np.array([[0.2, 0.8], [1.0, 0.0]]))
    assert not android._is_softmax(np.array([[2.0, -1.0]]))
    assert not android._is_softmax(np.array([[0.7, 0.7]]))


def _model(input_shape, outputs=10):
    inputs = tf.keras.Input(input_shape)
    x = tf.keras.layers.Flatten()(inputs)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(outputs)(x))


@pytest.mark.parametrize(
    ("model", "kwargs", "message"),
    [
        (
            lambda: _model((28, 28, 3)),
            {},
            r"one grayscale image of shape \(H, W, 1\); model .* takes \(28, 28, 3\)",
        ),
        (lambda: _model((784,)), {}, r"takes \(784,\)"),
        (
            lambda: _model((28, 28, 1)),
            {"labels": ["a", "b"]},
            "labels: 2 given, the model has 10 outputs",
        ),
        (lambda: _model((28, 28, 1)), {"name": "../evil"}, "must be a plain file name stem"),
        (lambda: _model((28, 28, 1)), {"samples": -1}, "samples: expected an integer >= 0"),
        (lambda: _model((28, 28, 1)), {"std": 0.0}, "std: expected a finite number > 0"),
    ],
)
def test_rejects_what_the_app_cannot_use(tmp_path, model, kwargs, message):
    with pytest.raises(UsageError, match=message):
        android.export_android(model(), str(tmp_path), **kwargs)
    assert not list(tmp_path.iterdir())


def test_cli_reports_a_missing_model_in_one_line(tmp_path, capsys):
    assert (
        main(["export-android", "--model", str(tmp_path / "nope.keras"), "--out", str(tmp_path)])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "kbnn export-android: error: model file" in err and "does not exist" in err


def test_cli_default_out_needs_the_repo_root(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["export-android"]) == 2
    assert "run from the repo root or pass --out" in capsys.readouterr().err
