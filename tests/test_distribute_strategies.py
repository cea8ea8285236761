"""kbnn.distribute.train on real tf.distribute strategies, each run in a fresh interpreter.

Logical CPU devices can only be configured before TensorFlow initialises, and multi-worker
training needs one process per worker, so every scenario runs as a subprocess with a hard
timeout (children are killed in `finally` / by `kbnn.distribute.local_cluster.run`).

Equality with single-device training is checked in float64: the computations are the same,
only the order of the float reductions differs (per-replica sums, then an all-reduce), which is
~1e-16 relative in float64. In float32 the same reduction-order noise (~1e-7) is amplified by
two discontinuities of BNN training — AP2 rounding in ShiftAdaMax (an update jumps by 2× when
|g| crosses a power-of-two boundary: 6e-4 in latent weights after 3 steps) and Adam's
normalisation of near-zero gradients (4e-5 in BN parameters) — measured in
docs/distributed_training.md; float64 makes those boundary hits vanishingly rare, so a tight
tolerance tests the distribution itself.
"""

import json
import os
import pathlib
import sys
import textwrap

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn.distribute import local_cluster

import numpy as np
import pytest

pytestmark = pytest.mark.slow

TIMEOUT_S = 540  # hard limit per interpreter; an idle 2-core machine needs ~30-60 s
FLOAT64_TOL = 1e-9

# The seed BinaryNet (kbnn.zoo "binarynet_mnist") trained by kbnn.zoo.training.train on a fixed
# synthetic global batch sequence; prints one JSON line per run.
TRAIN_SNIPPET = """
import json, os, pathlib, sys
import kbnn.distribute as kd
from kbnn import data as kdata
from kbnn.zoo import training as zoo_training
import numpy as np
import tensorflow as tf

tf.keras.backend.set_floatx("float64")
GLOBAL_BATCH, STEPS = 16, 3
rng = np.random.default_rng(0)
x = rng.random((GLOBAL_BATCH * STEPS, 28, 28, 1))
y = rng.integers(0, 10, GLOBAL_BATCH * STEPS)


def data(global_batch_size, strategy):
    assert global_batch_size == GLOBAL_BATCH, global_batch_size
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(global_batch_size)
    return kdata.DataSplits(kdata.with_shard_policy(ds, "data"), None, STEPS)


def run(strategy, replicas, optimizer, out, epochs=1, sync_bn=True, bn="batchnorm",
        callbacks=(), **kwargs):
    result = zoo_training.train("binarynet_mnist", strategy=strategy,
                      per_replica_batch_size=GLOBAL_BATCH // replicas, epochs=epochs,
                      optimizer=optimizer, learning_rate=1e-3, lr_scaling="none", bn=bn,
                      sync_bn=sync_bn, datasets=data, output=out, evaluate_test=False,
                      callbacks=list(callbacks), verbose=0, **kwargs)
    assert result.num_replicas == replicas and result.global_batch_size == GLOBAL_BATCH
    return result
"""

MIRRORED_SCRIPT = (
    TRAIN_SNIPPET
    + """
class InitialWeights(tf.keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = self.model.get_weights()


devices = kd.split_cpu(2)
out = pathlib.Path(sys.argv[1])
cases = json.loads(sys.argv[2])
report = {}
for case in cases:
    name, optimizer, bn, sync = case["name"], case["optimizer"], case["bn"], case["sync"]
    initial = InitialWeights()
    single = run("default", 1, optimizer, out / f"{name}-single", bn=bn, sync_bn=sync,
                 callbacks=[initial])
    mirrored = run("mirrored", 2, optimizer, out / f"{name}-mirrored", bn=bn, sync_bn=sync,
                   devices=devices)
    np.savez(out / f"{name}-initial.npz", *initial.weights)
    np.savez(out / f"{name}-single.npz", *single.final_weights)
    np.savez(out / f"{name}-mirrored.npz", *mirrored.final_weights)
    report[name] = {"names": [w.name for w in single.model.weights]}

# DoReFa's gradient quantizer: identity forward, per-example max inside each replica's step.
try:
    from kbnn.quantizers import DoReFaGradient
except ImportError:
    DoReFaGradient = None
if DoReFaGradient is not None:
    tf.keras.backend.set_floatx("float32")
    strategy = kd.get_strategy("mirrored", devices=devices)
    with strategy.scope():
        quantizer = DoReFaGradient(k_bit=2, seed=3)
    xs = rng.standard_normal((8, 5, 3)).astype(np.float32)
    cs = (rng.standard_normal((8, 5, 3)) * 10.0 ** np.arange(-3, 5)[:, None, None]).astype(
        np.float32)  # upstream gradients whose scale differs by 10x from example to example

    def step(x, c):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = quantizer(x)
            loss = tf.reduce_sum(y * c)
        return y, tape.gradient(loss, x)

    inputs = strategy.experimental_distribute_values_from_function(
        lambda ctx: (tf.constant(xs[ctx.replica_id_in_sync_group * 4:][:4]),
                     tf.constant(cs[ctx.replica_id_in_sync_group * 4:][:4])))
    ys, gs = strategy.run(step, args=inputs)
    y = np.concatenate([t.numpy() for t in strategy.experimental_local_results(ys)])
    g = np.concatenate([t.numpy() for t in strategy.experimental_local_results(gs)])
    np.savez(out / "dorefa_gradient.npz", x=xs, c=cs, y=y, g=g)
    report["dorefa_gradient"] = {"replicas": strategy.num_replicas_in_sync}
print("REPORT " + json.dumps(report))
"""
)

WORKER_SCRIPT = (
    TRAIN_SNIPPET
    + """
config = json.loads(sys.argv[1])
out = pathlib.Path(config["out"])
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"] if "TF_CONFIG" in os.environ else 0


class CrashAfterEpoch(tf.keras.callbacks.Callback):
    # Simulates a preempted machine: the process dies without any cleanup.
    def on_epoch_end(self, epoch, logs=None):
        if epoch == config.get("crash_epoch") and index == config.get("crash_worker"):
            os._exit(3)


multi = "TF_CONFIG" in os.environ
result = run("multiworker" if multi else "default", 2 if multi else 1, "adam",
             config["run_dir"], epochs=3, callbacks=[CrashAfterEpoch()])
np.savez(out / f"weights{index}.npz", *result.final_weights)
(out / f"result{index}.json").write_text(json.dumps(
    {"epochs_run": result.epochs_run, "chief": result.is_chief}))
"""
)


def _env(tmp_path):
    """The workers' environment; their temporary folders go under `tmp_path`, so a worker
    killed on purpose does not leave its private folder in the system's /tmp."""
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TMPDIR=str(scratch))
    env.pop("TF_CONFIG", None)
    return env


def _run_script(run, script: str, *args, tmp_path):
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(script))
    return run(path, *args, timeout=TIMEOUT_S)


def _weights(path):
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def _max_diff(a, b):
    assert len(a) == len(b)
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))


def _shift_bn_synchronizable():
    import inspect

    from kbnn.normalization import ShiftBatchNormalization

    return "synchronized" in inspect.signature(ShiftBatchNormalization.__init__).parameters


def test_mirrored_two_cpus_matches_single_device(tmp_path, run_fresh_python):
    """MirroredStrategy over 2 logical CPUs = one device on the same global batch, for every
    optimizer; per-replica BN statistics (no sync) do not; DoReFa's gradient max is per example."""
    cases = [
        {"name": opt, "optimizer": opt, "bn": "batchnorm", "sync": True}
        for opt in ("adam", "shift_adamax", "bop")
    ]
    cases.append(
        {"name": "adam-unsynced-bn", "optimizer": "adam", "bn": "batchnorm", "sync": False}
    )
    if _shift_bn_synchronizable():
        cases.append(
            {"name": "shift_adamax-sbn", "optimizer": "shift_adamax", "bn": "shift", "sync": True}
        )
    output = _run_script(
        run_fresh_python, MIRRORED_SCRIPT, str(tmp_path), json.dumps(cases), tmp_path=tmp_path
    )
    report = json.loads(output.split("REPORT ", 1)[1].splitlines()[0])

    for case in cases:
        name = case["name"]
        initial = _weights(tmp_path / f"{name}-initial.npz")
        single = _weights(tmp_path / f"{name}-single.npz")
        mirrored = _weights(tmp_path / f"{name}-mirrored.npz")
        if case["sync"]:
            assert _max_diff(single, mirrored) < FLOAT64_TOL, name
        else:
            # Per-replica batch statistics: BN of a half batch, a different computation.
            assert _max_diff(single, mirrored) > 1e-6, name
        is_kernel = ["kernel" in n for n in report[name]["names"]]
        assert sum(is_kernel) == 4  # conv1, conv2, dense1, dense2
        for start, end, kernel in zip(initial, single, is_kernel, strict=True):
            if kernel:  # trained, and the latent weights stay clipped to [-1, 1]
                assert np.max(np.abs(end - start)) > 0, name
                assert np.max(np.abs(end)) <= 1.0, name
                if case["optimizer"] == "bop":  # Bop sets binary variables to exactly ±1
                    assert set(np.unique(end)) <= {-1.0, 1.0}, name
                    assert np.sum(np.sign(end) != np.sign(start)) > 0, name

    if "dorefa_gradient" in report:
        data = np.load(tmp_path / "dorefa_gradient.npz")
        x, c, y, g = data["x"], data["c"], data["y"], data["g"]
        assert report["dorefa_gradient"]["replicas"] == 2
        np.testing.assert_array_equal(y, x)  # identity forward
        assert g.shape == x.shape
        n = 2**2 - 1
        for i in range(len(x)):  # the grid of example i is set by its own max|dy|
            m = np.max(np.abs(c[i]))
            levels = n * (g[i] / (2 * m) + 0.5)
            np.testing.assert_allclose(levels, np.round(levels), atol=1e-4)
            assert np.max(np.abs(g[i] - c[i])) <= 2 * m / n * (1 + 1e-5)


def test_multiworker_two_processes_identical_and_resume_after_kill(tmp_path, run_fresh_python):
    """Two MultiWorkerMirroredStrategy workers on 127.0.0.1: one is killed after epoch 2 of 3,
    the cluster is restarted, BackupAndRestore resumes at epoch 3; both workers end with the
    same weights, equal to uninterrupted single-device training on the same global batches."""
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER_SCRIPT))
    cluster, single = tmp_path / "cluster", tmp_path / "single"
    cluster.mkdir()
    single.mkdir()
    base = {"out": str(cluster), "run_dir": str(cluster / "run")}

    crashed = local_cluster.run(
        [sys.executable, str(script), json.dumps({**base, "crash_epoch": 1, "crash_worker": 1})],
        2,
        timeout=TIMEOUT_S,
        log_dir=tmp_path / "logs-crash",
        env=_env(tmp_path),
    )
    assert crashed[1].returncode == 3, crashed[1].output()[-3000:]
    assert crashed[0].stopped or crashed[0].returncode != 0  # the survivor cannot go on alone
    assert (cluster / "run" / "backup" / "chief" / "checkpoint").is_file()
    assert not (cluster / "weights0.npz").exists()

    resumed = local_cluster.run(
        [sys.executable, str(script), json.dumps(base)],
        2,
        timeout=TIMEOUT_S,
        log_dir=tmp_path / "logs-resume",
        env=_env(tmp_path),
    )
    for worker in resumed:
        assert worker.returncode == 0, worker.output()[-3000:]
    results = [json.loads((cluster / f"result{i}.json").read_text()) for i in range(2)]
    assert [r["chief"] for r in results] == [True, False]
    for result in results:  # restored from a backup: epoch 0 was not run again
        assert result["epochs_run"] and result["epochs_run"][0] > 0
        assert result["epochs_run"][-1] == 2
    worker0, worker1 = _weights(cluster / "weights0.npz"), _weights(cluster / "weights1.npz")
    assert _max_diff(worker0, worker1) == 0.0
    assert not (cluster / "run" / "backup" / "chief").exists()  # deleted after a clean finish

    _run_script(
        run_fresh_python,
        WORKER_SCRIPT,
        json.dumps({"out": str(single), "run_dir": str(single / "run")}),
        tmp_path=tmp_path,
    )
    reference = _weights(single / "weights0.npz")
    assert json.loads((single / "result0.json").read_text())["epochs_run"] == [0, 1, 2]
    assert _max_diff(worker0, reference) < FLOAT64_TOL
    assert pathlib.Path(cluster / "run" / "model.keras").is_file()
