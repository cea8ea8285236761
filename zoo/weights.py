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

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
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


def fetch(url: str, sha256: str, *, filename: str | None = None, progress: bool = True,
          timeout: float = 30.0) -> pathlib.Path:
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
    with atomic_path(target) as tmp_name, open(tmp_name, "wb") as out, tqdm(
        total=total, unit="B", unit_scale=True, desc=target.name, disable=not progress
    ) as bar:
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
    return name[len(prefix):] if name.startswith(prefix) else name.rsplit("/", 1)[-1]


def _layer_variables(model):
    """(layer, short variable name, variable) for every weight, in layer order."""
    seen = set()
    from kbnn.analysis import iter_layers

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
    if not np.all(np.isclose(magnitude[nonzero], np.broadcast_to(alpha, channels.shape)[nonzero],
                             rtol=1e-6, atol=0)):
        return None
    signs = np.packbits((q > 0).ravel())
    if np.all(nonzero):
        return "sign", {"sign": signs, "scale": alpha}
    return "ternary", {"sign": signs, "nonzero": np.packbits(nonzero.reshape(q.shape).ravel()),
                       "scale": alpha}


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


def read_compact(path) -> tuple[dict, dict[str, np.ndarray]]:
    """(metadata, {key: float32 array}) of a compact weights file, kernels decoded."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data[_META_KEY]).decode())
            values = {}
            for entry in meta["variables"]:
                key, kind, shape = entry["key"], entry["kind"], tuple(entry["shape"])
                if kind == "float32":
                    values[key] = data[key]
                else:
                    parts = {p: data[f"{key}:{p}"] for p in ("sign", "nonzero", "scale")
                             if f"{key}:{p}" in data.files}
                    values[key] = _decode_kernel(kind, parts, shape)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise ModelLoadError(f"cannot read weights file {str(path)!r}: {err}") from err
    if meta.get("format") != FORMAT_VERSION:
        raise ModelLoadError(f"weights file {str(path)!r} has unknown format {meta.get('format')!r}")
    return meta, values


def load_compact(model, path, *, sha256: str | None = None, allow_unused=False) -> None:
    """Assign the weights in `path` (from `save_compact`) to `model`, matched by name.

    Every variable of `model` must be in the file with the same shape, and (unless
    `allow_unused`, e.g. for a model without its top) every entry of the file must be used;
    `ModelLoadError` lists what differs otherwise. With `sha256`, the file is verified first.
    """
    if sha256:
        verify_sha256(path, sha256)
    _, values = read_compact(path)
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
    (including larq-zoo files whose layer structure matches), or a `.keras` model."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {str(path)!r}")
    if sha256:
        verify_sha256(path, sha256)
    suffix = path.name.lower()
    if suffix.endswith(".npz"):
        load_compact(model, path)
    elif suffix.endswith(".keras"):
        _load_from_saved_model_file(model, path)
    elif suffix.endswith((".h5", ".hdf5")):
        _load_h5(model, path)
    else:
        raise ValueError(
            f"weights={str(path)!r}: unknown file type; expected .npz (kbnn), .h5 or .keras"
        )


def _load_h5(model, path) -> None:
    try:
        model.load_weights(str(path))
    except (ValueError, OSError, KeyError) as err:
        raise ModelLoadError(
            f"cannot load {str(path)!r} into {model.name!r}: {' '.join(str(err).split())[:300]}"
        ) from err


def _load_from_saved_model_file(model, path) -> None:
    import tensorflow as tf

    try:
        source = tf.keras.models.load_model(str(path), compile=False)
    except (ValueError, OSError, KeyError, TypeError) as err:
        raise ModelLoadError(f"cannot read model file {str(path)!r}: {err}") from err
    theirs = {f"{layer.name}/{name}": variable
              for layer, name, variable in _layer_variables(source)}
    ours = list(_layer_variables(model))
    problems = [key for layer, name, variable in ours
                if (key := f"{layer.name}/{name}") not in theirs
                or tuple(theirs[key].shape) != tuple(variable.shape)]
    if problems:
        raise ModelLoadError(
            f"model file {str(path)!r} does not match {model.name!r}: {', '.join(problems[:8])}"
        )
    for layer, name, variable in ours:
        variable.assign(theirs[f"{layer.name}/{name}"].numpy())
