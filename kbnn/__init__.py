"""kbnn: binarized, ternary and low-bit neural networks for Keras, deployed with LCE.

`import kbnn` switches TensorFlow to Keras 2 (see `kbnn._keras2`) and registers every
kbnn Keras object, so models saved with kbnn layers load without `custom_objects`.
`kbnn.zoo`, `kbnn.converters` and `kbnn.compression` are imported on first use.

The one exception is the `kbnn` command itself: it defers the registration (and with it
TensorFlow) until a command needs it, so `kbnn --help` starts at once (docs/cli.md).
"""

from kbnn._keras2 import ensure_keras2

ensure_keras2()

import importlib  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from kbnn._version import __version__  # noqa: E402,F401  (the one place it is written)

_LAZY_SUBMODULES = (
    "activations",
    "analysis",
    "apps",
    "compression",
    "converters",
    "data",
    "distribute",
    "imagenet",
    "initializers",
    "kernels",
    "layers",
    "math",
    "models",
    "normalization",
    "optimizers",
    "plotting",
    "quantizers",
    "zoo",
)

# Importing these modules registers every kbnn Keras object (custom objects by name).
_REGISTERING = ("quantizers", "activations", "initializers", "layers", "optimizers")


def register_keras_objects() -> None:
    """Import the modules that register kbnn's Keras objects (idempotent; imports TensorFlow)."""
    for name in _REGISTERING:
        importlib.import_module(f"kbnn.{name}")


def _is_kbnn_command() -> bool:
    """True in the `kbnn` command (console script or `python -m kbnn`), which defers
    TensorFlow: every model it loads goes through `kbnn._loading`, which registers first."""
    argv0 = os.path.basename(sys.argv[0]) if sys.argv else ""
    orig = list(getattr(sys, "orig_argv", []))
    as_module = any(a == "-m" and b == "kbnn" for a, b in zip(orig, orig[1:], strict=False))
    return argv0 == "kbnn" or as_module


if not _is_kbnn_command():
    register_keras_objects()


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"kbnn.{name}")
    raise AttributeError(f"module 'kbnn' has no attribute {name!r}")
