"""kbnn.zoo.weights: compact weight files, sha256 checks, the download cache (offline only)."""

import functools
import hashlib
import http.server
import os
import pathlib
import threading

import kbnn.zoo
from kbnn.errors import ModelLoadError
from kbnn.zoo import weights as W

import numpy as np
import pytest
import tensorflow as tf


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _predict(model, x):
    return model(x, training=False).numpy()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("KBNN_HOME", str(tmp_path / "kbnn_home"))
    return tmp_path / "kbnn_home"


# --------------------------------------------------------------------------- compact format


def _randomize_bn(model, rng):
    """Give batch-norm statistics non-default values so a load that skipped them shows."""
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            for variable in layer.weights:
                low = 0.5 if "variance" in variable.name or "gamma" in variable.name else -0.5
                variable.assign(rng.uniform(low, low + 1.0, variable.shape).astype("float32"))


@pytest.mark.parametrize(
    "name, kinds",
    [
        ("binarynet_mnist", {"conv1/kernel": "sign", "dense1/kernel": "sign"}),
        ("ternarynet_mnist", {"conv1/kernel": "ternary", "dense2/kernel": "ternary"}),
        ("dorefanet_mnist", {"conv2/kernel": "sign", "dense2/kernel": "float32"}),
    ],
)
def test_compact_round_trip_gives_identical_predictions(tmp_path, name, kinds):
    rng = np.random.default_rng(0)
    model = kbnn.zoo.get(name, compile=False)
    _randomize_bn(model, rng)
    path = tmp_path / f"{name}.npz"
    sha = W.save_compact(model, path)
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()

    meta, values = W.read_compact(path)
    stored = {entry["key"]: entry["kind"] for entry in meta["variables"]}
    for key, kind in kinds.items():
        assert stored[key] == kind

    fresh = kbnn.zoo.get(name, compile=False)
    W.load_compact(fresh, path, sha256=sha)
    x = rng.random((8, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(_predict(fresh, x), _predict(model, x), rtol=1e-5, atol=1e-6)
    # The quantized kernels are what the layers compute with: identical after loading.
    for layer in model.layers:
        quantizer = getattr(layer, "kernel_quantizer", None)
        if quantizer is not None:
            theirs = quantizer(tf.convert_to_tensor(layer.kernel)).numpy()
            ours = quantizer(tf.convert_to_tensor(fresh.get_layer(layer.name).kernel)).numpy()
            np.testing.assert_allclose(ours, theirs, rtol=1e-5)


def test_binary_kernels_take_one_bit_each(tmp_path):
    model = kbnn.zoo.get("binarynet_mnist", compile=False)
    path = tmp_path / "w.npz"
    W.save_compact(model, path)
    binary_weights = sum(
        int(np.prod(layer.kernel.shape)) for layer in model.layers if hasattr(layer, "kernel")
    )
    float_weights = sum(int(np.prod(w.shape)) for w in model.weights) - binary_weights
    # 1 bit per binary weight + 32 bits per float (BN) value, plus headroom for the zip/npy
    # headers and per-channel scales.
    budget = binary_weights / 8 + 4 * float_weights + 8_000
    assert path.stat().st_size < budget
    assert path.stat().st_size < binary_weights * 4 / 25  # far below float32


def test_ternary_encoding_matches_numpy_reference():
    rng = np.random.default_rng(1)
    alpha = rng.uniform(0.1, 1.0, size=6).astype(np.float32)
    levels = rng.integers(-1, 2, size=(3, 3, 4, 6)).astype(np.float32)
    q = levels * alpha
    kind, parts = W._encode_kernel(q)
    assert kind == "ternary"
    np.testing.assert_array_equal(W._decode_kernel(kind, parts, q.shape), q)
    assert parts["sign"].nbytes == int(np.ceil(q.size / 8))

    assert W._encode_kernel(rng.normal(size=(5, 4)).astype(np.float32)) is None  # not ±α


def test_load_rejects_a_mismatching_model(tmp_path):
    path = tmp_path / "w.npz"
    W.save_compact(kbnn.zoo.get("binarynet_mnist", compile=False), path)
    other = kbnn.zoo.get("binarynet_mnist", num_classes=7, compile=False)
    with pytest.raises(ModelLoadError, match=r"dense2/kernel has shape"):
        W.load_compact(other, path)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupted_file_is_refused_by_sha256(tmp_path, damage):
    path = tmp_path / "w.npz"
    sha = W.save_compact(kbnn.zoo.get("binarynet_mnist", compile=False), path)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))
    model = kbnn.zoo.get("binarynet_mnist", compile=False)
    before = [w.numpy().copy() for w in model.weights]
    with pytest.raises(W.WeightsIntegrityError, match="sha256 mismatch"):
        W.load_compact(model, path, sha256=sha)
    for old, new in zip(before, model.weights, strict=True):
        np.testing.assert_array_equal(old, new.numpy())
    if damage == "truncate":  # without a sha256 it is still a clear error, not a crash
        with pytest.raises(ModelLoadError, match="cannot read weights file"):
            W.load_compact(model, path)


def test_h5_and_keras_weights_paths(tmp_path):
    model = kbnn.zoo.get("binarynet_mnist")
    h5 = tmp_path / "w.weights.h5"
    model.save_weights(str(h5))
    keras_file = tmp_path / "m.keras"
    model.save(keras_file)
    x = np.random.default_rng(2).random((4, 28, 28, 1), dtype=np.float32)
    for path in (h5, keras_file):
        loaded = kbnn.zoo.get("binarynet_mnist", weights=path)
        np.testing.assert_allclose(_predict(loaded, x), _predict(model, x), atol=1e-6)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        kbnn.zoo.get("binarynet_mnist", weights=tmp_path / "missing.npz")
    (tmp_path / "w.txt").write_text("x")
    with pytest.raises(ModelLoadError, match="unknown file type"):
        kbnn.zoo.get("binarynet_mnist", weights=tmp_path / "w.txt")


# --------------------------------------------------------------------------- download cache


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/'served' (never the internet)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _cache_leftovers(home: pathlib.Path):
    folder = home / "weights"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_fetch_over_http_verifies_and_caches(home, server, capsys):
    root, base = server
    payload = os.urandom(200_000)
    (root / "model.npz").write_bytes(payload)
    path = W.fetch(f"{base}/model.npz", _sha(payload))
    assert path == home / "weights" / "model.npz"
    assert path.read_bytes() == payload
    assert "model.npz" in capsys.readouterr().err  # tqdm progress bar
    (root / "model.npz").unlink()  # a second call is served from the cache
    assert W.fetch(f"{base}/model.npz", _sha(payload)) == path


def test_fetch_sha_mismatch_leaves_nothing_in_the_cache(home, server):
    root, base = server
    (root / "model.npz").write_bytes(b"tampered bytes")
    with pytest.raises(W.WeightsIntegrityError, match="sha256 mismatch.*nothing was cached"):
        W.fetch(f"{base}/model.npz", _sha(b"the real bytes"), progress=False)
    assert _cache_leftovers(home) == []


def test_fetch_replaces_a_corrupted_cache_entry(home, tmp_path):
    payload = b"good weights" * 1000
    source = tmp_path / "src.npz"
    source.write_bytes(payload)
    cached = home / "weights" / "src.npz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(payload[:100])  # truncated by an earlier crash
    path = W.fetch(source.as_uri(), _sha(payload), progress=False)  # file:// URL
    assert path == cached and cached.read_bytes() == payload


def test_fetch_offline_names_the_url_and_where_to_put_the_file(home, server):
    _, base = server
    url = f"{base}/absent.npz"
    sha = _sha(b"x")
    with pytest.raises(W.WeightsDownloadError) as err:
        W.fetch(url, sha, progress=False)
    message = str(err.value)
    assert url in message and str(home / "weights" / "absent.npz") in message and sha in message
    assert _cache_leftovers(home) == []


def test_fetch_unreachable_host(home):
    url = "http://127.0.0.1:9/weights.npz"  # discard port: connection refused
    with pytest.raises(W.WeightsDownloadError, match="127.0.0.1:9/weights.npz"):
        W.fetch(url, "0" * 64, progress=False, timeout=5)


def test_cache_dir_defaults_to_home(monkeypatch):
    monkeypatch.delenv("KBNN_HOME", raising=False)
    assert W.cache_dir() == pathlib.Path.home() / ".kbnn" / "weights"
    with pytest.raises(ValueError, match="sha256"):
        W.fetch("file:///nothing", "abc")


def test_pretrained_url_path_end_to_end(home, server, monkeypatch):
    """A model whose weights are too large to ship: downloaded, verified, cached, loaded."""
    import dataclasses

    from kbnn.zoo import registry

    root, base = server
    source = kbnn.zoo.get("binarynet_cifar10", input_shape=(32, 32, 3), compile=False)
    sha = W.save_compact(source, root / "binarynet_cifar10.npz")
    entry = registry.spec("binarynet_cifar10")
    patched = dataclasses.replace(
        entry, weights_url=f"{base}/binarynet_cifar10.npz", weights_sha256=sha
    )
    monkeypatch.setitem(registry._REGISTRY, "binarynet_cifar10", patched)
    assert kbnn.zoo.available_weights("binarynet_cifar10") == "url"
    model = kbnn.zoo.get("binarynet_cifar10", weights="pretrained")
    x = np.random.default_rng(3).random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(_predict(model, x), _predict(source, x), rtol=1e-5, atol=1e-6)
    assert (home / "weights" / "binarynet_cifar10.npz").is_file()
