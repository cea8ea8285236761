"""Shared test fixtures: Keras 2 before TensorFlow, real MNIST when the prepared dir exists."""

import os
import pathlib
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import kbnn  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
_SHARED_TFDS = REPO_ROOT.parent / "shared" / "tensorflow_datasets"

if not os.environ.get("TFDS_DATA_DIR") and _SHARED_TFDS.is_dir():
    os.environ["TFDS_DATA_DIR"] = str(_SHARED_TFDS)


def _mnist_prepared() -> bool:
    data_dir = os.environ.get("TFDS_DATA_DIR")
    return bool(data_dir) and (pathlib.Path(data_dir) / "mnist").is_dir()


requires_mnist = pytest.mark.skipif(
    not _mnist_prepared(), reason="real MNIST not prepared (set TFDS_DATA_DIR)"
)


@pytest.fixture
def mnist_available():
    """Skip the test unless real MNIST is reachable offline through tfds."""
    if not _mnist_prepared():
        pytest.skip("real MNIST not prepared (set TFDS_DATA_DIR to a tfds data dir)")
    return os.environ["TFDS_DATA_DIR"]


@pytest.fixture(autouse=True)
def _seed_and_clear():
    """Every test starts from the same seeds and an empty Keras session."""
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(1234)
    np.random.seed(1234)
    yield


@pytest.fixture(scope="session")
def run_fresh_python():
    """`run(script_path, *args, timeout)` → combined stdout/stderr of `script_path` run in a new
    interpreter (logical devices and TF_CONFIG must be set before TensorFlow initialises), with
    TF_CONFIG removed; the whole process group is killed if it outlives `timeout`, and a
    non-zero exit fails the test with the output's tail."""

    def run(script_path, *args, timeout):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        env.pop("TF_CONFIG", None)
        process = subprocess.Popen([sys.executable, str(script_path), *map(str, args)], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
        try:
            output, _ = process.communicate(timeout=timeout)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, 9)
                process.wait()
        assert process.returncode == 0, output[-4000:]
        return output

    return run
