"""kbnn on LCE's real aarch64 kernels: the shared runner under qemu-aarch64 (CI has both)."""

import os
import shutil
import subprocess
from pathlib import Path

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn.converters import arm64

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
RUNNER = Path(os.environ.get(arm64.RUNNER_ENV) or REPO.parent / "shared" / "arm64")
HAVE_QEMU = shutil.which("qemu-aarch64") is not None
HAVE_RUNNER = (RUNNER / arm64.RUNNER_BINARY).is_file()
needs_runner = pytest.mark.skipif(
    not (HAVE_QEMU and HAVE_RUNNER),
    reason=f"needs qemu-aarch64 (apt-get install -y qemu-user) and the aarch64 runner at {RUNNER}",
)


@pytest.fixture(scope="module")
def binarynet():
    from kbnn import zoo
    from kbnn.converters import convert
    from kbnn.data import mnist_sample, normalize_mnist

    model = zoo.get("binarynet_mnist", weights="pretrained")
    images, labels = mnist_sample()
    return model, convert(model).flatbuffer, normalize_mnist(images[:64]), labels[:64]


@needs_runner
def test_pretrained_binarynet_on_aarch64_agrees_with_keras_and_x86(binarynet):
    from kbnn.converters.verify import KERNEL_OPTIONS, keras_outputs, lce_outputs

    model, flatbuffer, x, labels = binarynet
    cost = arm64.run(flatbuffer, x, runner=RUNNER, reps=2)
    keras = keras_outputs(model, [x])[0]
    x86 = lce_outputs(flatbuffer, [x], **KERNEL_OPTIONS)[0]
    assert cost.outputs.shape == keras.shape == (64, 10)
    np.testing.assert_array_equal(cost.outputs.argmax(1), keras.argmax(1))
    # Same kernels, other ISA: only float summation order differs (softmax outputs in [0, 1]).
    assert np.max(np.abs(cost.outputs - x86)) < 1e-6
    assert np.mean(cost.outputs.argmax(1) == labels) > 0.95
    # A binary model of this size costs about a million instructions, not zero or a billion.
    assert 1e5 < cost.instructions < 1e7


@needs_runner
def test_per_operator_counts_cover_the_inference(binarynet):
    from kbnn.converters.flatbuffer import read_flatbuffer

    _, flatbuffer, x, _ = binarynet
    cost = arm64.run(flatbuffer, x[:1], runner=RUNNER, reps=1, per_op=True)
    names = [op.op for op in read_flatbuffer(flatbuffer).operators]
    assert [name for name, _ in cost.operators] == names
    assert all(count > 0 for _, count in cost.operators)
    total = sum(count for _, count in cost.operators)
    # The profiled invoke excludes only interpreter bookkeeping around the operators.
    assert 0.9 * cost.instructions < total <= 1.01 * cost.instructions


@needs_runner
def test_optimized_bgemm_is_cheaper_than_indirect_on_arm(binarynet):
    """KERNEL_OPTIONS follow ARM: LCE's default (optimized) BGEMM costs fewer instructions."""
    from kbnn.converters.verify import KERNEL_OPTIONS

    _, flatbuffer, x, _ = binarynet
    optimized = arm64.run(flatbuffer, x[:1], runner=RUNNER, reps=1, mode="optimized")
    indirect = arm64.run(flatbuffer, x[:1], runner=RUNNER, reps=1, mode="indirect")
    assert optimized.instructions < indirect.instructions
    assert not KERNEL_OPTIONS.get("use_indirect_bgemm", False)


@needs_runner
def test_pretrained_stride2_stem_on_aarch64_agrees_with_keras_and_x86(binarynet):
    """binarynet_s2_mnist (conv1 at stride 2, no pool1): aarch64 argmax equals Keras on 64 real
    digits, and its float first layer computes 4× fewer outputs than binarynet_mnist's."""
    _, reference_flatbuffer, x, labels = binarynet
    flatbuffer = _pretrained_agrees_on_aarch64("binarynet_s2_mnist", x, labels)
    first = arm64.run(flatbuffer, x[:1], runner=RUNNER, reps=1, per_op=True).operators[0]
    reference = arm64.run(reference_flatbuffer, x[:1], runner=RUNNER, reps=1, per_op=True)
    assert first[0] == reference.operators[0][0] == "CONV_2D"
    assert first[1] < reference.operators[0][1] / 3


@needs_runner
def test_pretrained_mlp_first_layer_runs_as_bit_planes_on_aarch64(binarynet):
    """binarynet_mlp_mnist's 8-bit fixed-point first layer is binary bit planes, not a float
    FULLY_CONNECTED: no float matrix op is left, and the aarch64 argmax equals Keras on 64 real
    digits with outputs equal to the x86 interpreter's."""
    from kbnn.converters.flatbuffer import read_flatbuffer

    _, _, x, labels = binarynet
    flatbuffer = _pretrained_agrees_on_aarch64("binarynet_mlp_mnist", x, labels)
    ops = read_flatbuffer(flatbuffer).op_counts()
    assert not {"FULLY_CONNECTED", "CONV_2D"} & set(ops) and ops["LceBconv2d"] == 4


def _pretrained_agrees_on_aarch64(name, x, labels) -> bytes:
    """Convert the pretrained zoo model `name`; its aarch64 argmax equals Keras' on `x`, its
    outputs equal the x86 interpreter's, and it is accurate on these digits. The flatbuffer."""
    from kbnn import zoo
    from kbnn.converters import convert
    from kbnn.converters.verify import KERNEL_OPTIONS, keras_outputs, lce_outputs

    model = zoo.get(name, weights="pretrained")
    flatbuffer = convert(model).flatbuffer
    cost = arm64.run(flatbuffer, x, runner=RUNNER, reps=1)
    keras = keras_outputs(model, [x])[0]
    x86 = lce_outputs(flatbuffer, [x], **KERNEL_OPTIONS)[0]
    np.testing.assert_array_equal(cost.outputs.argmax(1), keras.argmax(1))
    assert np.max(np.abs(cost.outputs - x86)) < 1e-6
    assert np.mean(cost.outputs.argmax(1) == labels) > 0.95
    return flatbuffer


@pytest.mark.slow
@needs_runner
def test_cli_bench_arm64_prints_ratio_and_agreement(binarynet, tmp_path):
    _, flatbuffer, _, _ = binarynet
    path = tmp_path / "m.tflite"
    path.write_bytes(flatbuffer)
    result = subprocess.run(
        [
            "python",
            "-m",
            "kbnn",
            "bench",
            str(path),
            "--target",
            "arm64",
            "--runner",
            str(RUNNER),
            "--model",
            "binarynet_mnist",
            "--samples",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "float32 twin" in result.stdout and "×" in result.stdout
    assert "aarch64 vs Keras: argmax agreement 100.00%" in result.stdout


def test_cli_without_runner_says_how_to_fix(tmp_path, monkeypatch):
    from kbnn.cli import main

    monkeypatch.delenv(arm64.RUNNER_ENV, raising=False)
    path = tmp_path / "m.tflite"
    path.write_bytes(b"0000TFL3" + bytes(64))
    if HAVE_QEMU:
        code = main(["bench", str(path), "--target", "arm64"])
        assert code == 2
    with pytest.raises(arm64.Arm64Unavailable, match="--runner DIR or set KBNN_ARM64_RUNNER"):
        arm64.find_runner(None)
    with pytest.raises(arm64.Arm64Unavailable, match="has no lce_run_full.aarch64"):
        arm64.find_runner(tmp_path)


def test_missing_qemu_names_the_package(monkeypatch):
    monkeypatch.setattr(arm64.shutil, "which", lambda name: None)
    with pytest.raises(arm64.Arm64Unavailable, match="apt-get install -y qemu-user"):
        arm64.check_qemu()


@pytest.mark.skipif(not HAVE_RUNNER, reason=f"needs the aarch64 runner at {RUNNER}")
def test_elf_symbol_reads_the_marker_like_nm():
    address = arm64.elf_symbol(RUNNER / arm64.RUNNER_BINARY, "lce_marker")
    assert address is not None and address > 0
    nm = shutil.which("nm")
    if nm:
        listing = subprocess.run(
            [nm, str(RUNNER / arm64.RUNNER_BINARY)], capture_output=True, text=True
        ).stdout
        found = [line.split()[0] for line in listing.splitlines() if line.endswith(" lce_marker")]
        if found:
            assert int(found[0], 16) == address
    assert arm64.elf_symbol(RUNNER / arm64.RUNNER_BINARY, "no_such_symbol_kbnn") is None


@pytest.mark.skipif(not (HAVE_RUNNER and shutil.which("gcc")), reason="needs gcc and the runner")
def test_plugin_is_built_once_into_the_cache(tmp_path):
    first = arm64.plugin(RUNNER, cache_dir=tmp_path)
    assert first.is_file() and first.parent == tmp_path
    stamp = first.stat().st_mtime_ns
    assert arm64.plugin(RUNNER, cache_dir=tmp_path) == first
    assert first.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no partial files left
