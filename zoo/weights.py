"""Weight files of the zoo: a compact `.npz` format, sha256 checks, download into a cache.

Compact format (`save_compact` / `load_compact`): one `.npz` entry per variable, keyed
`"<layer name>/<variable name>"`. A quantized kernel is stored as what its quantizer outputs:

- two-valued per output channel, `q = ±α_c` → packed sign bits + `α_c` (1 bit per weight);
- three-valued, `q ∈ {−α_c, 0, +α_c}` → packed non-zero bits + packed sign bits + `α_c`;
- anything else → float32.

Loading puts `q` back as the latent weights. That is exact for inference only if the
quantizer maps `q` to itself, which `save_compact` checks for every kernel (falling back to
float32 when it does not): true for sign (ste_sign), TWN ternarisation and 1-bit DoReFa weights.
The latent weights' magnitudes are lost, so fine-tuning starts from the quantized values.

Downloads (`fetch`) go to `cache_dir()` (`$KBNN_HOME/weights`, default `~/.kbnn/weights`):
streamed into a temporary file beside the target while hashing, checked against sha256, then
renamed — a failed or corrupted download never leaves a file under the final name.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import urllib.error
import urllib.request
import zipfile
import zlib

from kbnn._io import atomic_path, write_atomic
from kbnn.errors import KbnnError, ModelLoadError

import numpy as np

FORMAT_VERSION = 1
_META_KEY = "__kbnn_weights__"
_CHUNK = 1 << 16


class WeightsIntegrityError(ModelLoadError):
    """A weights file's sha256 differs from the expected one (corrupted or truncated)."""


class WeightsDownloadError(KbnnError):
    """Weights could not be downloaded (offline, bad URL); the message says where to put them."""


# --------------------------------------------------------------------------- hashing, cache


def sha256_of(path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path, expected: str) -> None:
    """Raise `WeightsIntegrityError` unless `path` hashes to `expected`."""
    actual = sha256_of(path)
    if actual != expected.lower():
        raise WeightsIntegrityError(
            f"sha256 mismatch for weights file {str(path)!r}: expected {expected}, got {actual} "
            "(the file is corrupted or truncated; delete it and download it again)"
        )


def kbnn_home() -> pathlib.Path:
    """`$KBNN_HOME`, default `~/.kbnn`."""
    return pathlib.Path(os.environ.get("KBNN_HOME") or pathlib.Path.home() / ".kbnn")


def cache_dir() -> pathlib.Path:
    """Where downloaded weights are kept: `kbnn_home() / "weights"`."""
    return kbnn_home() / "weights"


def fetch(
    url: str,
    sha256: str,
    *,
    filename: str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
) -> pathlib.Path:
    """The cached file for `url`, downloading it first if missing or corrupted.

    A cached file whose sha256 does not match is removed and downloaded again. The download
    is written to a temporary file in the cache dir (with a tqdm progress bar), hashed while
    streaming and renamed into place only when the sha256 matches.

    Raises:
        WeightsDownloadError: the URL cannot be read (e.g. offline); names the URL and the path
            to place the file at by hand.
        WeightsIntegrityError: the downloaded bytes do not hash to `sha256`.
    """
    if not sha256 or len(sha256) != 64:
        raise ValueError(f"sha256 must be a 64-digit hex string, got {sha256!r}")
    target = cache_dir() / (filename or os.path.basename(urllib.request.urlparse(url).path))
    if target.is_file():
        if sha256_of(target) == sha256.lower():
            return target
        target.unlink()  # corrupted cache entry: never reuse it
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (http/file URLs)
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise WeightsDownloadError(
            f"cannot download weights from {url} ({_reason(err)}); download that file by hand, "
            f"place it at {target} (sha256 {sha256}) and retry, or pass weights=<path>"
        ) from err
    with response:
        total = _content_length(response)
        _download_to(response, target, sha256.lower(), url, total, progress)
    return target


def _reason(err: BaseException) -> str:
    return str(getattr(err, "reason", None) or err)


def _content_length(response) -> int | None:
    length = response.headers.get("Content-Length") if response.headers else None
    return int(length) if length and length.isdigit() else None


def _download_to(response, target: pathlib.Path, sha256: str, url: str, total, progress):
    from tqdm.auto import tqdm

    digest = hashlib.sha256()
    with (
        atomic_path(target) as tmp_name,
        open(tmp_name, "wb") as out,
        tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=not progress) as bar,
    ):
        for chunk in iter(lambda: response.read(_CHUNK), b""):
            out.write(chunk)
            digest.update(chunk)
            bar.update(len(chunk))
        out.flush()
        if digest.hexdigest() != sha256:
            raise WeightsIntegrityError(
                f"sha256 mismatch for weights downloaded from {url}: expected {sha256}, got "
                f"{digest.hexdigest()} (corrupted or truncated download; nothing was cached)"
            )


# --------------------------------------------------------------------------- compact format


def _kernel_quantizer(layer, variable_name: str):
    get = getattr(layer, "_get_quantizer", None)  # larq's quantized layers
    return get(variable_name) if get else None


def _short_name(layer, variable) -> str:
    name = variable.name.split(":")[0]
    prefix = f"{layer.name}/"
    return name[len(prefix) :] if name.startswith(prefix) else name.rsplit("/", 1)[-1]


def _layer_variables(model):
    """(layer, short variable name, variable) for every weight, in layer order."""
    seen = set()
    from kbnn.kernels import iter_layers

    for layer in iter_layers(model):
        for variable in layer.weights:
            if id(variable) in seen:
                continue
            seen.add(id(variable))
            yield layer, _short_name(layer, variable), variable


def _encode_kernel(q: np.ndarray):
    """(kind, arrays) for a quantized kernel: 'sign' / 'ternary' packed, or None."""
    channels = q.reshape(-1, q.shape[-1])
    alpha = np.abs(channels).max(axis=0).astype(np.float32)
    magnitude = np.abs(channels)
    nonzero = magnitude > 0
    if not np.all(
        np.isclose(
            magnitude[nonzero], np.broadcast_to(alpha, channels.shape)[nonzero], rtol=1e-6, atol=0
        )
    ):
        return None
    signs = np.packbits((q > 0).ravel())
    if np.all(nonzero):
        return "sign", {"sign": signs, "scale": alpha}
    return "ternary", {
        "sign": signs,
        "nonzero": np.packbits(nonzero.reshape(q.shape).ravel()),
        "scale": alpha,
    }


def _same_quantization(a: np.ndarray, b: np.ndarray) -> bool:
    """Same sign/zero pattern and values equal up to float32 rounding of the scales."""
    return np.array_equal(np.sign(a), np.sign(b)) and np.allclose(a, b, rtol=1e-5, atol=0)


def _decode_kernel(kind: str, arrays: dict, shape) -> np.ndarray:
    size = int(np.prod(shape))
    signs = np.unpackbits(arrays["sign"], count=size).astype(np.float32) * 2.0 - 1.0
    if kind == "ternary":
        signs *= np.unpackbits(arrays["nonzero"], count=size).astype(np.float32)
    return (signs.reshape(-1, shape[-1]) * arrays["scale"]).reshape(shape)


def save_compact(model, path) -> str:
    """Write `model`'s weights to `path` (.npz, compact kernels); returns the file's sha256."""
    path = pathlib.Path(path)
    blob = compact_bytes(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, blob)
    return hashlib.sha256(blob).hexdigest()


def compact_bytes(model) -> bytes:
    """The `.npz` bytes `save_compact` writes (for multi-file commits with `kbnn._io`)."""
    import tensorflow as tf

    arrays: dict[str, np.ndarray] = {}
    layout = []
    for layer, name, variable in _layer_variables(model):
        key = f"{layer.name}/{name}"
        if key in layout:
            raise ValueError(f"two variables share the key {key!r}; name the layers uniquely")
        value = variable.numpy()
        kind = "float32"
        quantizer = _kernel_quantizer(layer, name)
        if quantizer is not None and value.ndim >= 2:
            q = tf.convert_to_tensor(quantizer(tf.constant(value))).numpy()
            encoded = _encode_kernel(q)
            if encoded is not None:
                restored = _decode_kernel(encoded[0], encoded[1], value.shape)
                requantized = tf.convert_to_tensor(quantizer(tf.constant(restored))).numpy()
                if _same_quantization(requantized, q):  # quantizer(q) == q
                    kind = encoded[0]
                    for part, array in encoded[1].items():
                        arrays[f"{key}:{part}"] = array
        if kind == "float32":
            arrays[key] = value.astype(np.float32)
        layout.append({"key": key, "kind": kind, "shape": list(value.shape)})
    meta = {"format": FORMAT_VERSION, "model": model.name, "variables": layout}
    arrays[_META_KEY] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


_MAX_META_BYTES = 1 << 22
_MAX_ELEMENTS = 1 << 28  # 1 GiB of float32: far above any zoo model, far below a bomb
_KINDS = ("float32", "sign", "ternary")


def read_compact(path, expected: dict | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """(metadata, {key: float32 array}) of a compact weights file, kernels decoded.

    The file is untrusted: its metadata types, every declared shape (against `expected`,
    {key: shape}, when given) and every array header are checked before anything is
    allocated; any defect is one `ModelLoadError` naming the file.
    """
    shown = f"weights file {str(path)!r}"
    try:
        with zipfile.ZipFile(path) as archive:
            meta = _read_meta(archive, shown)
            _check_declared(meta, expected, shown)
            values = {}
            for entry in meta["variables"]:
                key, kind, shape = entry["key"], entry["kind"], tuple(entry["shape"])
                parts = {
                    part: _read_member(archive, f"{key}:{part}" if part else key, want, shown)
                    for part, want in _layout(kind, shape).items()
                }
                values[key] = parts[""] if kind == "float32" else _decode_kernel(kind, parts, shape)
    except ModelLoadError:
        raise
    except (
        OSError,
        ValueError,
        KeyError,
        EOFError,
        zipfile.BadZipFile,
        zlib.error,
        NotImplementedError,
        RuntimeError,
    ) as err:
        raise ModelLoadError(f"cannot read {shown}: {' '.join(str(err).split())[:200]}") from err
    return meta, values


def _read_meta(archive: zipfile.ZipFile, shown: str) -> dict:
    raw = _read_member(archive, _META_KEY, (np.dtype(np.uint8), None), shown)
    meta = json.loads(bytes(raw).decode("utf-8"))
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ModelLoadError(f"{shown} has unknown format {found!r}")
    variables = meta.get("variables")
    if not isinstance(variables, list):
        raise ModelLoadError(f"{shown}: metadata 'variables' is not a list")
    for entry in variables:
        ok = (
            isinstance(entry, dict)
            and isinstance(entry.get("key"), str)
            and entry.get("kind") in _KINDS
            and isinstance(entry.get("shape"), list)
            and len(entry["shape"]) <= 8
            and all(type(d) is int and 0 <= d <= _MAX_ELEMENTS for d in entry["shape"])
        )
        if not ok:
            raise ModelLoadError(f"{shown}: malformed metadata entry {str(entry)[:120]}")
        if int(np.prod(entry["shape"], dtype=np.float64)) > _MAX_ELEMENTS:
            raise ModelLoadError(
                f"{shown}: {entry['key']} declares {entry['shape']}, too large to be a weight"
            )
    total = sum(int(np.prod(entry["shape"], dtype=np.float64)) for entry in variables)
    if total > _MAX_ELEMENTS:
        raise ModelLoadError(f"{shown} declares {total:,} weights in all, too many")
    return meta


def _check_declared(meta: dict, expected: dict | None, shown: str) -> None:
    if expected is None:
        return
    problems = [
        f"{entry['key']} has shape {tuple(entry['shape'])}, model wants "
        f"{tuple(expected[entry['key']])}"
        for entry in meta["variables"]
        if entry["key"] in expected and tuple(entry["shape"]) != tuple(expected[entry["key"]])
    ]
    if problems:
        raise ModelLoadError(f"{shown} does not match the model: " + "; ".join(problems[:8]))


def _layout(kind: str, shape: tuple) -> dict:
    """{part: (dtype, shape)} of the arrays a variable of `kind` is stored as."""
    if kind == "float32":
        return {"": (np.dtype(np.float32), shape)}
    if not shape:
        raise ModelLoadError(f"a {kind} kernel needs at least one dimension, got {shape}")
    packed = (-(-int(np.prod(shape)) // 8),)
    layout = {"sign": (np.dtype(np.uint8), packed), "scale": (np.dtype(np.float32), (shape[-1],))}
    if kind == "ternary":
        layout["nonzero"] = (np.dtype(np.uint8), packed)
    return layout


def _read_member(archive: zipfile.ZipFile, key: str, want, shown: str) -> np.ndarray:
    """Array `key` after checking its .npy header against (dtype, shape or None=1-D small)."""
    dtype, shape = want
    with archive.open(f"{key}.npy") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        found_shape, fortran, found_dtype = read_header(handle)
        if shape is None:
            valid = len(found_shape) == 1 and found_shape[0] <= _MAX_META_BYTES
        else:
            valid = tuple(found_shape) == tuple(shape)
        if found_dtype != dtype or fortran or not valid:
            raise ModelLoadError(
                f"{shown}: array {key!r} is {found_dtype}{tuple(found_shape)}, "
                f"expected {dtype}{shape if shape is not None else ''}"
            )
        count = int(np.prod(found_shape))
        data = handle.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise ModelLoadError(f"{shown}: array {key!r} is truncated")
    return np.frombuffer(data, dtype=dtype).reshape(found_shape).copy()


def load_compact(model, path, *, sha256: str | None = None, allow_unused=False) -> None:
    """Assign the weights in `path` (from `save_compact`) to `model`, matched by name.

    Every variable of `model` must be in the file with the same shape, and (unless
    `allow_unused`, e.g. for a model without its top) every entry of the file must be used;
    `ModelLoadError` lists what differs otherwise. With `sha256`, the file is verified first.
    """
    if sha256:
        verify_sha256(path, sha256)
    expected = {
        f"{layer.name}/{name}": tuple(variable.shape)
        for layer, name, variable in _layer_variables(model)
    }
    _, values = read_compact(path, expected)
    assignments, problems = [], []
    for layer, name, variable in _layer_variables(model):
        key = f"{layer.name}/{name}"
        if key not in values:
            problems.append(f"{key} missing")
        elif tuple(values[key].shape) != tuple(variable.shape):
            problems.append(f"{key} has shape {values[key].shape}, model wants {variable.shape}")
        else:
            assignments.append((variable, values.pop(key)))
    if values and not allow_unused:
        problems.append(f"unused entries {sorted(values)[:5]}")
    if problems:
        raise ModelLoadError(
            f"weights file {str(path)!r} does not match model {model.name!r}: "
            + "; ".join(problems[:8])
        )
    for variable, value in assignments:
        variable.assign(value)


def load_weights_file(model, path, *, sha256: str | None = None) -> None:
    """Load weights from a local file into `model`: kbnn `.npz`, Keras `.h5`/`.weights.h5`
    (including larq-zoo files whose layer structure matches), or a `.keras` model.

    The format comes from the file's bytes (`kbnn._loading.detect_format`), not its suffix;
    a `.keras` model goes through the safe loader.
    """
    from kbnn._loading import model_file

    path, kind, shown = model_file(path, "weights file")
    if sha256:
        verify_sha256(path, sha256)
    if kind == "npz":
        load_compact(model, path)
    elif kind == "keras":
        _load_from_saved_model_file(model, path)
    elif kind == "hdf5":
        _load_h5(model, path)
    else:
        raise ModelLoadError(
            f"{shown}: unknown file type ({kind}); expected kbnn .npz, Keras .h5 or .keras"
        )


def _load_h5(model, path) -> None:
    try:
        model.load_weights(str(path))
    except (ValueError, OSError, KeyError) as err:
        raise ModelLoadError(
            f"cannot load {str(path)!r} into {model.name!r}: {' '.join(str(err).split())[:300]}"
        ) from err


def _load_from_saved_model_file(model, path) -> None:
    from kbnn._loading import load_model

    source = load_model(path, what="weights file")
    theirs = {
        f"{layer.name}/{name}": variable for layer, name, variable in _layer_variables(source)
    }
    ours = list(_layer_variables(model))
    problems = [
        key
        for layer, name, variable in ours
        if (key := f"{layer.name}/{name}") not in theirs
        or tuple(theirs[key].shape) != tuple(variable.shape)
    ]
    if problems:
        raise ModelLoadError(
            f"model file {str(path)!r} does not match {model.name!r}: {', '.join(problems[:8])}"
        )
    for layer, name, variable in ours:
        variable.assign(theirs[f"{layer.name}/{name}"].numpy())
