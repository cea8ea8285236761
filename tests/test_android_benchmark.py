"""android_demo/benchmark.sh against a stand-in `adb` that answers like a phone would.

The stand-in prints lce_benchmark_model's real output format (TFLite benchmark tool: the
"count=… min=… avg=… median=… p95=…" lines and "Inference timings in us: …"), with timings
that depend on the model and thread count, so the test checks the script's commands, parsing
and table rather than a device.
"""

import pathlib
import shutil
import subprocess

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "android_demo" / "benchmark.sh"

FAKE_ADB = r"""#!/usr/bin/env bash
echo "$*" >> "$ADB_LOG"
case "$1" in
  get-state) echo "${FAKE_STATE:-device}"; exit 0 ;;
  push) exit 0 ;;
  shell)
    shift
    case "$*" in
      "getprop ro.product.cpu.abi") echo "${FAKE_ABI:-arm64-v8a}" ;;
      "getprop ro.product.model") echo "Pixel Test" ;;
      *lce_benchmark_model\ --graph=*)
        threads=$(echo "$*" | sed 's/.*--num_threads=\([0-9]*\).*/\1/')
        case "$*" in *float*) base=8000 ;; *) base=1000 ;; esac
        avg=$((base / threads))
        [ -n "$FAKE_FAIL" ] && { echo "ERROR: Didn't find op for builtin opcode"; exit 1; }
        echo "INFO: STARTING!"
        echo "INFO: Num threads: [$threads]"
        echo "INFO: count=5 first=$((avg * 3)) curr=$avg min=$avg max=$((avg * 3)) avg=$((avg * 2)) std=10"
        if [ -n "$FAKE_OLD_TOOL" ]; then
          echo "INFO: count=50 first=$avg curr=$avg min=$((avg - 10)) max=$((avg + 90)) avg=$avg std=12"
        else
          echo "INFO: count=50 first=$avg curr=$avg min=$((avg - 10)) max=$((avg + 90)) avg=$avg std=12 p5=$((avg - 5)) median=$((avg - 1)) p95=$((avg + 40))"
        fi
        echo "INFO: Inference timings in us: Init: 2100, First inference: $((avg * 3)), Warmup (avg): $((avg * 2)), Inference (avg): $avg"
        ;;
      *) exit 0 ;;
    esac ;;
esac
"""


@pytest.fixture
def phone(tmp_path):
    if not shutil.which("bash"):
        pytest.skip("bash not available")
    adb = tmp_path / "adb"
    adb.write_text(FAKE_ADB)
    adb.chmod(0o755)
    binary = tmp_path / "lce_benchmark_model_android_arm64"
    binary.write_bytes(b"\x7fELF fake")
    models = []
    for name, size in (("digits.tflite", 7660), ("digits_float.tflite", 87868)):
        path = tmp_path / name
        path.write_bytes(b"\0" * size)
        models.append(str(path))
    env = {
        "PATH": "/usr/bin:/bin",
        "ADB": str(adb),
        "ADB_LOG": str(tmp_path / "adb.log"),
        "LCE_BENCHMARK_MODEL": str(binary),
    }
    return env, models, tmp_path / "adb.log"


def run(env, *args, **extra):
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_prints_a_table_for_each_model_and_thread_count(phone):
    env, models, log = phone
    result = run(env, *models)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "device: Pixel Test (arm64-v8a), XNNPACK false, 50 runs"
    assert lines[1].split() == [
        "model",
        "size",
        "threads",
        "avg",
        "ms",
        "median",
        "ms",
        "p95",
        "ms",
        "min",
        "ms",
    ]
    rows = [line.split() for line in lines[2:]]
    assert rows == [
        ["digits.tflite", "7.5", "KiB", "1", "1.000", "0.999", "1.040", "0.990"],
        ["digits.tflite", "7.5", "KiB", "4", "0.250", "0.249", "0.290", "0.240"],
        ["digits_float.tflite", "85.8", "KiB", "1", "8.000", "7.999", "8.040", "7.990"],
        ["digits_float.tflite", "85.8", "KiB", "4", "2.000", "1.999", "2.040", "1.990"],
    ]
    calls = log.read_text()
    assert "--num_threads=4 --num_runs=50 --warmup_runs=5 --use_xnnpack=false" in calls
    assert (
        "push" in calls and "chmod 755 /data/local/tmp/kbnn_benchmark/lce_benchmark_model" in calls
    )


def test_options_and_older_tool_without_percentiles(phone):
    env, models, log = phone
    result = run(env, "-t", "2", "-r", "20", "-x", models[0], FAKE_OLD_TOOL="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].split() == [
        "digits.tflite",
        "7.5",
        "KiB",
        "2",
        "0.500",
        "-",
        "-",
        "0.490",
    ]
    assert "--num_threads=2 --num_runs=20 --warmup_runs=5 --use_xnnpack=true" in log.read_text()


@pytest.mark.parametrize(
    ("args", "extra", "message"),
    [
        (lambda m: ["missing.tflite"], {}, "model file 'missing.tflite' not found"),
        (
            lambda m: m,
            {"FAKE_STATE": "unauthorized"},
            "no phone ready (adb get-state: 'unauthorized')",
        ),
        (lambda m: m, {"FAKE_ABI": "armeabi-v7a"}, "the phone's ABI is 'armeabi-v7a'"),
        (
            lambda m: m,
            {"FAKE_FAIL": "1"},
            "lce_benchmark_model failed on digits.tflite with 1 thread(s)",
        ),
        (
            lambda m: m,
            {"LCE_BENCHMARK_MODEL": "/nowhere/lce"},
            "benchmark binary '/nowhere/lce' not found",
        ),
        (lambda m: ["-r", "zero", *m], {}, "-r needs a positive integer"),
        (lambda m: ["-t", "1 x", *m], {}, "-t needs positive thread counts"),
    ],
)
def test_explains_what_is_wrong(phone, args, extra, message):
    env, models, _ = phone
    result = run(env, *args(models), **extra)
    assert result.returncode != 0
    assert message in result.stderr
