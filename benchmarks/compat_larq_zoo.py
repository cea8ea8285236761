"""Third-party larq models through kbnn.converters and plain LCE: size, binary ops, agreement, time.

Every `larq_zoo.literature.*` / `larq_zoo.sota.*` model (larq-zoo 2.4.0) is built with
`weights=None` at a small input, its BatchNorm statistics set from a batch of random
inputs and perturbed (`perturb_batchnorm`), then converted with `kbnn.converters.convert`, with plain
`larq_compute_engine.convert_keras_model`, and as a float TFLite model (kbnn's float twin:
quantizers removed, TensorFlow's converter). So are three models written from larq's
documentation (`DOCS_MODELS`). Both LCE flatbuffers run in LCE's interpreter on the same random
inputs and are compared with Keras `predict` by `kbnn.converters.verify` (sign ties apart).

larq-zoo pins protobuf < 3.21 and zookeeper 1.3 pins protobuf < 3.20 and tfds < 4.9, so both
are installed without their dependencies, next to the `larq-zoo-test` extra (typeguard < 3,
click):

    pip install -c constraints.txt -e '.[larq-zoo-test]'
    pip install --no-deps larq-zoo==2.4.0 zookeeper==1.3.4
    python benchmarks/compat_larq_zoo.py [--models QuickNet,docs_mnist] [--size 96]

(or `pip install --target DIR --no-deps larq-zoo==2.4.0 zookeeper==1.3.4 'typeguard<3' click`
and `PYTHONPATH=DIR`). Prints a markdown table (results: docs/stack.md).
"""

from __future__ import annotations

import argparse
import time

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import converters

import larq as lq
import larq_compute_engine as lce
import numpy as np
import tensorflow as tf

MODULES = ("literature", "sota")


#: Smallest input (height = width) some larq-zoo models build at (XNORNet's 5 poolings and
#: valid convolutions leave nothing below 224).
MIN_SIZE = {"XNORNet": 224}


def zoo_models() -> dict[str, object]:
    """Model constructors of larq-zoo by class name (the CamelCase factories)."""
    import larq_zoo

    found = {}
    for module in MODULES:
        namespace = getattr(larq_zoo, module)
        for name in dir(namespace):
            if name[:1].isupper():
                found[name] = getattr(namespace, name)
    return found


_BINARY = dict(
    input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip"
)


def docs_mlp():
    """larq's README ("Getting started"): Flatten, a weight-only binary QuantDense(512), a binary
    QuantDense(10) with softmax, on 28×28 images."""
    return tf.keras.Sequential(
        [
            tf.keras.Input((28, 28, 1)),
            tf.keras.layers.Flatten(),
            lq.layers.QuantDense(512, kernel_quantizer="ste_sign", kernel_constraint="weight_clip"),
            lq.layers.QuantDense(10, activation="softmax", **_BINARY),
        ],
        name="docs_mlp",
    )


def docs_mnist():
    """larq's introduction guide: binary convs 32-64-64 (the first weight-only) with max-pool
    and BatchNorm(scale=False), binary dense 64 and 10, softmax, on MNIST."""
    bn = dict(scale=False)
    layers = [
        tf.keras.Input((28, 28, 1)),
        lq.layers.QuantConv2D(
            32, 3, kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False
        ),
        tf.keras.layers.MaxPooling2D(2),
        tf.keras.layers.BatchNormalization(**bn),
        lq.layers.QuantConv2D(64, 3, use_bias=False, **_BINARY),
        tf.keras.layers.MaxPooling2D(2),
        tf.keras.layers.BatchNormalization(**bn),
        lq.layers.QuantConv2D(64, 3, use_bias=False, **_BINARY),
        tf.keras.layers.BatchNormalization(**bn),
        tf.keras.layers.Flatten(),
        lq.layers.QuantDense(64, use_bias=False, **_BINARY),
        tf.keras.layers.BatchNormalization(**bn),
        lq.layers.QuantDense(10, use_bias=False, **_BINARY),
        tf.keras.layers.BatchNormalization(**bn),
        tf.keras.layers.Activation("softmax"),
    ]
    return tf.keras.Sequential(layers, name="docs_mnist")


def docs_cifar_binarynet():
    """larq's BinaryNet-on-CIFAR-10 tutorial: binary convs 128-128-256-256-512-512 (the first
    weight-only, SAME padding after it) with max-pool and BatchNorm(momentum=0.999,
    scale=False), binary dense 1024-1024-10, softmax."""
    bn = dict(momentum=0.999, scale=False)
    layers = [
        tf.keras.Input((32, 32, 3)),
        lq.layers.QuantConv2D(
            128, 3, kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False
        ),
        tf.keras.layers.BatchNormalization(**bn),
    ]
    for filters, pool in ((128, True), (256, False), (256, True), (512, False), (512, True)):
        layers.append(lq.layers.QuantConv2D(filters, 3, padding="same", use_bias=False, **_BINARY))
        if pool:
            layers.append(tf.keras.layers.MaxPool2D(2, strides=2))
        layers.append(tf.keras.layers.BatchNormalization(**bn))
    layers.append(tf.keras.layers.Flatten())
    for units in (1024, 1024, 10):
        layers.append(lq.layers.QuantDense(units, use_bias=False, **_BINARY))
        layers.append(tf.keras.layers.BatchNormalization(**bn))
    layers.append(tf.keras.layers.Activation("softmax"))
    return tf.keras.Sequential(layers, name="docs_cifar_binarynet")


DOCS_MODELS = {
    "docs_mlp": docs_mlp,
    "docs_mnist": docs_mnist,
    "docs_cifar_binarynet": docs_cifar_binarynet,
}


def perturb_batchnorm(model, x: np.ndarray, seed: int = 0) -> None:
    """BatchNorm statistics as a trained model has them, then perturbed (so BN is no identity).

    One training-mode pass over `x` with every BN's momentum at 0 sets each moving mean and
    variance to the batch statistics of its input (each BN normalizing with those, as in
    training), so activations keep the scale of a trained network; then γ ~ U(0.5, 1.5),
    β ~ N(0, 0.1), variance × U(0.8, 1.25) and mean + N(0, 0.1)·σ. Statistics drawn without
    regard to scale (a variance of 1 on a binary conv's outputs of order K) blow activations up
    to hundreds, where LCE's float32 rounding (≈ 2⁻²⁴·K·|multiplier| absolute) flips signs
    that no trained model would put so close to 0 relative to its values."""
    layers = [m for m in model.submodules if isinstance(m, tf.keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(x, training=True)
    for layer, momentum in zip(layers, momenta, strict=True):
        layer.momentum = momentum
    rng = np.random.default_rng(seed)
    for layer in layers:
        values = {v.name.split("/")[-1].split(":")[0]: v for v in layer.weights}
        variance = values["moving_variance"].numpy()
        shape = variance.shape
        if "gamma" in values:
            values["gamma"].assign(rng.uniform(0.5, 1.5, shape))
        if "beta" in values:
            values["beta"].assign(rng.normal(0, 0.1, shape))
        values["moving_mean"].assign(
            values["moving_mean"].numpy() + rng.normal(0, 0.1, shape) * np.sqrt(variance)
        )
        values["moving_variance"].assign(variance * rng.uniform(0.8, 1.25, shape))


def _agreement(model, flatbuffer: bytes, x: np.ndarray) -> str:
    """argmax agreement (max |diff|) vs Keras predict, and the sign ties `verify` excused."""
    report = converters.verify(model, flatbuffer, x)
    text = f"{report.argmax_agreement:.0%} ({report.max_abs_diff:.2g})"
    if report.ties:
        text += f", {len(report.ties)} tie(s)"
    if report.disagreements:
        text += f", {len(report.disagreements)} real disagreement(s)"
    return text


def _bconvs(flatbuffer: bytes) -> int:
    return converters.read_flatbuffer(flatbuffer).op_counts().get("LceBconv2d", 0)


def build(name: str, size: int):
    """A larq-zoo model at max(size, MIN_SIZE) with 10 classes, or a docs model at its input."""
    if name in DOCS_MODELS:
        return DOCS_MODELS[name]()
    size = max(size, MIN_SIZE.get(name, 0))
    return zoo_models()[name](input_shape=(size, size, 3), weights=None, num_classes=10)


def _timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def measure(name: str, size: int, samples: int) -> dict:
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(0)  # the same random kernels in every run
    model = build(name, size)
    shape = tuple(model.inputs[0].shape[1:])
    x = np.random.default_rng(1).uniform(-1, 1, (samples, *shape)).astype(np.float32)
    perturb_batchnorm(model, np.random.default_rng(2).uniform(-1, 1, (32, *shape)).astype("f4"))
    row = {"model": name, "input": "x".join(map(str, shape))}
    try:
        row["float_bytes"] = len(converters.float_twin_flatbuffer(model))
    except converters.ConversionError as err:
        row["float_bytes"] = f"n/a ({str(err)[:60]})"
    plain, row["lce_s"] = _timed(lce.convert_keras_model, model)
    row["lce_bytes"], row["lce_bconv"] = len(plain), _bconvs(plain)
    row["lce_agree"] = _agreement(model, plain, x)
    try:
        conversion, row["kbnn_s"] = _timed(converters.convert, model)
    except Exception as err:  # a refusal is a result: recorded with its reason
        row["kbnn"] = f"refused: {str(err).splitlines()[0][:120]}"
        return row
    flatbuffer = conversion.flatbuffer
    row["kbnn_bytes"], row["kbnn_bconv"] = len(flatbuffer), _bconvs(flatbuffer)
    row["kbnn_agree"] = _agreement(model, flatbuffer, x)
    return row


HEADER = (
    "| model | input | kbnn B | LCE B | float B | LceBconv2d kbnn / LCE | agreement kbnn | "
    "agreement LCE | convert s kbnn / LCE (ratio) |\n"
    "|---|---|---:|---:|---:|---:|---|---|---:|"
)


def _format(row: dict) -> str:
    floats = row["float_bytes"]
    floats = f"{floats:,}" if isinstance(floats, int) else floats
    head = f"| {row['model']} | {row['input']} |"
    if "kbnn" in row:
        return (
            f"{head} {row['kbnn']} | {row['lce_bytes']:,} | {floats} | – / {row['lce_bconv']} | "
            f"– | {row['lce_agree']} | – / {row['lce_s']:.1f} |"
        )
    return (
        f"{head} {row['kbnn_bytes']:,} | {row['lce_bytes']:,} | {floats} | "
        f"{row['kbnn_bconv']} / {row['lce_bconv']} | {row['kbnn_agree']} | {row['lce_agree']} | "
        f"{row['kbnn_s']:.1f} / {row['lce_s']:.1f} ({row['kbnn_s'] / row['lce_s']:.1f}×) |"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--models", help="comma-separated larq-zoo class names or docs_* models (default: all)"
    )
    parser.add_argument("--size", type=int, default=96, help="larq-zoo input height = width")
    parser.add_argument("--samples", type=int, default=8, help="random inputs compared")
    args = parser.parse_args(argv)
    names = args.models.split(",") if args.models else sorted(zoo_models()) + list(DOCS_MODELS)
    print(
        f"larq-zoo models at {args.size}x{args.size}x3 (XNORNet 224x224x3), docs models at "
        f"their inputs; weights=None, BN perturbed, {args.samples} uniform(-1, 1) inputs; "
        "agreement = argmax vs Keras predict (max |diff|), sign ties counted apart\n"
    )
    print(HEADER)
    for name in names:
        print(_format(measure(name, args.size, args.samples)), flush=True)


if __name__ == "__main__":
    main()
