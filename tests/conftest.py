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


class FreshPython:
    """Runs Python in a new interpreter (logical devices, TF_CONFIG and the Keras version must
    be chosen before TensorFlow initialises): the one subprocess runner of the test suite.

    `fresh(*argv, timeout, env=None, cwd=None)` runs `python *argv` (a script path and its
    arguments, or `-c code`, or `-m module ...`), fails the test with the output's tail on a
    non-zero exit and returns stdout and stderr combined. `fresh.completed(...)` takes the same
    arguments and returns the `subprocess.CompletedProcess` (stdout and stderr apart, exit code
    not checked). `env` replaces the environment (default: this one); TF_CONFIG is always
    removed and TF_CPP_MIN_LOG_LEVEL is 2 unless `env` sets it. The whole process group is
    killed if it outlives `timeout`.
    """

    def completed(self, *argv, timeout, env=None, cwd=None, _merge=False):
        if env is None:
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        else:
            env = {"TF_CPP_MIN_LOG_LEVEL": "2", **env}
        env.pop("TF_CONFIG", None)
        process = subprocess.Popen(
            [sys.executable, *map(str, argv)],
            env=env,
            cwd=cwd,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if _merge else subprocess.PIPE,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, 9)
                process.wait()
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    def __call__(self, *argv, timeout, env=None, cwd=None):
        result = self.completed(*argv, timeout=timeout, env=env, cwd=cwd, _merge=True)
        assert result.returncode == 0, result.stdout[-4000:]
        return result.stdout


@pytest.fixture(scope="session")
def run_fresh_python():
    """The suite's one subprocess runner (`FreshPython`)."""
    return FreshPython()
