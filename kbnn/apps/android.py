"""Export a model for the Android demo: LCE flatbuffer, float twin, labels and model.json.

`export_android(model, out_dir)` converts with `kbnn.converters`, measures each flatbuffer's
accuracy in LCE's interpreter, and writes into `out_dir` (the app's assets folder):

    <name>.tflite          the LCE flatbuffer (binary ops as LceBconv2d, …)
    <name>_float.tflite    its float twin (plain TFLite, for the size/latency comparison)
    labels.txt             one label a line
    model.json             the contract the app reads (format "kbnn-android-model", version 1)

model.json is checked on the JVM by the app's own validator (`org.kbnn.demo.core.ModelSpec`);
its fields are documented there and in android_demo/README.md. Every file is written to a
temporary name and renamed, model.json last, so the app never sees a half-written export.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field

import kbnn
from kbnn._io import commit_files, write_atomic
from kbnn._validation import check_int
from kbnn.apps import preprocessing
from kbnn.apps.preprocessing import METHOD, PreprocessingConfig, normalize
from kbnn.data import mnist_sample
from kbnn.errors import UsageError

import numpy as np

FORMAT = "kbnn-android-model"
VERSION = 1
DEFAULT_OUT = os.path.join("android_demo", "app", "src", "main", "assets")
DEFAULT_MODEL = "binarynet_mnist"
MODEL_JSON = "model.json"
LABELS_FILE = "labels.txt"
MNIST_DATASET = "MNIST test split (first images, kbnn.data.mnist_sample)"
ENGINE = "LCE {version} interpreter (x86-64, 1 thread)"
TWIN_NOTE = (
    "float twin: the same graph with the quantizers removed and the latent float weights "
    "kept (kbnn.converters.float_twin), a size and latency baseline, not a trained float model"
)


@dataclass
class AndroidExport:
    """What `export_android` wrote: file paths by role, and the model.json content."""

    out_dir: str
    paths: dict[str, str]
    spec: dict = field(repr=False)

    def summary(self) -> str:
        lines = [f"exported {self.spec['name']!r} to {self.out_dir}"]
        for entry in self.spec["models"]:
            accuracy = entry.get("accuracy")
            acc = (
                f", top-1 {100 * accuracy['top1']:.2f}% on {accuracy['samples']}"
                if accuracy
                else ""
            )
            ops = ", ".join(f"{k}×{v}" for k, v in entry["ops"].items())
            lines.append(
                f"  {entry['role']:6s} {entry['file']}: {entry['bytes']:,} bytes{acc}; ops: {ops}"
            )
        lines.append(f"  {LABELS_FILE}, {MODEL_JSON}")
        return "\n".join(lines)


def count_ops(flatbuffer: bytes) -> dict[str, int]:
    """Operator name → count (LCE's custom ops by their custom code), via kbnn.converters.inspect."""
    from kbnn import converters

    return dict(converters.inspect(flatbuffer).op_counts)


def weight_bits(model) -> dict[str, int]:
    """Weight precision → parameter count, from larq's model profile ("1": binary kernels...).

    larq counts parameters as deployed: batch normalization as one scale and one offset per
    channel (its four variables fold into two), so the total is below `model.count_params()`.
    """
    import larq

    profile = larq.models.ModelProfile(model)
    return {
        str(bits): int(profile.weight_count(bitwidth=bits))
        for bits in profile.unique_param_bidtwidths
        if profile.weight_count(bitwidth=bits)
    }


def _interpreter(flatbuffer: bytes):
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    return Interpreter(flatbuffer, num_threads=1)


def _is_softmax(outputs: np.ndarray) -> bool:
    """Outputs are probabilities when every row is non-negative and sums to 1."""
    return bool(np.all(outputs >= 0) and np.allclose(outputs.sum(axis=-1), 1.0, atol=1e-3))


def evaluate_flatbuffer(
    flatbuffer: bytes, x: np.ndarray, y: np.ndarray
) -> tuple[float, np.ndarray]:
    """Top-1 accuracy of a flatbuffer in LCE's interpreter, and its outputs."""
    outputs = np.asarray(_interpreter(flatbuffer).predict(x.astype(np.float32)))
    return float(np.mean(np.argmax(outputs, axis=-1) == y)), outputs


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def resolve_model(model_ref: str):
    """(Keras model, name, description) of a zoo name (pretrained weights) or a .keras/.h5
    file: `kbnn.zoo.load` plus the name and description the app shows."""
    from kbnn import zoo

    model = zoo.load(model_ref)
    if model_ref in zoo.list_models():
        entry = zoo.spec(model_ref)
        return model, model_ref, ", ".join(p for p in (model_ref, entry.paper, entry.bits) if p)
    name = os.path.splitext(os.path.basename(model_ref))[0]
    return model, name, f"{name} (from {os.path.basename(model_ref)})"


def _check_io(model) -> tuple[int, int, int]:
    input_shape = tuple(model.input_shape)
    output_shape = tuple(model.output_shape)
    if len(input_shape) != 4 or input_shape[3] != 1 or None in input_shape[1:3]:
        raise UsageError(
            f"the Android demo feeds one grayscale image of shape (H, W, 1); model "
            f"{model.name!r} takes {input_shape[1:]}"
        )
    if len(output_shape) != 2 or output_shape[1] is None:
        raise UsageError(
            f"the Android demo decodes one vector of class scores; model {model.name!r} "
            f"outputs {output_shape[1:]}"
        )
    return int(input_shape[1]), int(input_shape[2]), int(output_shape[1])


def _labels(labels, num_classes: int) -> list[str]:
    if labels is None:
        return (
            [str(i) for i in range(num_classes)]
            if num_classes <= 10
            else [f"class_{i}" for i in range(num_classes)]
        )
    labels = [str(label) for label in labels]
    if len(labels) != num_classes:
        raise UsageError(f"labels: {len(labels)} given, the model has {num_classes} outputs")
    if any(not label or "\n" in label or "\r" in label for label in labels):
        raise UsageError("labels must be non-empty single-line strings")
    return labels


def _evaluation_data(
    height: int, width: int, num_classes: int, samples: int, config: PreprocessingConfig
):
    """The shipped real-MNIST sample, normalised as model.json says, when the model fits it."""
    if samples <= 0 or (height, width, num_classes) != (28, 28, 10):
        return None
    images, labels = mnist_sample()
    n = min(samples, len(images))
    x = normalize(images[:n], config)[..., None]
    return x, labels[:n].astype(np.int64)


@dataclass
class AndroidAssets:
    """The app's assets in memory (`build_android_assets`), before `write_android_assets`."""

    flatbuffers: dict[str, bytes]  # role ("binary", "float") -> flatbuffer
    files: dict[str, str]  # role -> file name
    labels: list[str]
    spec: dict = field(repr=False)  # the model.json content


def _check_name(name) -> str:
    if not name or any(ch in name for ch in "/\\:") or name.startswith("."):
        raise UsageError(f"name {name!r} must be a plain file name stem (no '/', '\\', ':')")
    return name


def _preprocessing(config, height, width, mean, std) -> PreprocessingConfig:
    if config is None:  # the MNIST proportion: a 20 px digit box in a 28 px field (UsageError
        # from its checks, like every argument check)
        config = PreprocessingConfig(
            field=(height, width),
            mean=mean,
            std=std,
            digit_box=max(1, round(min(height, width) * 20 / 28)),
        )
    if config.field != (height, width):
        raise UsageError(
            f"preprocessing field {config.field} differs from the model input {(height, width)}"
        )
    return config


def _model_entry(role: str, flat: bytes, file: str, bits: dict, data) -> dict:
    """model.json's entry for one flatbuffer: size, hash, ops, weight bits, measured top-1."""
    ops = count_ops(flat)
    entry = {
        "role": role,
        "file": file,
        "bytes": len(flat),
        "sha256": _sha256(flat),
        "requires_lce": any(op.startswith("Lce") for op in ops),
        "ops": ops,
        "weight_bits": bits if role == "binary" else {"32": int(sum(bits.values()))},
    }
    if role == "float":
        entry["note"] = TWIN_NOTE
    if data is not None:
        import larq_compute_engine

        top1, _ = evaluate_flatbuffer(flat, *data)
        entry["accuracy"] = {
            "top1": round(top1, 6),
            "samples": int(len(data[1])),
            "dataset": MNIST_DATASET,
            "engine": ENGINE.format(version=getattr(larq_compute_engine, "__version__", "?")),
        }
    return entry


def _spec(name, description, shape, config, activation, labels, entries) -> dict:
    height, width, num_classes = shape
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": name,
        "description": description,
        "created_by": f"kbnn {kbnn.__version__} (kbnn export-android)",
        "input": {
            "shape": [1, height, width, 1],
            "dtype": "float32",
            "normalization": {"scale": config.scale, "mean": config.mean, "std": config.std},
            "preprocessing": {
                "method": METHOD,
                "digit_box": config.digit_box,
                "ink_threshold": config.ink_threshold,
            },
        },
        "output": {"shape": [1, num_classes], "dtype": "float32", "activation": activation},
        "labels": labels,
        "labels_file": LABELS_FILE,
        "models": entries,
    }


def build_android_assets(
    model,
    *,
    name: str | None = None,
    description: str | None = None,
    labels=None,
    samples: int = 1000,
    mean: float = 0.0,
    std: float = 1.0,
    config: PreprocessingConfig | None = None,
) -> AndroidAssets:
    """Convert `model` (Keras model, zoo name or .keras/.h5 path) and build the app's assets.

    `samples` real MNIST test images (shipped with kbnn) measure each flatbuffer's top-1
    accuracy in LCE's interpreter, for 28×28×1 → 10-class models; 0 skips it. The app feeds
    x = (v / 255 − mean) / std for field values v in 0..255 (kbnn's MNIST models: mean 0,
    std 1); `config` overrides the whole preprocessing (field, digit box, threshold, scale).
    """
    from kbnn import converters  # lazy, like TensorFlow: `kbnn export-android --help` is instant

    if isinstance(model, str):
        model, default_name, default_description = resolve_model(model)
    else:
        default_name, default_description = model.name, model.name
    name = _check_name(name or default_name)
    check_int(samples, "samples", low=0)
    height, width, num_classes = _check_io(model)
    config = _preprocessing(config, height, width, mean, std)
    labels = _labels(labels, num_classes)

    flatbuffers = {
        "binary": bytes(converters.convert(model).flatbuffer),
        "float": bytes(converters.float_twin_flatbuffer(model)),
    }
    files = {"binary": f"{name}.tflite", "float": f"{name}_float.tflite"}
    data = _evaluation_data(height, width, num_classes, samples, config)
    probe = (
        data[0][:8]
        if data is not None
        else np.random.default_rng(0).uniform(0, 1, (4, height, width, 1)).astype(np.float32)
    )
    activation = (
        "softmax"
        if _is_softmax(np.asarray(_interpreter(flatbuffers["binary"]).predict(probe)))
        else "logits"
    )
    bits = weight_bits(model)
    entries = [
        _model_entry(role, flatbuffers[role], files[role], bits, data)
        for role in ("binary", "float")
    ]
    spec = _spec(
        name,
        description or default_description,
        (height, width, num_classes),
        config,
        activation,
        labels,
        entries,
    )
    return AndroidAssets(flatbuffers=flatbuffers, files=files, labels=labels, spec=spec)


def write_android_assets(assets: AndroidAssets, out_dir: str = DEFAULT_OUT) -> AndroidExport:
    """Write the assets into `out_dir` all-or-nothing (`kbnn._io.commit_files`), then remove the
    flatbuffers an earlier export of another model left there."""
    os.makedirs(out_dir, exist_ok=True)
    stale = _previous_files(out_dir) - set(assets.files.values())
    paths = {role: os.path.join(out_dir, assets.files[role]) for role in ("binary", "float")}
    paths["labels"] = os.path.join(out_dir, LABELS_FILE)
    paths["model.json"] = os.path.join(out_dir, MODEL_JSON)
    text = json.dumps(assets.spec, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    commit_files(
        {
            paths["binary"]: assets.flatbuffers["binary"],
            paths["float"]: assets.flatbuffers["float"],
            paths["labels"]: "\n".join(assets.labels) + "\n",
            paths["model.json"]: text,
        }
    )
    for old in stale:  # files of an earlier export of another model into the same folder
        os.remove(os.path.join(out_dir, old))
    return AndroidExport(out_dir=out_dir, paths=paths, spec=assets.spec)


def export_android(
    model,
    out_dir: str = DEFAULT_OUT,
    *,
    name: str | None = None,
    description: str | None = None,
    labels=None,
    samples: int = 1000,
    mean: float = 0.0,
    std: float = 1.0,
    config: PreprocessingConfig | None = None,
) -> AndroidExport:
    """`build_android_assets(model, ...)` written into `out_dir` (`write_android_assets`)."""
    assets = build_android_assets(
        model,
        name=name,
        description=description,
        labels=labels,
        samples=samples,
        mean=mean,
        std=std,
        config=config,
    )
    return write_android_assets(assets, out_dir)


def _previous_files(out_dir: str) -> set[str]:
    """.tflite files listed by an existing model.json in out_dir (to remove if not rewritten)."""
    try:
        with open(os.path.join(out_dir, MODEL_JSON), encoding="utf-8") as handle:
            previous = json.load(handle)
        names = {entry["file"] for entry in previous.get("models", [])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()
    return {
        n
        for n in names
        if isinstance(n, str)
        and n.endswith(".tflite")
        and os.sep not in n
        and os.path.isfile(os.path.join(out_dir, n))
    }


# --- the small example export committed for the JVM tests ---------------------------------------

EXAMPLE_NAME = "tiny_bnn_mnist"


def example_model(seed: int = 0):
    """A tiny MNIST BNN for the example assets: float stem, binary conv, binary dense head.

    The binary layers are as LCE wants them: `ste_sign` inputs and kernels, SAME padding with
    `pad_values=1`, 32 channels, each followed by BatchNormalization (folded at conversion).
    """
    import larq
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    binary = dict(
        use_bias=False,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
    )
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Conv2D(32, 3, strides=2, use_bias=False)(inputs)
    x = tf.keras.layers.BatchNormalization(momentum=0.9)(x)
    x = larq.layers.QuantConv2D(32, 3, padding="same", pad_values=1.0, **binary)(x)
    x = tf.keras.layers.BatchNormalization(momentum=0.9)(x)
    x = tf.keras.layers.MaxPool2D(2)(x)
    x = tf.keras.layers.Flatten()(x)
    x = larq.layers.QuantDense(10, **binary)(x)
    x = tf.keras.layers.BatchNormalization(momentum=0.9)(x)
    outputs = tf.keras.layers.Softmax()(x)
    return tf.keras.Model(inputs, outputs, name=EXAMPLE_NAME)


def write_example(directory: str, *, epochs: int = 10) -> AndroidExport:
    """Train `example_model` briefly on half of kbnn's MNIST sample, export it into `directory`.

    It trains on sample images 500..999 and the export measures accuracy on images 0..499.
    """
    import tensorflow as tf

    images, labels = mnist_sample()
    model = example_model()
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit(normalize_field(images[500:]), labels[500:], epochs=epochs, batch_size=50, verbose=0)
    return export_android(
        model,
        directory,
        samples=500,
        description=(
            f"tiny BNN trained for {epochs} epochs on 500 images of kbnn's MNIST sample "
            "(example assets for the app's validator tests)"
        ),
    )


def normalize_field(images) -> np.ndarray:
    """uint8 (N, 28, 28) → float32 (N, 28, 28, 1) the way the default model.json normalises."""
    return normalize(np.asarray(images), PreprocessingConfig())[..., None]


# --- golden vectors for the JVM output decoding and latency statistics --------------------------

DECODING_GOLDEN = "decoding.json"


def decoding_golden() -> dict:
    """Softmax/top-3 and latency statistics computed by scipy/numpy, for the JUnit tests."""
    from scipy.special import softmax

    rng = np.random.default_rng(1234)
    logit_cases = {
        "mnist_like": rng.normal(0, 3, 10),
        "one_hot_sharp": np.array([0, 0, 0, 25, 0, 0, 0, 0, 0, 0], float),
        "all_equal": np.zeros(10),
        "large_offset": rng.normal(500, 2, 10),
        "negative": -np.abs(rng.normal(40, 10, 10)),
        "three_classes": np.array([0.5, -1.25, 2.0]),
    }
    softmax_cases = []
    for case_name, logits in logit_cases.items():
        logits32 = logits.astype(np.float32)  # the app's output tensor is float32
        probs = softmax(logits32.astype(np.float64))
        # stable argsort: ties keep class order, as OutputDecoder.topK does
        top3 = np.argsort(-probs, kind="stable")[:3]
        softmax_cases.append(
            {
                "name": case_name,
                "logits": [float(v) for v in logits32],
                "probabilities": [float(p) for p in probs],
                "top3": [int(i) for i in top3],
            }
        )
    latency_samples = {
        "odd_count": rng.lognormal(0.5, 0.3, 101),
        "even_count": rng.lognormal(1.0, 0.5, 50),
        "two_samples": np.array([3.25, 1.5]),
        "one_sample": np.array([7.0]),
        "with_outliers": np.concatenate([rng.normal(2.0, 0.05, 30), [15.0, 40.0]]),
    }
    latency_cases = []
    for case_name, samples in latency_samples.items():
        samples = np.round(samples, 6)
        latency_cases.append(
            {
                "name": case_name,
                "samples_ms": [float(s) for s in samples],
                "median": float(np.median(samples)),
                "p90": float(np.percentile(samples, 90)),
                "mean": float(np.mean(samples)),
                "min": float(np.min(samples)),
                "max": float(np.max(samples)),
            }
        )
    return {
        "comment": "written by `python -m kbnn.apps.android --write-golden DIR`; references: "
        "scipy.special.softmax (float64), np.percentile (linear)",
        "softmax": softmax_cases,
        "latency": latency_cases,
    }


def write_golden(directory: str) -> list[str]:
    """Write decoding.json and the preprocessing golden file into `directory`."""

    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, DECODING_GOLDEN)
    text = json.dumps(decoding_golden(), indent=1, allow_nan=False) + "\n"
    write_atomic(path, text)
    return [path, preprocessing.write_golden(directory)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kbnn.apps.android",
        description="Write the golden vectors and example assets the Android demo's JVM tests use.",
    )
    parser.add_argument(
        "--write-golden", metavar="DIR", help="e.g. android_demo/core/src/test/resources/golden"
    )
    parser.add_argument(
        "--write-example",
        metavar="DIR",
        help="e.g. android_demo/core/src/test/resources/assets_example",
    )
    args = parser.parse_args(argv)
    if not (args.write_golden or args.write_example):
        parser.error("give --write-golden DIR and/or --write-example DIR")
    if args.write_golden:
        for path in write_golden(args.write_golden):
            print(f"wrote {path} ({os.path.getsize(path):,} bytes)")
    if args.write_example:
        print(write_example(args.write_example).summary())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = [
    "AndroidExport",
    "count_ops",
    "decoding_golden",
    "evaluate_flatbuffer",
    "export_android",
    "resolve_model",
    "weight_bits",
    "write_golden",
]
