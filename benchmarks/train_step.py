"""Training-step time of the seed MNIST BinaryNet: kbnn layers vs plain larq layers vs float.

    python benchmarks/train_step.py                       # batch 100, 15 rounds of 5 steps
    python benchmarks/train_step.py --rounds 30 --jit     # XLA-compiled train steps
    python benchmarks/train_step.py --quantizers          # each kernel quantizer alone
    python benchmarks/train_step.py --fit-quality         # five-level fit vs exact optimum

Every model is the seed TensorLayer topology (conv 5×5×32 → pool → BN → act → conv 5×5×64 →
pool → BN → act → dense 256 → BN → act → dense 10 → BN → softmax) and differs only in its
layers. One step is `model.train_on_batch` on the same random batch (returns numpy, so the step
has finished). Models run interleaved, round after round, so that load on the machine hits
them alike; the table reports the median per-step time over the rounds and its ratio to the
float twin, plus the per-step overhead of each quantizer against the float net of the same
activation (TWN, five-level, DoReFa weights+activations, DoReFa gradient quantizer), and the
number of ops in each traced training step (independent of machine load).
"""

import argparse
import statistics
import time

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import layers as kl
from kbnn import quantizers as kq

import larq as lq
import numpy as np
import tensorflow as tf


def seed_net(conv, dense, activation, *, gradient_bits=None, name):
    """The seed topology; conv(filters, first) / dense(units) build the weight layers."""

    def block():
        layers = [
            tf.keras.layers.BatchNormalization(momentum=0.9),
            tf.keras.layers.Activation(activation),
        ]
        if gradient_bits:
            layers.append(kl.GradientQuantizer(gradient_bits, seed=0))
        return layers

    return tf.keras.Sequential(
        [
            tf.keras.Input((28, 28, 1)),
            conv(32, first=True),
            tf.keras.layers.MaxPool2D(2),
            *block(),
            conv(64, first=False),
            tf.keras.layers.MaxPool2D(2),
            *block(),
            tf.keras.layers.Flatten(),
            dense(256),
            *block(),
            dense(10),
            tf.keras.layers.BatchNormalization(momentum=0.9),
            tf.keras.layers.Activation("softmax"),
        ],
        name=name,
    )


def float_conv(filters, first):
    return tf.keras.layers.Conv2D(filters, 5, padding="same", use_bias=False)


def float_dense(units):
    return tf.keras.layers.Dense(units, use_bias=False)


def larq_conv(filters, first):
    return lq.layers.QuantConv2D(
        filters,
        5,
        padding="same",
        use_bias=False,
        input_quantizer=None if first else "ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        pad_values=0.0 if first else 1.0,
    )


def larq_dense(units):
    return lq.layers.QuantDense(
        units,
        use_bias=False,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
    )


def kbnn_conv(filters, first):
    return kl.BinaryConv2D(
        filters, 5, padding="same", input_quantizer=None if first else "ste_sign"
    )


def weight_only(conv_cls, dense_cls):
    return (lambda f, first: conv_cls(f, 5, padding="same"), lambda u: dense_cls(u))


def dorefa_conv(filters, first):
    return kl.DorefaConv2D(filters, 5, padding="same", bit_w=1, bit_a=None if first else 3)


def dorefa_dense(units):
    return kl.DorefaDense(units, bit_w=1, bit_a=3)


MODELS = {
    # name: (builder, float reference for the overhead column)
    "float (htanh)": (lambda: seed_net(float_conv, float_dense, "hard_tanh", name="f1"), None),
    "larq BinaryNet": (
        lambda: seed_net(larq_conv, larq_dense, "hard_tanh", name="lq"),
        "float (htanh)",
    ),
    "kbnn BinaryNet": (
        lambda: seed_net(kbnn_conv, kl.BinaryDense, "hard_tanh", name="kb"),
        "float (htanh)",
    ),
    "float (relu)": (lambda: seed_net(float_conv, float_dense, "relu", name="f2"), None),
    "kbnn TWN": (
        lambda: seed_net(*weight_only(kl.TernaryConv2D, kl.TernaryDense), "relu", name="twn"),
        "float (relu)",
    ),
    "kbnn five-level": (
        lambda: seed_net(*weight_only(kl.FiveLevelConv2D, kl.FiveLevelDense), "relu", name="five"),
        "float (relu)",
    ),
    "kbnn DoReFa W1A3": (
        lambda: seed_net(dorefa_conv, dorefa_dense, "relu", name="dr"),
        "float (relu)",
    ),
    "kbnn DoReFa W1A3G4": (
        lambda: seed_net(dorefa_conv, dorefa_dense, "relu", gradient_bits=4, name="drg"),
        "kbnn DoReFa W1A3",
    ),
}


QUANTIZERS = ["ste_sign", "xnor_weight", "twn", "five_level", "dorefa_weight"]


def quantizer_cost(rounds: int, jit: bool, shape=(3136, 256)):
    """Median ms of one forward+backward of each kernel quantizer on a `shape` kernel.

    The quantizers run interleaved, round after round, like the models."""
    kernel = tf.Variable(np.random.default_rng(0).uniform(-1, 1, size=shape).astype(np.float32))
    quantizers = {alias: kq.get(alias) for alias in QUANTIZERS}
    quantizers["dorefa_weight(k_bit=2)"] = kq.DoReFaWeight(2)
    steps = {}
    for label, quantizer in quantizers.items():

        @tf.function(jit_compile=jit)
        def step(quantizer=quantizer):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(quantizer(kernel))
            return loss, tape.gradient(loss, kernel)  # the loss keeps the forward alive

        step()
        steps[label] = step
    times = {label: [] for label in steps}
    for _ in range(rounds):
        for label, step in steps.items():
            start = time.perf_counter()
            [t.numpy() for t in step()]
            times[label].append((time.perf_counter() - start) * 1e3)
    print(f"kernel {shape}, {rounds} interleaved rounds, jit_compile={jit}")
    print("| quantizer | ms/call (median) | IQR |")
    print("|---|---:|---:|")
    for label, values in times.items():
        q1, median, q3 = statistics.quantiles(values, n=4)
        print(f"| {label} | {median:.1f} | {q1:.1f}–{q3:.1f} |")


def _exact_fit_error(w, max_level=2):
    """Exact min ‖w − α·t‖² by enumerating every breakpoint assignment (numpy, float64)."""
    a = np.abs(w)
    candidates = np.concatenate([2 * a / (2 * j - 1) for j in range(1, max_level + 1)])
    best = (a.sum() ** 2) / a.size  # α → 0: everything at the top level
    for chunk in np.array_split(candidates, max(1, candidates.size // 512)):
        t = np.clip(np.round(a[None, :] / chunk[:, None]), 0, max_level)
        dot, norm = (a * t).sum(1), (t * t).sum(1)
        best = max(best, np.max(np.where(norm > 0, dot**2 / np.maximum(norm, 1e-300), 0)))
    return (a**2).sum() - best


def _lloyd_fit_error(w, max_level=2, steps=8):
    """Plain alternating assignment/α steps from α = E|w|."""
    alpha = np.abs(w).mean()
    for _ in range(steps):
        t = np.clip(np.round(w / alpha), -max_level, max_level)
        alpha = w @ t / (t @ t)
    t = np.clip(np.round(w / alpha), -max_level, max_level)
    return ((w - alpha * t) ** 2).sum()


def fit_quality(kernels: int = 500):
    """Five-level fit error of kbnn and of plain Lloyd, relative to the exact optimum."""
    sizes = [9, 25, 72, 150, 288, 800, 3136]
    kinds = ["normal", "uniform", "laplace", "clipped", "bimodal"]
    ratios = {"kbnn": [], "lloyd": []}
    worst = {}
    for trial in range(kernels):
        rng = np.random.default_rng(trial)
        n, kind = int(rng.choice(sizes)), str(rng.choice(kinds))
        if kind == "clipped":  # latent weights under weight_clip: mass at ±1
            w = np.clip(rng.normal(size=n) * rng.uniform(0.5, 3), -1, 1)
        elif kind == "bimodal":
            w = rng.choice([-1, 1], size=n) * rng.uniform(0.3, 1, size=n)
        elif kind == "uniform":
            w = rng.uniform(-1, 1, size=n)
        else:
            w = getattr(rng, kind)(size=n)
        w = w.astype(np.float32)
        exact = _exact_fit_error(w.astype(np.float64)) + 1e-9
        levels, scale = kq.FiveLevelWeight().integer_levels(w[:, None])
        kbnn_error = ((w - scale.numpy()[0] * levels.numpy()[:, 0]) ** 2).sum() + 1e-9
        for name, error in (
            ("kbnn", kbnn_error),
            ("lloyd", _lloyd_fit_error(w.astype(np.float64)) + 1e-9),
        ):
            ratios[name].append(error / exact)
            if error / exact >= worst.get(name, (0,))[0]:
                worst[name] = (error / exact, n, kind)
    print(f"five-level fit error / exact optimum, {kernels} kernels of {sizes} weights, {kinds}")
    print("| method | median | 90th pct | 99th pct | worst |")
    print("|---|---:|---:|---:|---|")
    for name, values in ratios.items():
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        ratio, n, kind = worst[name]
        print(f"| {name} | {p50:.4f} | {p90:.4f} | {p99:.4f} | {ratio:.4f} ({n} weights, {kind}) |")


def _train_step_ops(model, x, y) -> int:
    """Ops in the traced training step (load-independent: equal graphs cost the same)."""
    step = tf.function(model.train_step)
    graph = step.get_concrete_function(
        (tf.TensorSpec(x.shape, tf.float32), tf.TensorSpec(y.shape, tf.int64))
    ).graph
    return len(graph.get_operations())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=5, help="steps per model per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--jit", action="store_true")
    parser.add_argument("--only", nargs="*", default=None, help="subset of model names")
    parser.add_argument(
        "--quantizers",
        action="store_true",
        help="time each kernel quantizer alone on the 3136×256 dense kernel",
    )
    parser.add_argument(
        "--fit-quality",
        action="store_true",
        help="five-level fit error vs the exact least-squares optimum",
    )
    args = parser.parse_args(argv)
    if args.fit_quality:
        fit_quality()
        return
    if args.quantizers:
        quantizer_cost(args.rounds, args.jit)
        return

    tf.keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(args.batch_size, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, size=args.batch_size)

    names = args.only or list(MODELS)
    models = {}
    for name in names:
        model = MODELS[name][0]()
        model.compile(
            tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", jit_compile=args.jit
        )
        for _ in range(args.warmup):
            model.train_on_batch(x, y)
        models[name] = model

    ops = {name: _train_step_ops(model, x, y) for name, model in models.items()}
    times = {name: [] for name in names}
    for _ in range(args.rounds):
        for name, model in models.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                model.train_on_batch(x, y)
            times[name].append((time.perf_counter() - start) / args.steps * 1e3)

    median = {name: statistics.median(t) for name, t in times.items()}
    print(
        f"batch {args.batch_size}, {args.rounds} rounds × {args.steps} steps, "
        f"jit_compile={args.jit}, TF {tf.__version__}, larq {lq.__version__}"
    )
    print("| model | ms/step (median) | IQR | vs reference | overhead ms/step | graph ops |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        q1, _, q3 = statistics.quantiles(times[name], n=4)
        reference = MODELS[name][1]
        if reference in median:
            ratio = f"{median[name] / median[reference]:.2f}× {reference}"
            overhead = f"{median[name] - median[reference]:+.1f}"
        else:
            ratio, overhead = "—", "—"
        print(
            f"| {name} | {median[name]:.1f} | {q1:.1f}–{q3:.1f} | {ratio} | {overhead} "
            f"| {ops[name]} |"
        )
    if {"kbnn BinaryNet", "larq BinaryNet"} <= set(median):
        print(
            f"\nkbnn / larq = {median['kbnn BinaryNet'] / median['larq BinaryNet']:.3f} "
            "(goal ≤ 1.15)"
        )


if __name__ == "__main__":
    main()
