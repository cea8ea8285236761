"""Third-party larq models through kbnn.converters and plain LCE: size, binary ops, agreement, time.

Every `larq_zoo.literature.*` / `larq_zoo.sota.*` model (larq-zoo 2.4.0) is built with
`weights=None` at a small input, its BatchNorm statistics perturbed (so BN is not the
identity), then converted with `kbnn.converters.convert` and with plain
`larq_compute_engine.convert_keras_model`. Both flatbuffers run in LCE's interpreter on the
same random inputs and are compared with Keras `predict`.

larq-zoo pins protobuf < 3.21, so it goes into a separate environment with `--no-deps`:

    python3 -m venv /tmp/lz
    echo "import site; site.addsitedir('$VIRTUAL_ENV/lib/python3.11/site-packages')" \\
        > /tmp/lz/lib/python3.11/site-packages/overlay.pth
    /tmp/lz/bin/pip install --no-deps larq-zoo==2.4.0 'zookeeper<1.4' 'typeguard<3' click
    /tmp/lz/bin/python benchmarks/compat_larq_zoo.py [--models QuickNet,XNORNet] [--size 96]

Prints a markdown table (results: docs/stack.md).
"""

from __future__ import annotations

import argparse
import time

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import converters
from kbnn.converters.verify import lce_outputs

import larq_compute_engine as lce
import numpy as np
import tensorflow as tf

MODULES = ("literature", "sota")


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


def perturb_batchnorm(model, seed: int = 0) -> None:
    """Random moving mean/variance, gamma and beta for every BatchNormalization."""
    rng = np.random.default_rng(seed)
    for layer in model.submodules:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, w.shape).astype(np.float32)
                    if "gamma" in v.name or "variance" in v.name
                    else rng.normal(0, 0.1, w.shape).astype(np.float32)
                    for v, w in zip(layer.weights, layer.get_weights(), strict=True)
                ]
            )


def _agreement(flatbuffer: bytes, x: np.ndarray, keras: np.ndarray) -> tuple[float, float]:
    (outputs,) = lce_outputs(flatbuffer, [x])
    outputs = outputs.reshape(keras.shape)
    return float(np.mean(outputs.argmax(-1) == keras.argmax(-1))), float(
        np.abs(outputs - keras).max()
    )


def _bconvs(flatbuffer: bytes) -> int:
    return converters.read_flatbuffer(flatbuffer).op_counts().get("LceBconv2d", 0)


def measure(name: str, factory, size: int, samples: int) -> dict:
    tf.keras.backend.clear_session()
    model = factory(input_shape=(size, size, 3), weights=None, num_classes=10)
    perturb_batchnorm(model)
    x = np.random.default_rng(1).uniform(-1, 1, (samples, size, size, 3)).astype(np.float32)
    keras = model.predict(x, verbose=0)
    row = {"model": name}
    start = time.perf_counter()
    plain = lce.convert_keras_model(model)
    row["lce_s"] = time.perf_counter() - start
    row["lce_bytes"], row["lce_bconv"] = len(plain), _bconvs(plain)
    row["lce_agree"], row["lce_diff"] = _agreement(plain, x, keras)
    start = time.perf_counter()
    try:
        conversion = converters.convert(model)
    except Exception as err:  # a refusal is a result: recorded with its reason
        row["kbnn"] = f"refused: {str(err).splitlines()[0][:120]}"
        return row
    row["kbnn_s"] = time.perf_counter() - start
    flatbuffer = conversion.flatbuffer
    row["kbnn_bytes"], row["kbnn_bconv"] = len(flatbuffer), _bconvs(flatbuffer)
    row["kbnn_agree"], row["kbnn_diff"] = _agreement(flatbuffer, x, keras)
    return row


def _format(row: dict) -> str:
    lce_part = (
        f"{row['lce_bytes']:,} | {row['lce_bconv']} | {row['lce_agree']:.0%} "
        f"({row['lce_diff']:.2g}) | {row['lce_s']:.1f}"
    )
    if "kbnn" in row:
        return f"| {row['model']} | {row['kbnn']} | | | | {lce_part} |"
    return (
        f"| {row['model']} | {row['kbnn_bytes']:,} | {row['kbnn_bconv']} | "
        f"{row['kbnn_agree']:.0%} ({row['kbnn_diff']:.2g}) | {row['kbnn_s']:.1f} | {lce_part} |"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", help="comma-separated larq-zoo class names (default: all)")
    parser.add_argument("--size", type=int, default=96, help="input height = width")
    parser.add_argument("--samples", type=int, default=8, help="random inputs compared")
    args = parser.parse_args(argv)
    models = zoo_models()
    names = args.models.split(",") if args.models else sorted(models)
    print(
        f"larq-zoo models at {args.size}x{args.size}x3, weights=None, BN perturbed, "
        f"{args.samples} uniform(-1, 1) inputs; agreement = argmax vs Keras predict "
        "(max |diff|)\n"
    )
    print(
        "| model | kbnn bytes | kbnn LceBconv2d | kbnn agreement | kbnn s | LCE bytes | "
        "LCE LceBconv2d | LCE agreement | LCE s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in names:
        print(_format(measure(name, models[name], args.size, args.samples)), flush=True)


if __name__ == "__main__":
    main()
