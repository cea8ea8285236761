"""Conversion time: kbnn.converters.convert against plain LCE on the same model, side by side.

For every model: seconds for `kbnn.converters.convert` (graph passes + LCE + report), split
into its stages, and seconds for `larq_compute_engine.convert_keras_model` on the same
Keras model, then their ratio (issue #18's goal: at most 2x on every larq-zoo model). Each
model is converted `--repeats` times, kbnn and plain LCE alternating, and the fastest run of
each is kept, so load from other processes on a shared machine inflates both sides alike.

Weights are random (seeded); conversion time does not depend on training. ImageNet models
are built at `--size` x `--size` (224 = the papers' input; smaller sizes shrink the
activations but not the kernels, except XNORNet's fc6, which covers the last feature map).

    python benchmarks/conversion_time.py                              # 224x224, markdown
    python benchmarks/conversion_time.py --size 64 --models binary_alexnet,quicknet --repeats 3
    python benchmarks/conversion_time.py --filter-forms --repeats 2   # LCE alone, per filter form
    python benchmarks/conversion_time.py --models XNORNet --repeats 2  # a larq-zoo model

"plain LCE, ±1 kernels" is plain LCE on the model with every binary kernel quantizer set to
ste_sign (`with_sign_kernels`), so that LCE binarizes every layer kbnn binarizes.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import platform
import sys
import time

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import zoo

import larq_compute_engine as lce
import numpy as np
import tensorflow as tf

#: The module (kbnn.converters re-exports its `convert` function under the same name).
convert_module = importlib.import_module("kbnn.converters.convert")
MODELS = ("binarynet_mnist", "binary_alexnet", "xnornet_alexnet", "birealnet18", "quicknet")
#: convert()'s stages, each a module-level function of kbnn.converters.convert timed in place.
STAGES = {
    "passes": ("passes", "lower"),
    "stand-ins": ("large_filters", "find_standins"),
    "LCE": (None, "_lce_convert"),
    "install": ("large_filters", "install_filters"),
    "report": (None, "build_report"),
}


def build(name: str, size: int) -> tf.keras.Model:
    """Zoo model `name`, random seeded weights; ImageNet-size models at size x size x 3. A
    larq-zoo class name (XNORNet, QuickNet, ...) builds that model as
    `benchmarks/compat_larq_zoo.py` does (needs the larq-zoo test extra, docs/stack.md)."""
    tf.keras.utils.set_random_seed(0)
    if name[:1].isupper():
        import compat_larq_zoo

        return compat_larq_zoo.build(name, size)
    spec = zoo.spec(name)
    shape = tuple(spec.input_shape)
    if spec.dataset == "imagenet":
        shape = (size, size, shape[-1])
    return zoo.get(name, input_shape=shape, compile=False)


@contextlib.contextmanager
def stage_timer(seconds: dict[str, float]):
    """Accumulate the time convert() spends in each of STAGES into `seconds`."""
    patched = []
    for stage, (module_name, function_name) in STAGES.items():
        owner = getattr(convert_module, module_name) if module_name else convert_module
        original = getattr(owner, function_name)

        def timed(*args, _original=original, _stage=stage, **kwargs):
            start = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                seconds[_stage] = seconds.get(_stage, 0.0) + time.perf_counter() - start

        setattr(owner, function_name, timed)
        patched.append((owner, function_name, original))
    try:
        yield seconds
    finally:
        for owner, function_name, original in patched:
            setattr(owner, function_name, original)


def time_kbnn(model) -> tuple[float, dict[str, float], int]:
    with stage_timer({}) as stages:
        start = time.perf_counter()
        conversion = convert_module.convert(model, allow_unknown_layers=True)
        total = time.perf_counter() - start
    return total, stages, conversion.size


def time_plain_lce(model) -> tuple[float, int]:
    start = time.perf_counter()
    flatbuffer = lce.convert_keras_model(model)
    return time.perf_counter() - start, len(flatbuffer)


def with_sign_kernels(model) -> tf.keras.Model:
    """`model` with the kernel quantizer of every QuantConv2D on sign inputs set to ste_sign:
    plain LCE then binarizes each of them, the work kbnn does. As is, LCE leaves a kernel
    quantizer it does not constant-fold in the flatbuffer as ops that run at every inference
    (larq-zoo XNORNet's fc6: α·sign(W) over 37.7M latent weights, then a float CONV_2D)."""
    from kbnn.converters import levels
    from kbnn.converters.graph import rebuild

    import larq as lq

    def replace(layer, args, kwargs):
        if type(layer) is not lq.layers.QuantConv2D or layer.kernel_quantizer is None:
            return None
        if levels.input_encoding(layer).kind != "sign":
            return None
        clone = type(layer).from_config({**layer.get_config(), "kernel_quantizer": "ste_sign"})
        outputs = clone(*args, **kwargs)
        clone.set_weights(layer.get_weights())
        return outputs

    return rebuild(model, replace)


def time_plain_lce_or_failure(model) -> tuple[float, int | str]:
    try:
        return time_plain_lce(model)
    except Exception as err:  # LCE's converter raises many types; the row says which
        return float("nan"), f"fails: {type(err).__name__}: {err}"[:80]


def measure(name: str, size: int, repeats: int) -> dict:
    model = build(name, size)
    same_work = with_sign_kernels(model)
    kbnn_runs, plain_runs, same_runs = [], [], []
    for _ in range(repeats):
        kbnn_runs.append(time_kbnn(model))
        plain_runs.append(time_plain_lce_or_failure(model))
        same_runs.append(time_plain_lce_or_failure(same_work))
    kbnn_best = min(kbnn_runs, key=lambda run: run[0])
    plain_best = min(plain_runs, key=lambda run: run[0])
    same_best = min(same_runs, key=lambda run: run[0])
    return {
        "model": name,
        "input": "x".join(str(d) for d in model.input_shape[1:]),
        "weights": int(sum(np.prod(w.shape) for w in model.weights)),
        "kbnn_s": kbnn_best[0],
        "stages": kbnn_best[1],
        "plain_s": plain_best[0],
        "ratio": kbnn_best[0] / plain_best[0],
        "same_s": same_best[0],
        "same_ratio": kbnn_best[0] / same_best[0],
        "kbnn_bytes": kbnn_best[2],
        "plain_bytes": plain_best[1],
    }


def filter_forms(repeats: int) -> str:
    """LCE's own time on one XNORNet-fc6-size binary conv (6x6x256 -> 4096, 37.7M weights) for
    three ways of handing it the same ±α kernel: the constant ±α filter kbnn's passes emit, a
    ±1 filter followed by a per-channel multiply (a BN, fused by LCE), and larq's ste_sign
    kernel quantizer on latent weights (α = 1). Fastest of `repeats`."""
    import larq as lq

    rng = np.random.default_rng(0)
    latent = rng.uniform(-1, 1, (6, 6, 256, 4096)).astype(np.float32)
    signs = np.where(latent < 0, -1.0, 1.0).astype(np.float32)
    alpha = rng.uniform(0.5, 1.5, 4096).astype(np.float32)

    def layer(kernel_quantizer, kernel, multiplier=None):
        inputs = tf.keras.Input((6, 6, 256))
        conv = lq.layers.QuantConv2D(
            4096, 6, input_quantizer="ste_sign", kernel_quantizer=kernel_quantizer,
            use_bias=False, pad_values=1.0,
        )  # fmt: skip
        x = conv(inputs)
        conv.set_weights([kernel])
        if multiplier is not None:
            bn = tf.keras.layers.BatchNormalization(center=False, epsilon=0.0)
            x = bn(x)
            bn.set_weights([multiplier, np.zeros(4096), np.ones(4096)])
        return tf.keras.Model(inputs, x)

    forms = {
        "constant ±α filter (kbnn today)": layer(None, signs * alpha),
        "constant ±1 filter + per-channel multiply": layer(None, signs, alpha),
        "ste_sign kernel quantizer (α = 1)": layer("ste_sign", latent),
    }
    lines = ["| filter handed to LCE | LCE s | bytes |", "| --- | --- | --- |"]
    for name, model in forms.items():
        runs = [time_plain_lce(model) for _ in range(repeats)]
        seconds, size = min(runs)
        lines.append(f"| {name} | {seconds:.1f} | {size:,} |")
    return "\n".join(lines)


HEADER = ("model", "input", "weights", "kbnn s", *(f"{stage} s" for stage in STAGES))
HEADER += ("plain LCE s", "kbnn / plain", "plain LCE, ±1 kernels s", "kbnn / that")
HEADER += ("kbnn bytes", "plain bytes")


def markdown_row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def row_cells(row: dict) -> tuple[str, ...]:
    stages = row["stages"]
    plain_bytes = row["plain_bytes"]
    return (
        row["model"],
        row["input"],
        f"{row['weights'] / 1e6:.1f}M",
        f"{row['kbnn_s']:.1f}",
        *(f"{stages.get(stage, 0.0):.1f}" for stage in STAGES),
        f"{row['plain_s']:.1f}",
        f"{row['ratio']:.2f}x" if np.isfinite(row["ratio"]) else "n/a",
        f"{row['same_s']:.1f}",
        f"{row['same_ratio']:.2f}x" if np.isfinite(row["same_ratio"]) else "n/a",
        f"{row['kbnn_bytes']:,}",
        f"{plain_bytes:,}" if isinstance(plain_bytes, int) else plain_bytes,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated zoo names")
    parser.add_argument("--size", type=int, default=224, help="ImageNet models' input size")
    parser.add_argument("--repeats", type=int, default=1, help="runs per side; fastest kept")
    parser.add_argument(
        "--filter-forms", action="store_true", help="only LCE's time per filter form (fc6 size)"
    )
    args = parser.parse_args(argv)
    if args.size < 63 or args.repeats < 1:
        parser.error("--size must be >= 63 (AlexNet's strides) and --repeats >= 1")
    if args.filter_forms:
        print(filter_forms(args.repeats))
        return 0
    print(
        f"<!-- {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}, tf {tf.__version__}, lce {lce.__version__}, "
        f"fastest of {args.repeats} -->"
    )
    print(markdown_row(HEADER))
    print(markdown_row(("---",) * len(HEADER)), flush=True)
    for name in args.models.split(","):  # one row at a time: a killed run keeps its rows
        print(f"converting {name} ...", file=sys.stderr, flush=True)
        print(markdown_row(row_cells(measure(name, args.size, args.repeats))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
