"""`kbnn` start-up: --help and zoo list without TensorFlow, no TensorFlow log lines, Ctrl-C
gives one line and exit 130, and the library still registers everything on `import kbnn`."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
ENV = {
    k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "TF_CPP_MIN_LOG_LEVEL")
}
# Run the console-script code path: a script named `kbnn` that calls kbnn.cli.main().
LAUNCHER = "import sys; sys.argv[0] = 'kbnn'; from kbnn.cli import main; sys.exit(main())"
ABSL_NOISE = (
    "E0000",
    "W0000",
    "I0000",
    "absl::InitializeLog",
    "cuda",
    "oneDNN",
    "cpu_feature_guard",
    "WARNING:tensorflow",
)


PROBE = (
    "import sys; sys.argv = ['kbnn', *sys.argv[1:]]\n"
    "import atexit\n"
    "atexit.register(lambda: print('TF_IMPORTED' if 'tensorflow' in sys.modules else "
    "'TF_NOT_IMPORTED', file=sys.stderr))\n"
    "from kbnn.cli import main\n"
    "sys.exit(main())\n"
)


def _kbnn(*args, timeout=300):
    """The console-script path (argv[0] 'kbnn'), reporting whether TensorFlow got imported."""
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["zoo", "list"]])
def test_light_commands_do_not_import_tensorflow(args):
    result = _kbnn(*args)
    assert result.returncode == 0, result.stderr
    assert "TF_NOT_IMPORTED" in result.stderr


def test_zoo_info_prints_no_tensorflow_log_line():
    result = _kbnn("zoo", "info", "binarynet_mnist")
    assert result.returncode == 0, result.stderr
    assert "binarynet_mnist" in result.stdout
    noise = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if any(marker in line for marker in ABSL_NOISE)
    ]
    assert noise == []
    verbose = _kbnn("--verbose", "zoo", "info", "binarynet_mnist")
    assert verbose.returncode == 0
    assert "TF_IMPORTED" in verbose.stderr


def test_import_kbnn_still_registers_for_h5_and_keras(tmp_path, run_fresh_python):
    """The library path is unchanged: after `import kbnn`, models with kbnn objects load from
    .keras and .h5 with plain tf.keras (no custom_objects)."""
    script = (
        "import kbnn, tensorflow as tf, sys\n"
        "from kbnn.layers import BinaryDense\n"
        "m = tf.keras.Sequential([tf.keras.Input((6,)), BinaryDense(3)])\n"
        "folder = sys.argv[1]\n"
        "m.save(folder + '/m.keras'); m.save(folder + '/m.h5')\n"
    )
    run_fresh_python("-c", script, str(tmp_path), timeout=300, env=ENV)
    load = (
        "import kbnn, tensorflow as tf, sys\n"
        "for name in ('m.keras', 'm.h5'):\n"
        "    model = tf.keras.models.load_model(sys.argv[1] + '/' + name, compile=False)\n"
        "    print(type(model.layers[-1]).__name__)\n"
    )
    out = run_fresh_python("-c", load, str(tmp_path), timeout=300, env=ENV)
    assert out.split()[-2:] == ["BinaryDense", "BinaryDense"]


def test_ctrl_c_during_start_up_is_one_line_and_exit_130(tmp_path):
    """SIGINT while TensorFlow is being imported: no traceback, exit code 130."""
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, "zoo", "info", "binarynet_mnist"],
        env=ENV,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)  # inside `import tensorflow` (3+ s on 2 cores)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines() == ["kbnn: interrupted"]


def test_zoo_list_index_matches_the_live_registry():
    """`kbnn zoo list` reads zoo/cards/_registry.json to avoid TensorFlow; it must be current
    (regenerate with `python -m kbnn.zoo.cards`)."""
    from kbnn.zoo import cards

    assert cards.read_zoo_index() == cards.build_zoo_index()
