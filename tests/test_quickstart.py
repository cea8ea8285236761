"""`kbnn quickstart` as a user runs it: offline, pretrained weights, real numbers."""

import os

import kbnn  # noqa: F401

import pytest


@pytest.mark.slow
def test_quickstart_command_offline(tmp_path, run_fresh_python):
    env = {k: v for k, v in os.environ.items() if k not in ("TFDS_DATA_DIR", "TF_USE_LEGACY_KERAS")}
    env["KBNN_HOME"] = str(tmp_path / "home")  # nothing cached: weights must come from the package
    out = tmp_path / "quick.tflite"
    result = run_fresh_python.completed(
        "-m", "kbnn", "quickstart", "-o", out, timeout=600, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    values = dict(line.split("  ", 1) for line in result.stdout.splitlines() if "  " in line)
    values = {k.strip(): v.strip() for k, v in values.items()}

    def percent(name):
        return float(values[name].rstrip("%")) / 100

    assert percent("Keras accuracy") >= 0.98
    assert percent("Keras vs LCE argmax agreement") >= 0.99
    assert abs(percent("LCE accuracy") - percent("Keras accuracy")) <= 0.01
    float_bytes = int(values["float32 TFLite twin"].split()[0].replace(",", ""))
    binary_bytes = int(values["kbnn LCE flatbuffer"].split()[0].replace(",", ""))
    assert float_bytes / binary_bytes >= 20
    assert out.read_bytes()[4:8] == b"TFL3"
    assert out.stat().st_size == binary_bytes
