"""kbnn: binarized, ternary and low-bit neural networks for Keras, deployed with LCE.

`import kbnn` switches TensorFlow to Keras 2 (see `kbnn._keras2`) and registers every
kbnn Keras object, so models saved with kbnn layers load without `custom_objects`.
`kbnn.zoo`, `kbnn.converters` and `kbnn.compression` are imported on first use.
"""

from kbnn._keras2 import ensure_keras2

ensure_keras2()

import importlib  # noqa: E402

__version__ = "0.1.0"

_LAZY_SUBMODULES = (
    "analysis",
    "compression",
    "converters",
    "data",
    "distribute",
    "layers",
    "math",
    "models",
    "optimizers",
    "quantizers",
    "zoo",
)

# Registration of custom objects happens on import of these modules.
for _name in ("quantizers", "activations", "initializers", "layers", "optimizers"):
    try:
        importlib.import_module(f"kbnn.{_name}")
    except ModuleNotFoundError as _err:  # pragma: no cover - during early development only
        if _err.name != f"kbnn.{_name}":
            raise


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"kbnn.{name}")
    raise AttributeError(f"module 'kbnn' has no attribute {name!r}")
