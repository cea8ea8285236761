"""The Cortex-M4 firmware path of `kbnn export-c`: the generated C built with arm-none-eabi-gcc
-Os and run under qemu-system-arm (mps2-an386, semihosting) gives the integer reference's
scores bit for bit (and the host gcc build's), fits the issue #15 budget, and the measurement
machinery itself (instruction counter, stack painting, size probe) is checked on C whose cost is
known exactly."""

import shutil
import textwrap

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import zoo
from kbnn.converters.c_export import export_c, firmware, reference

import numpy as np
import pytest

TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-nm", "qemu-system-arm")
needs_toolchain = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason=f"Cortex-M4 toolchain missing: {firmware.APT_FIX}",
)
FLASH_BAR, RAM_BAR = 32 * 1024, 4 * 1024  # issue #15: binarynet_mcu_mnist at -Os
DIGITS = 100


def _mnist_test_digits(count: int) -> tuple[np.ndarray, np.ndarray]:
    import tensorflow_datasets as tfds

    data = tfds.load("mnist", split=f"test[:{count}]", batch_size=-1, download=False)
    return data["image"].numpy().astype(np.uint8), data["label"].numpy()


def _mcu_model():
    """The pretrained binarynet_mcu_mnist when shipped, else the same architecture with seeded
    random weights and batch-norm statistics (non-zero thresholds, both BN signs)."""
    if zoo.available_weights("binarynet_mcu_mnist") == "package":
        return zoo.get("binarynet_mcu_mnist", weights="pretrained"), True
    model = zoo.get("binarynet_mcu_mnist")
    rng = np.random.default_rng(7)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.5, 2.0, gamma.shape) * rng.choice([-1.0, 1.0], gamma.shape),
                rng.normal(0.0, 1.0, beta.shape),
                rng.normal(0.3, 3.0, mean.shape),
                rng.uniform(0.5, 4.0, var.shape),
            ])  # fmt: skip
    return model, False


@pytest.fixture(scope="module")
def mcu_run(tmp_path_factory, mnist_available_module):
    model, pretrained = _mcu_model()
    images, labels = _mnist_test_digits(DIGITS)
    out = tmp_path_factory.mktemp("mcu")
    export = export_c(model, out / "c")
    measured = firmware.measure(out / "c", images, out / "build")
    host = firmware.build_host(out / "c", out / "host")
    return {
        "network": export.network, "images": images, "labels": labels, "measured": measured,
        "host": firmware.run_host(host, images, out / "host_run"), "pretrained": pretrained,
    }  # fmt: skip


@pytest.fixture(scope="module")
def mnist_available_module():
    import os
    import pathlib

    data_dir = os.environ.get("TFDS_DATA_DIR")
    if not data_dir or not (pathlib.Path(data_dir) / "mnist").is_dir():
        pytest.skip("real MNIST not prepared (set TFDS_DATA_DIR)")


@needs_toolchain
def test_cortex_m4_scores_equal_integer_reference_and_host_build(mcu_run):
    expected = reference.scores(mcu_run["network"], mcu_run["images"])
    run = mcu_run["measured"].run
    np.testing.assert_array_equal(run.scores, expected)
    np.testing.assert_array_equal(run.argmax, np.argmax(expected, axis=1))
    host_scores, host_argmax = mcu_run["host"]
    np.testing.assert_array_equal(host_scores, expected)
    np.testing.assert_array_equal(host_argmax, run.argmax)
    if mcu_run["pretrained"]:  # 100 digits: a loose floor under the card's full-split accuracy
        assert np.mean(run.argmax == mcu_run["labels"]) >= 0.95


@needs_toolchain
def test_binarynet_mcu_mnist_fits_the_cortex_m4_budget(mcu_run):
    measured = mcu_run["measured"]
    assert 0 < measured.size.flash_bytes <= FLASH_BAR, measured.size
    assert measured.run.stack_bytes > 0
    assert measured.ram_with_stack_bytes <= RAM_BAR, (measured.size, measured.run.stack_bytes)
    instructions = measured.run.instructions
    assert instructions.shape == (DIGITS,) and instructions.min() > 10_000


def _fixture_model(folder, body: str, input_size: int = 16, classes: int = 2):
    """A hand-written C file with the export-c API (a test fixture, not a kbnn model)."""
    folder.mkdir(parents=True)
    (folder / "kbnn_model.h").write_text(
        textwrap.dedent(f"""\
        #include <stdint.h>
        #define KBNN_INPUT_SIZE {input_size}
        #define KBNN_NUM_CLASSES {classes}
        int kbnn_infer(const uint8_t input[KBNN_INPUT_SIZE], int32_t scores[KBNN_NUM_CLASSES]);
        """)
    )
    (folder / "kbnn_model.c").write_text('#include "kbnn_model.h"\n' + textwrap.dedent(body))
    return folder


COUNTED_LOOP = """\
    int kbnn_infer(const uint8_t input[KBNN_INPUT_SIZE], int32_t scores[KBNN_NUM_CLASSES]) {
      uint32_t n = LOOPS;
      __asm volatile("1: subs %0, %0, #1\\n\\tbne 1b" : "+r"(n) : : "cc");
      scores[0] = input[0];
      scores[1] = input[1];
      return input[1] > input[0];
    }
"""


@needs_toolchain
def test_instruction_counter_counts_a_known_loop_exactly(tmp_path):
    """subs + bne per iteration: 1,000 more iterations must cost exactly 2,000 instructions."""
    images = np.arange(3 * 16, dtype=np.uint8).reshape(3, 16)
    counts = {}
    for loops in (1000, 2000):
        c_dir = _fixture_model(tmp_path / f"loop{loops}", COUNTED_LOOP.replace("LOOPS", str(loops)))
        measured = firmware.measure(c_dir, images, tmp_path / f"build{loops}")
        np.testing.assert_array_equal(measured.run.scores, images[:, :2])
        np.testing.assert_array_equal(measured.run.argmax, [1, 1, 1])
        assert len(set(measured.run.instructions.tolist())) == 1
        counts[loops] = int(measured.run.instructions[0])
    assert counts[2000] - counts[1000] == 2000
    assert 2000 < counts[1000] < 2000 + 40  # the loop plus a handful of call/return instructions


TWO_PARTS = """\
    void kbnn_harness_mark(void);
    int kbnn_infer(const uint8_t input[KBNN_INPUT_SIZE], int32_t scores[KBNN_NUM_CLASSES]) {
      uint32_t n = 300, m = 700;
      __asm volatile("1: subs %0, %0, #1\\n\\tbne 1b" : "+r"(n) : : "cc");
      kbnn_harness_mark();
      __asm volatile("1: subs %0, %0, #1\\n\\tbne 1b" : "+r"(m) : : "cc");
      scores[0] = input[0];
      scores[1] = 0;
      return 0;
    }
"""


@needs_toolchain
def test_instructions_per_marked_part(tmp_path):
    """A marker inside kbnn_infer splits the count: 300 vs 700 loop iterations (2 each)."""
    c_dir = _fixture_model(tmp_path / "parts", TWO_PARTS)
    built = firmware.build_firmware(c_dir, tmp_path / "build")
    run = firmware.run_firmware(built, np.zeros((2, 16), np.uint8), tmp_path / "run", parts=2)
    assert run.segments.shape == (2, 2)
    first, second = run.segments[0]
    assert 600 <= first < 600 + 20 and 1400 <= second < 1400 + 20
    assert (second - 1400) - (first - 600) < 10  # only the call/return/store overheads differ
    np.testing.assert_array_equal(run.instructions, run.segments.sum(axis=1))


STACK_USER = """\
    int kbnn_infer(const uint8_t input[KBNN_INPUT_SIZE], int32_t scores[KBNN_NUM_CLASSES]) {
      volatile uint8_t scratch[1000];
      for (int i = 0; i < 1000; ++i) scratch[i] = (uint8_t)(input[i % KBNN_INPUT_SIZE] + i);
      scores[0] = scratch[0];
      scores[1] = scratch[999];
      return 0;
    }
    static const uint8_t table[3000] = {1, 2, 3};
    const uint8_t *kbnn_table(void) { return table; }
    uint8_t kbnn_arena[500];
"""


@needs_toolchain
def test_stack_painting_and_size_probe_see_what_the_code_uses(tmp_path):
    c_dir = _fixture_model(tmp_path / "stack", STACK_USER)
    images = np.full((2, 16), 7, dtype=np.uint8)
    measured = firmware.measure(c_dir, images, tmp_path / "build", count_instructions=False)
    assert measured.run.instructions is None
    np.testing.assert_array_equal(measured.run.scores, [[7, (7 + 999) % 256]] * 2)
    assert 1000 <= measured.run.stack_bytes < 1100
    # kbnn_table/kbnn_arena are unreferenced: --gc-sections drops them from the firmware
    assert 0 < measured.size.flash_bytes < 200 and measured.size.ram_bytes == 0


@needs_toolchain
def test_a_faulting_firmware_fails_fast_with_a_clear_error(tmp_path):
    body = """\
        int kbnn_infer(const uint8_t input[KBNN_INPUT_SIZE], int32_t scores[KBNN_NUM_CLASSES]) {
          (void)input; (void)scores;
          __asm volatile("udf #0");
          return 0;
        }
    """
    c_dir = _fixture_model(tmp_path / "fault", body)
    built = firmware.build_firmware(c_dir, tmp_path / "build")
    with pytest.raises(firmware.McuToolError, match="qemu-system-arm failed.*fault"):
        firmware.run_firmware(built, np.zeros((1, 16), np.uint8), tmp_path / "run", timeout=60)


def test_missing_toolchain_names_the_apt_get_fix(monkeypatch):
    monkeypatch.setattr(firmware.shutil, "which", lambda name: None)
    with pytest.raises(firmware.McuToolError, match="apt-get install -y gcc-arm-none-eabi"):
        firmware.require_tool("qemu-system-arm")


def test_bad_inputs_are_refused_with_a_clear_error(tmp_path):
    with pytest.raises(firmware.McuToolError, match="no kbnn_model.h"):
        firmware.build_firmware(tmp_path, tmp_path / "b")
    c_dir = _fixture_model(tmp_path / "m", COUNTED_LOOP.replace("LOOPS", "1"))
    with pytest.raises(firmware.McuToolError, match="opt must be one of"):
        firmware.build_firmware(c_dir, tmp_path / "b", opt="-O9")
    with pytest.raises(firmware.McuToolError, match="images must be uint8"):
        firmware._images_bytes(np.zeros((1, 16), np.float32))
