"""Generated bad inputs for tests/test_security_corpus.py: model files, weight files and
flatbuffers that are truncated, corrupted, crafted to run code, or of the wrong kind.

Every builder writes into a folder and returns {case name: path}. The code-running cases call
`plant_canary` when their Lambda is executed: the corpus asserts the canary never appears.
"""

from __future__ import annotations

import io
import json
import pathlib
import shutil
import zipfile

import h5py
import numpy as np
import tensorflow as tf

TRUNCATIONS = (0.0, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99)


def small_model() -> tf.keras.Model:
    """A kbnn model (registered custom layer) with a plain Keras layer after it."""
    from kbnn.layers import BinaryDense

    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Flatten()(inputs)
    x = BinaryDense(10)(x)
    return tf.keras.Model(inputs, tf.keras.layers.Activation("softmax")(x), name="small")


def lambda_model(canary: pathlib.Path) -> tf.keras.Model:
    """A model whose Lambda layer writes `canary` whenever its function runs."""
    # The path is a constant of the lambda's own bytecode, as in a file made by an attacker.
    plant = eval(  # noqa: S307
        f"lambda x: (__import__('pathlib').Path({str(canary)!r}).write_text('ran'), x)[1]"
    )
    inputs = tf.keras.Input((28, 28, 1))
    outputs = tf.keras.layers.Lambda(plant)(inputs)
    model = tf.keras.Model(inputs, outputs, name="evil")
    canary.unlink(missing_ok=True)  # building the model called it once
    return model


def _truncations(source: pathlib.Path, folder: pathlib.Path, stem: str) -> dict:
    data = source.read_bytes()
    cases = {}
    for fraction in TRUNCATIONS:
        path = folder / f"{stem}_cut{int(fraction * 100):02d}{source.suffix}"
        path.write_bytes(data[: int(len(data) * fraction)])
        cases[path.stem] = path
    return cases


def _rewrite_h5_config(source: pathlib.Path, path: pathlib.Path, transform) -> pathlib.Path:
    shutil.copy(source, path)
    with h5py.File(path, "r+") as handle:
        raw = handle.attrs["model_config"]
        text = raw.decode() if isinstance(raw, bytes) else raw
        value = transform(json.loads(text))
        handle.attrs["model_config"] = value if isinstance(value, str) else json.dumps(value)
    return path


def _rewrite_zip_config(source: pathlib.Path, path: pathlib.Path, transform) -> pathlib.Path:
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = transform(json.loads(members["config.json"]))
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _edit_dicts(config, edit):
    """Apply `edit(node)` to every dict of a nested Keras config, in place; returns `config`."""
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            edit(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return config


def _rename_class(config, old: str, new: str, module: str | None = None):
    def edit(node):
        if node.get("class_name") == old:
            node["class_name"] = new
            if module is not None:
                node["module"] = module
                node["registered_name"] = None

    return _edit_dicts(config, edit)


def _set_activation(config, module: str, function: str):
    """Every layer's activation becomes the plain function `module.function` (Keras v3 form)."""
    plain_function = {
        "module": module,
        "class_name": "function",
        "config": function,
        "registered_name": function,
    }

    def edit(node):
        if "activation" in node:
            node["activation"] = dict(plain_function)

    return _edit_dicts(config, edit)


def _flip(source: pathlib.Path, path: pathlib.Path, offset: int) -> pathlib.Path:
    data = bytearray(source.read_bytes())
    data[offset % len(data)] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def model_inputs(folder: pathlib.Path, canary: pathlib.Path, tflite: bytes) -> dict:
    """Bad model files (every one must be refused by the loader with one clear error)."""
    folder.mkdir(parents=True, exist_ok=True)
    good_keras, good_h5 = folder / "good.keras", folder / "good.h5"
    model = small_model()
    model.save(good_keras)
    model.save(good_h5)
    evil = lambda_model(canary)
    cases = {}
    evil.save(folder / "lambda.h5")
    cases["lambda_h5"] = folder / "lambda.h5"
    for name, suffix in (
        ("lambda_h5_as_keras", ".keras"),
        ("lambda_h5_as_hdf5", ".hdf5"),
        ("lambda_h5_no_suffix", ""),
    ):
        cases[name] = folder / f"{name}{suffix}"
        shutil.copy(folder / "lambda.h5", cases[name])
    evil.save(folder / "lambda_zip.keras")
    cases["lambda_zip_keras"] = folder / "lambda_zip.keras"
    cases["lambda_zip_as_h5"] = folder / "lambda_zip_as.h5"
    shutil.copy(folder / "lambda_zip.keras", cases["lambda_zip_as_h5"])
    canary.unlink(missing_ok=True)

    cases["h5_unknown_class"] = _rewrite_h5_config(
        good_h5, folder / "unknown_class.h5", lambda c: _rename_class(c, "Flatten", "Evil")
    )
    cases["h5_config_not_json"] = _rewrite_h5_config(
        good_h5, folder / "not_json.h5", lambda c: "{not json"
    )
    cases["h5_config_a_list"] = _rewrite_h5_config(good_h5, folder / "list.h5", lambda c: [c])
    cases["h5_lambda_marker"] = _rewrite_h5_config(
        good_h5, folder / "lambda_marker.h5", lambda c: _rename_class(c, "Activation", "Lambda")
    )
    weights_only = folder / "weights_only.h5"
    model.save_weights(str(weights_only))
    cases["h5_weights_only"] = weights_only
    cases["zip_foreign_module"] = _rewrite_zip_config(
        good_keras,
        folder / "foreign_module.keras",
        lambda c: _rename_class(c, "Flatten", "system", module="os"),
    )
    for module, function in (("builtins", "exec"), ("builtins", "input"), ("numpy", "load")):
        cases[f"zip_{module}_{function}_activation"] = _rewrite_zip_config(
            good_keras,
            folder / f"{module}_{function}.keras",
            lambda c, m=module, f=function: _set_activation(c, m, f),
        )
    cases["zip_unknown_class"] = _rewrite_zip_config(
        good_keras, folder / "unknown_class.keras", lambda c: _rename_class(c, "Flatten", "Evil")
    )
    cases["zip_lambda_marker"] = _rewrite_zip_config(
        good_keras,
        folder / "lambda_marker.keras",
        lambda c: _rename_class(c, "Activation", "__lambda__"),
    )
    with zipfile.ZipFile(folder / "no_config.keras", "w") as archive:
        archive.writestr("metadata.json", "{}")
    cases["zip_without_config"] = folder / "no_config.keras"
    size = good_keras.stat().st_size
    for index, fraction in enumerate((0.2, 0.5, 0.97)):  # member data, central directory
        cases[f"zip_flip{index}"] = _flip(
            good_keras, folder / f"flip{index}.keras", int(size * fraction)
        )
    cases["h5_flip_magic"] = _flip(good_h5, folder / "flip_magic.h5", 1)
    cases.update(_truncations(good_keras, folder, "keras"))
    cases.update(
        {k: v for k, v in _truncations(good_h5, folder, "h5").items() if not k.endswith("cut00")}
    )
    rng = np.random.default_rng(16)
    for name, data in (
        ("random_bytes", rng.bytes(4096)),
        ("text", b"not a model\n" * 20),
        ("tflite_as_model", tflite),
        ("kbz_magic", b"\x89KBZ\r\n\x1a\n" + b"0" * 64),
        ("zip_magic_only", b"PK\x03\x04"),
    ):
        cases[name] = folder / f"{name}.keras"
        cases[name].write_bytes(data)
    npz = io.BytesIO()
    np.savez(npz, a=np.zeros(3))
    cases["npz_as_model"] = folder / "weights.keras"
    cases["npz_as_model"].write_bytes(npz.getvalue())
    (folder / "a_folder.keras").mkdir()
    cases["folder"] = folder / "a_folder.keras"
    cases["missing"] = folder / "missing.keras"
    (folder / "dangling.keras").symlink_to(folder / "nowhere.keras")
    cases["dangling_symlink"] = folder / "dangling.keras"
    return cases


def _npz_members(source: pathlib.Path) -> dict:
    with np.load(source, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def _write_npz(path: pathlib.Path, members: dict) -> pathlib.Path:
    np.savez_compressed(path, **members)
    return path


def _with_meta(members: dict, change) -> dict:
    key = "__kbnn_weights__"
    meta = json.loads(bytes(members[key]).decode())
    meta = change(meta)
    text = meta if isinstance(meta, str) else json.dumps(meta)
    return {**members, key: np.frombuffer(text.encode(), dtype=np.uint8)}


def weight_inputs(folder: pathlib.Path, good_npz: pathlib.Path) -> dict:
    """Bad kbnn .npz weight files for `binarynet_mnist` (crafted metadata and arrays)."""
    folder.mkdir(parents=True, exist_ok=True)
    members = _npz_members(good_npz)
    first = next(k for k in members if k != "__kbnn_weights__")
    cases = {}

    def variable(index, **change):
        def edit(meta):
            meta["variables"][index].update(change)
            return meta

        return edit

    crafted = {
        "huge_shape": variable(0, shape=[100_000_000, 100_000_000]),
        "negative_shape": variable(0, shape=[-1, 3]),
        "shape_of_strings": variable(0, shape=["a", "b"]),
        "key_not_string": variable(0, key=7),
        "unknown_kind": variable(0, kind="pickle"),
        "format_string": lambda m: {**m, "format": "1"},
        "format_future": lambda m: {**m, "format": 99},
        "variables_a_dict": lambda m: {**m, "variables": {"a": 1}},
        "meta_a_list": lambda m: [m],
        "meta_not_json": lambda m: "{oops",
    }
    for name, change in crafted.items():
        cases[f"npz_{name}"] = _write_npz(folder / f"{name}.npz", _with_meta(members, change))
    cases["npz_missing_member"] = _write_npz(
        folder / "missing_member.npz", {k: v for k, v in members.items() if k != first}
    )
    cases["npz_wrong_dtype"] = _write_npz(
        folder / "wrong_dtype.npz", {**members, first: members[first].astype(np.float64)}
    )
    cases["npz_meta_float"] = _write_npz(
        folder / "meta_float.npz",
        {**members, "__kbnn_weights__": members["__kbnn_weights__"].astype(np.float32)},
    )
    size = good_npz.stat().st_size
    for index, fraction in enumerate((0.3, 0.6)):  # inside deflate data: zlib / CRC errors
        cases[f"npz_flip{index}"] = _flip(
            good_npz, folder / f"flip{index}.npz", int(size * fraction)
        )
    for fraction in (0.1, 0.5, 0.95):
        path = folder / f"cut{int(fraction * 100)}.npz"
        path.write_bytes(good_npz.read_bytes()[: int(size * fraction)])
        cases[f"npz_cut{int(fraction * 100)}"] = path
    return cases


def flatbuffer_inputs(folder: pathlib.Path, tflite: bytes, h5: pathlib.Path) -> dict:
    """Bad .tflite files for `inspect` and `bench`."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = {}
    for fraction in (0.0, 0.05, 0.5, 0.9):
        path = folder / f"cut{int(fraction * 100)}.tflite"
        path.write_bytes(tflite[: int(len(tflite) * fraction)])
        cases[f"tflite_cut{int(fraction * 100)}"] = path
    cases["tflite_random"] = folder / "random.tflite"
    cases["tflite_random"].write_bytes(np.random.default_rng(3).bytes(2048))
    cases["tflite_is_h5"] = folder / "model.tflite"
    shutil.copy(h5, cases["tflite_is_h5"])
    cases["tflite_missing"] = folder / "missing.tflite"
    return cases
