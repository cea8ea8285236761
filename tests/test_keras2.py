"""`import kbnn` must give larq/LCE the Keras 2 they need, or say exactly why it cannot."""

import os

import pytest

ENV = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
ENV["TF_CPP_MIN_LOG_LEVEL"] = "3"


def test_import_kbnn_first_selects_keras2_without_user_setting_the_variable(run_fresh_python):
    result = run_fresh_python.completed(
        "-c",
        "import kbnn, tensorflow as tf, larq\n"
        "print(tf.keras.layers.Dense.__module__)\n"
        "print(issubclass(larq.layers.QuantDense, tf.keras.layers.Dense))",
        env=ENV,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    keras_module, larq_on_tf_keras = result.stdout.split()
    assert keras_module.startswith("tf_keras")
    assert larq_on_tf_keras == "True"


def test_tensorflow_imported_first_with_keras3_gives_a_clear_import_error(run_fresh_python):
    result = run_fresh_python.completed(
        "-c", "import tensorflow\nimport kbnn", env=ENV, timeout=180
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError")
    assert "TF_USE_LEGACY_KERAS=1" in last and "before TensorFlow" in last


@pytest.mark.parametrize("value", ["1", "true"])
def test_tensorflow_imported_first_with_legacy_keras_set_is_accepted(value, run_fresh_python):
    result = run_fresh_python.completed(
        "-c",
        "import tensorflow as tf, kbnn; print(tf.keras.Model.__module__)",
        env=dict(ENV, TF_USE_LEGACY_KERAS=value),
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("tf_keras")


def test_larq_imported_first_with_legacy_keras_exported_is_accepted(run_fresh_python):
    """After `import larq`, `tf.keras.__name__` reads 'tensorflow.keras' although its classes
    are tf_keras ones: the check must look at what tf.keras resolves to (issue #16, item 10)."""
    result = run_fresh_python.completed(
        "-c",
        "import larq, tensorflow as tf\n"
        "import kbnn\n"
        "print(tf.keras.__name__, tf.keras.Model.__module__)",
        env=dict(ENV, TF_USE_LEGACY_KERAS="1"),
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    name, module = result.stdout.split()
    assert module.startswith("tf_keras")
    assert name == "tensorflow.keras"  # the misleading name the old check tested
