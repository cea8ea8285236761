"""Make sure TensorFlow runs with Keras 2 (`tf_keras`), which larq and LCE require.

TensorFlow >= 2.16 ships Keras 3 as `tf.keras` unless `TF_USE_LEGACY_KERAS=1` is set
*before* TensorFlow is imported. Setting it later does not take effect, so the check has
to run before anything imports TensorFlow.
"""

import os
import sys

_TRUTHY = ("1", "true", "yes")

FIX = (
    "kbnn needs Keras 2 (tf_keras) because larq and Larq Compute Engine do. "
    "Either `import kbnn` before TensorFlow, or set TF_USE_LEGACY_KERAS=1 in the "
    "environment before starting Python."
)


def ensure_keras2() -> None:
    """Set TF_USE_LEGACY_KERAS=1 if TensorFlow is not imported yet, else verify it took effect.

    Raises:
        ImportError: TensorFlow was already imported with Keras 3 as `tf.keras`.
    """
    if "tensorflow" not in sys.modules:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        return
    resolved = _keras_behind_tf_keras()
    if resolved.startswith("tf_keras"):
        return
    if os.environ.get("TF_USE_LEGACY_KERAS", "").strip().lower() not in _TRUTHY:
        raise ImportError(f"TensorFlow was imported before kbnn with Keras 3 active. {FIX}")
    raise ImportError(f"tf.keras resolves to {resolved}, not Keras 2 (tf_keras). {FIX}")


def _keras_behind_tf_keras() -> str:
    """The package `tf.keras.Model` really comes from ('tf_keras…' or 'keras…').

    `tf.keras.__name__` is not it: after larq's import TensorFlow's lazy loader reports
    'tensorflow.keras' even though its classes are tf_keras ones.
    """
    import tensorflow as tf

    return tf.keras.Model.__module__
