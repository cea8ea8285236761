"""ShiftBatchNormalization(synchronized=True) under MirroredStrategy over 2 logical CPUs.

Logical CPU devices can only be configured before TensorFlow initialises, so the distributed
half runs in a fresh interpreter (as in `tests/test_distribute_strategies.py`) and saves what
each replica computed; the references are computed here, on one device: the same layer on the
whole global batch (synchronized) or on each replica's half (unsynchronized).
"""

import json
import textwrap

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn.normalization import ShiftBatchNormalization

import numpy as np
import pytest
import tensorflow as tf

TIMEOUT_S = 300
MOMENTUM, EPSILON, STEPS = 0.8, 1e-3, 2
# (name, per-replica shape, axis, dtype, tolerance)
CASES = [
    ("dense64", (6, 5), -1, "float64", 1e-10),
    ("conv64", (3, 4, 3, 5), -1, "float64", 1e-10),
    ("channels_first64", (3, 5, 4, 3), 1, "float64", 1e-10),
    ("dense32", (8, 5), -1, "float32", 2e-5),
]

SCRIPT = """
import json, sys
import kbnn  # noqa: F401
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from kbnn.normalization import ShiftBatchNormalization

out, cases, momentum, epsilon, steps = sys.argv[1], json.loads(sys.argv[2]), *map(
    float, sys.argv[3:5]), int(sys.argv[5])
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert strategy.num_replicas_in_sync == 2
results = {}
for name, shape, axis, dtype, _ in cases:
    data = np.load(f"{out}/{name}-inputs.npz")
    for synchronized in (True, False):
        with strategy.scope():
            layer = ShiftBatchNormalization(axis=axis, momentum=momentum, epsilon=epsilon,
                                            synchronized=synchronized, dtype=dtype)
            layer.build(shape)
            layer.gamma.assign(data["gamma"])
            layer.beta.assign(data["beta"])

        @tf.function
        def step(x, w):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
                loss = tf.reduce_sum(y * w)
            return (y, *tape.gradient(loss, [x, layer.gamma, layer.beta]))

        saved = {}
        for i in range(steps):
            half = shape[0]
            x, w = data[f"x{i}"], data[f"w{i}"]
            values = strategy.experimental_distribute_values_from_function(
                lambda ctx: (tf.constant(x[ctx.replica_id_in_sync_group * half:][:half]),
                             tf.constant(w[ctx.replica_id_in_sync_group * half:][:half])))
            outputs = strategy.run(step, args=values)
            for key, value in zip(("y", "dx", "dgamma", "dbeta"), outputs):
                saved[f"{key}{i}"] = np.stack(
                    [t.numpy() for t in strategy.experimental_local_results(value)])
        saved["moving_mean"] = np.stack(
            [v.numpy() for v in strategy.experimental_local_results(layer.moving_mean)])
        saved["moving_inv_std"] = np.stack(
            [v.numpy() for v in strategy.experimental_local_results(layer.moving_inv_std)])
        np.savez(f"{out}/{name}-{'sync' if synchronized else 'local'}.npz", **saved)
print("DONE")
"""


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory, run_fresh_python):
    """Inputs per case, and what the 2-replica run computed on them (per replica)."""
    out = tmp_path_factory.mktemp("sync_bn")
    rng = np.random.default_rng(0)
    inputs = {}
    for name, shape, axis, dtype, _ in CASES:
        channels = shape[axis]
        global_shape = (2 * shape[0], *shape[1:])
        arrays = {
            "gamma": rng.uniform(0.3, 3.0, channels) * rng.choice([-1.0, 1.0], channels),
            "beta": rng.normal(size=channels),
        }
        for i in range(STEPS):
            x = rng.normal(size=global_shape) * 2.0 + 0.5
            x[shape[0] :] = x[shape[0] :] * 3.0 - 2.0  # the two halves have different statistics
            arrays[f"x{i}"] = x
            arrays[f"w{i}"] = rng.normal(size=global_shape)
        arrays = {k: v.astype(dtype) for k, v in arrays.items()}
        np.savez(out / f"{name}-inputs.npz", **arrays)
        inputs[name] = arrays

    script = out / "script.py"
    script.write_text(textwrap.dedent(SCRIPT))
    output = run_fresh_python(
        script, out, json.dumps(CASES), MOMENTUM, EPSILON, STEPS, timeout=TIMEOUT_S
    )
    assert "DONE" in output, output[-4000:]

    def load(name, mode):
        with np.load(out / f"{name}-{mode}.npz") as data:
            return dict(data)

    return {name: (inputs[name], load(name, "sync"), load(name, "local")) for name, *_ in CASES}


def _single_device(arrays, axis, dtype, batches):
    """One device, no strategy: per step (y, dx, dgamma, dbeta) and the final moving stats,
    training on `batches` = [(x, w), ...]."""
    layer = ShiftBatchNormalization(axis=axis, momentum=MOMENTUM, epsilon=EPSILON, dtype=dtype)
    layer.build(batches[0][0].shape)
    layer.gamma.assign(arrays["gamma"])
    layer.beta.assign(arrays["beta"])
    steps = []
    for x, w in batches:
        x = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * w)
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        steps.append([t.numpy() for t in (y, *grads)])
    return steps, layer.moving_mean.numpy(), layer.moving_inv_std.numpy()


def _close(actual, expected, tol):
    np.testing.assert_allclose(
        actual, expected, rtol=tol, atol=tol * max(1.0, np.abs(expected).max())
    )


@pytest.mark.parametrize("name, shape, axis, dtype, tol", CASES, ids=[c[0] for c in CASES])
def test_synchronized_equals_one_device_on_the_global_batch(
    mirrored, name, shape, axis, dtype, tol
):
    arrays, sync, _ = mirrored[name]
    steps, moving_mean, moving_inv_std = _single_device(
        arrays, axis, dtype, [(arrays[f"x{i}"], arrays[f"w{i}"]) for i in range(STEPS)]
    )
    for i, (y, dx, dgamma, dbeta) in enumerate(steps):
        _close(np.concatenate(sync[f"y{i}"]), y, tol)
        # d(Σ_replicas loss)/dx through the all-reduces = the one-device gradient.
        _close(np.concatenate(sync[f"dx{i}"]), dx, tol)
        _close(sync[f"dgamma{i}"].sum(0), dgamma, tol)  # MirroredStrategy sums these
        _close(sync[f"dbeta{i}"].sum(0), dbeta, tol)
    for replica in range(2):  # both replicas hold the global statistics
        _close(sync["moving_mean"][replica], moving_mean, tol)
        _close(sync["moving_inv_std"][replica], moving_inv_std, tol)


@pytest.mark.parametrize("name, shape, axis, dtype, tol", CASES, ids=[c[0] for c in CASES])
def test_unsynchronized_uses_each_replicas_half(mirrored, name, shape, axis, dtype, tol):
    arrays, sync, local = mirrored[name]
    half = shape[0]
    for replica in range(2):
        part = slice(replica * half, (replica + 1) * half)
        steps, moving_mean, moving_inv_std = _single_device(
            arrays,
            axis,
            dtype,
            [(arrays[f"x{i}"][part], arrays[f"w{i}"][part]) for i in range(STEPS)],
        )
        for i, (y, dx, dgamma, dbeta) in enumerate(steps):
            _close(local[f"y{i}"][replica], y, tol)
            _close(local[f"dx{i}"][replica], dx, tol)
            _close(local[f"dgamma{i}"][replica], dgamma, tol)
            _close(local[f"dbeta{i}"][replica], dbeta, tol)
        _close(local["moving_mean"][replica], moving_mean, tol)
        _close(local["moving_inv_std"][replica], moving_inv_std, tol)
    # ... which is a different computation from the synchronized one on these inputs.
    assert np.abs(local["y0"] - sync["y0"]).max() > 0.1
    assert np.abs(local["moving_mean"][0] - sync["moving_mean"][0]).max() > 0.1


def test_one_replica_is_exactly_the_unsynchronized_layer():
    """No strategy, and MirroredStrategy on a single device: bit-identical to synchronized=False
    (outputs, gradients and moving statistics)."""
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(8, 3, 3, 4)).astype(np.float32) * 2.0)
    w = tf.constant(rng.normal(size=(8, 3, 3, 4)).astype(np.float32))

    def run(strategy, synchronized):
        with strategy.scope():
            layer = ShiftBatchNormalization(momentum=0.5, synchronized=synchronized)
            layer.build(x.shape)
            layer.gamma.assign(rng.uniform(0.3, 3.0, 4).astype(np.float32))

        def step():
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(layer(x, training=True) * w)
            return tape.gradient(loss, [x, layer.gamma, layer.beta])

        grads = strategy.run(step)
        return [np.asarray(strategy.experimental_local_results(t)[0]) for t in grads] + [
            layer.moving_mean.numpy(),
            layer.moving_inv_std.numpy(),
            layer(x, training=True).numpy(),
        ]

    for strategy in (tf.distribute.get_strategy(), tf.distribute.MirroredStrategy(["/cpu:0"])):
        rng = np.random.default_rng(2)
        expected = run(strategy, False)
        rng = np.random.default_rng(2)
        for got, want in zip(run(strategy, True), expected, strict=True):
            np.testing.assert_array_equal(got, want)
