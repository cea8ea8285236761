"""The one safe model loader: every path that opens a Keras model file goes through it.

Model files are untrusted input (docs/security.md). Keras 2 runs Python bytecode stored in
a `Lambda` layer of a legacy HDF5 file while it loads, and `safe_mode` only covers zip
`.keras` files; the v3 config can also name any importable module. So before Keras
deserializes anything, `load_model` reads the model config itself (h5py for HDF5, zipfile
for `.keras`) and refuses:

- `Lambda` layers and serialized lambdas (`function_type: lambda`, `__lambda__`);
- every class that neither Keras nor a registered custom object (kbnn, larq) provides;
- in `.keras` configs, modules outside Keras / TensorFlow / larq / kbnn.

Only `safe_mode=False` (CLI: `--unsafe`) skips this, with a warning. The format is taken from
the file's first bytes, never from its suffix, and every failure is one `ModelLoadError`
naming the user's file.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import tempfile
import warnings
import zipfile

from kbnn.errors import MissingFileError, ModelLoadError

__all__ = [
    "UNSAFE_WARNING",
    "allow_unsafe",
    "check_config",
    "detect_format",
    "load_model",
    "model_file",
]

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
KBZ_MAGIC = b"\x89KBZ\r\n\x1a\n"
TFLITE_IDENTIFIER = b"TFL3"  # flatbuffer file identifier, bytes 4..8

UNSAFE_WARNING = (
    "loading {path!r} with safe_mode=False: a Lambda layer or any class or module named in "
    "the file is executed as Python code with your permissions; do this only for files "
    "you made yourself or fully trust"
)

# Objects that Keras serializes under names outside its public namespaces.
_KERAS_INTERNAL = {
    "Functional",
    "Sequential",
    "Model",
    "Policy",
    "DTypePolicy",
    "TFOpLambda",
    "SlicingOpLambda",
    "__tuple__",
    "__numpy__",
    "__bytes__",
    "__typespec__",
    "__tensor__",
    "__ellipsis__",
    "__slice__",
    "function",
    "SharedObjectConfig",
}
_REFUSED = {"Lambda", "__lambda__"}
_UNSAFE_BY_DEFAULT = [False]  # set by the CLI's --unsafe for the whole command


def allow_unsafe(allowed: bool) -> None:
    """Make `load_model(path)` (safe_mode not given) skip the checks; the CLI's --unsafe."""
    _UNSAFE_BY_DEFAULT[0] = bool(allowed)


_SAFE_MODULE_ROOTS = (
    "keras",
    "tf_keras",
    "tensorflow",
    "larq",
    "larq_zoo",
    "kbnn",
    "builtins",
    "numpy",
)
# Modules whose *types* (tuple, numpy.float32, ...) may appear in a config, never their functions:
# a plain function named there (`builtins.exec`, `builtins.input`, `numpy.load`) would be called
# by Keras with the layer's tensors.
_DATA_MODULE_ROOTS = ("builtins", "numpy")


def _check_data_type(module: str, name: str, shown: str, where: str) -> None:
    import importlib

    try:
        found = getattr(importlib.import_module(module), name, None)
    except ImportError:
        found = None
    if not isinstance(found, type) or issubclass(found, BaseException):
        raise ModelLoadError(
            f"{where} names {shown} of module {module!r}, which is not a plain "
            "data type; only Keras, TensorFlow, larq and kbnn functions are loaded"
        )


def detect_format(path) -> str:
    """'hdf5', 'keras' (zip with config.json), 'npz', 'zip', 'broken-zip', 'tflite', 'kbz'
    or 'unknown', from the first bytes (and a zip's member names)."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head == HDF5_MAGIC:
        return "hdf5"
    if head == KBZ_MAGIC:
        return "kbz"
    if head[4:8] == TFLITE_IDENTIFIER:
        return "tflite"
    if head[:4] in ZIP_MAGICS:
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError, ValueError):
            return "broken-zip"
        if "config.json" in names:
            return "keras"
        if names and all(name.endswith(".npy") for name in names):
            return "npz"
        return "zip"
    return "unknown"


def _known_builtin(name: str) -> bool:
    import tensorflow as tf

    namespaces = (
        tf.keras.layers,
        tf.keras.initializers,
        tf.keras.regularizers,
        tf.keras.constraints,
        tf.keras.activations,
        tf.keras.optimizers,
        tf.keras.optimizers.schedules,
        tf.keras.losses,
        tf.keras.metrics,
    )
    return any(isinstance(getattr(space, name, None), type) for space in namespaces)


def _nodes(config):
    """Every dict in a (nested) Keras config."""
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def check_config(config, where: str) -> None:
    """Refuse a model config that would run code or name unknown classes/modules."""
    import tensorflow as tf

    registered = tf.keras.utils.get_custom_objects()
    for node in _nodes(config):
        if node.get("function_type") == "lambda":
            raise ModelLoadError(
                f"{where} contains serialized Python code (a lambda); "
                "refused (see docs/security.md, or load with --unsafe)"
            )
        name = node.get("class_name")
        if not isinstance(name, str):
            continue
        if name in _REFUSED:
            raise ModelLoadError(
                f"{where} contains a {name} layer, which runs Python code "
                "stored in the file; refused (docs/security.md; --unsafe / "
                "safe_mode=False loads it if you trust the file)"
            )
        module = node.get("module")
        if isinstance(module, str) and module.split(".")[0] not in _SAFE_MODULE_ROOTS:
            raise ModelLoadError(
                f"{where} names module {module!r} (class {name!r}); only "
                "Keras, TensorFlow, larq and kbnn objects are loaded"
            )
        if isinstance(module, str) and module.split(".")[0] in _DATA_MODULE_ROOTS:
            shown = f"function {node.get('config')!r}" if name == "function" else repr(name)
            _check_data_type(module, name, shown, where)
            continue
        registered_name = node.get("registered_name")
        if name in registered or registered_name in registered or name in _KERAS_INTERNAL:
            continue
        if module is None and not _known_builtin(name):
            raise ModelLoadError(
                f"{where} contains class {name!r}, which neither Keras nor "
                "kbnn/larq registers; refused"
            )


def _hdf5_config(path: pathlib.Path, shown: str) -> dict:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get("model_config")
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ModelLoadError(
            f"{shown} is not a readable HDF5 file (truncated or corrupt: {_short(err)})"
        ) from err
    if raw is None:
        raise ModelLoadError(
            f"{shown} is an HDF5 file without a model config (a weights-only "
            "file?); load it into a model with zoo.get(name, weights=...)"
        )
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        config = json.loads(text)
    except (UnicodeDecodeError, ValueError) as err:
        raise ModelLoadError(
            f"{shown} has a model config that is not JSON ({_short(err)})"
        ) from err
    if not isinstance(config, dict):
        raise ModelLoadError(f"{shown} has a model config that is not a JSON object")
    return config


def _zip_config(path: pathlib.Path, shown: str) -> dict:
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            if bad is not None:
                raise ModelLoadError(
                    f"{shown} is a corrupt .keras archive (member {bad!r} fails its CRC)"
                )
            config = json.loads(archive.read("config.json").decode("utf-8"))
    except ModelLoadError:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        KeyError,
        ValueError,
        EOFError,
        UnicodeDecodeError,
    ) as err:
        raise ModelLoadError(
            f"{shown} is not a readable .keras archive (corrupt or truncated: {_short(err)})"
        ) from err
    if not isinstance(config, dict):
        raise ModelLoadError(f"{shown} has a config.json that is not a JSON object")
    return config


_NOT_A_MODEL = {
    "tflite": "is a TFLite flatbuffer, not a Keras model (kbnn inspect / bench read those)",
    "kbz": "is a kbnn .kbz compressed model; load it with kbnn.compression.load_compressed",
    "npz": "is a kbnn .npz weights file, not a model; use zoo.get(name, weights=PATH)",
    "zip": "is a zip archive but not a Keras model (no config.json)",
    "broken-zip": "is a corrupt or truncated zip archive, not a readable .keras model",
    "unknown": "is not a Keras model file (neither .keras zip nor HDF5)",
}


def model_file(path, what: str = "model file") -> tuple[pathlib.Path, str, str]:
    """(path, format, quoted name) of an existing regular file, or one clear error."""
    file = pathlib.Path(path)
    shown = f"{what} {str(path)!r}"
    if file.is_dir():
        raise ModelLoadError(f"{shown} is a folder, not a file")
    if not file.exists():
        raise MissingFileError(f"{shown} does not exist")
    if not file.is_file():
        raise ModelLoadError(f"{shown} is not a regular file")
    try:
        return file, detect_format(file), shown
    except OSError as err:
        raise ModelLoadError(f"cannot read {shown}: {_short(err)}") from err


def load_model(path, *, safe_mode: bool | None = None, what: str = "model file"):
    """A Keras model from a `.keras` or HDF5 file (format from its bytes), checked first.

    kbnn's custom objects are registered before loading, so no `custom_objects` are needed.
    With `safe_mode=False` nothing is checked (a warning says what that means).
    """
    import kbnn

    kbnn.register_keras_objects()  # every kbnn object (the `kbnn` command defers this)

    import tensorflow as tf

    explicit = safe_mode is not None  # the CLI prints its own --unsafe warning
    if safe_mode is None:
        safe_mode = not _UNSAFE_BY_DEFAULT[0]
    file, kind, shown = model_file(path, what)
    if kind not in ("hdf5", "keras"):
        raise ModelLoadError(f"{shown} {_NOT_A_MODEL[kind]}")
    if safe_mode:
        config = _hdf5_config(file, shown) if kind == "hdf5" else _zip_config(file, shown)
        check_config(config, shown)
    elif explicit:
        warnings.warn(UNSAFE_WARNING.format(path=str(path)), stacklevel=2)
    options = {"safe_mode": safe_mode} if kind == "keras" else {}
    try:
        with _keras_suffix(file, kind) as name:
            return tf.keras.models.load_model(name, compile=False, **options)
    except (
        OSError,
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        IndexError,
        zipfile.BadZipFile,
        EOFError,
        RuntimeError,
    ) as err:
        raise ModelLoadError(f"cannot load {shown}: {_short(err)}") from err


@contextlib.contextmanager
def _keras_suffix(file: pathlib.Path, kind: str):
    """A name Keras reads as the detected format: it takes zip `.keras` only by that suffix."""
    if kind != "keras" or file.suffix.lower() == ".keras":
        yield os.fspath(file)
        return
    with tempfile.TemporaryDirectory(prefix="kbnn-load-") as folder:
        alias = pathlib.Path(folder) / "model.keras"
        alias.symlink_to(file.resolve())
        yield os.fspath(alias)


def _short(err: BaseException, limit: int = 300) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text[:limit]
