"""kbnn.distribute in this process: strategies by name, learning-rate scaling, sharding, mixed
precision, synchronized BN, the local cluster launcher and `train` on the default strategy
(multi-device and multi-worker runs: tests/test_distribute_strategies.py)."""

import json
import math
import os
import sys
import time

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
import kbnn.distribute as kd
from kbnn import data as kdata
from kbnn.distribute import local_cluster
from kbnn.errors import KbnnError, UsageError
from kbnn.zoo import training as zoo_training

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

# --------------------------------------------------------------------------- strategies


def test_default_strategy_and_instances_pass_through():
    strategy = kd.get_strategy("default")
    assert strategy is tf.distribute.get_strategy()
    assert kd.get_strategy(strategy) is strategy
    assert kd.global_batch_size(32, strategy) == 32
    assert kd.is_chief(strategy) and kd.worker_index(strategy) == (0, 1)


def test_mirrored_is_one_instance_per_device_set():
    first = kd.get_strategy("mirrored", devices=["/cpu:0"])
    assert kd.get_strategy("Mirrored", devices=["/CPU:0"]) is first
    assert first.num_replicas_in_sync == 1
    assert kd.global_batch_size(8, first) == 8


@pytest.mark.parametrize("name", ["parameter_server", "", None, 3])
def test_unknown_strategy_names_the_choices(name):
    with pytest.raises(UsageError, match="strategy: expected one of"):
        kd.get_strategy(name)


def test_mirrored_with_missing_devices():
    with pytest.raises(kd.DeviceNotFoundError, match="gpu:7"):
        kd.get_strategy("mirrored", devices=["/gpu:7"])


def test_multiworker_needs_a_valid_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UsageError, match="TF_CONFIG"):
        kd.get_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(UsageError, match="TF_CONFIG must be JSON"):
        kd.get_strategy("multiworker")
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}})
    )
    with pytest.raises(UsageError, match="non-empty"):
        kd.get_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", kd.tf_config(["127.0.0.1:1"], 0))
    with pytest.raises(UsageError, match="communication"):
        kd.get_strategy("multiworker", communication="carrier_pigeon")


def test_tpu_fails_fast_without_a_tpu():
    start = time.monotonic()
    with pytest.raises(kd.DeviceNotFoundError, match="no TPU found for tpu='local'"):
        kd.get_strategy("tpu")
    assert time.monotonic() - start < 10
    assert isinstance(kd.DeviceNotFoundError("x"), KbnnError)


def test_tf_config_json():
    config = json.loads(kd.tf_config(["10.0.0.1:2222", "10.0.0.2:2222"], 1))
    assert config == {
        "cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]},
        "task": {"type": "worker", "index": 1},
    }
    with pytest.raises(UsageError, match="index"):
        kd.tf_config(["a:1"], 1)
    with pytest.raises(UsageError, match="host:port"):
        kd.tf_config(["nohost"], 0)


def test_split_cpu_after_initialisation_is_a_clear_error():
    tf.config.list_logical_devices()  # make sure TensorFlow's devices exist
    existing = len(tf.config.list_logical_devices("CPU"))
    assert kd.split_cpu(existing) == [f"/cpu:{i}" for i in range(existing)]
    with pytest.raises(UsageError, match="new process"):
        kd.split_cpu(existing + 3)
    with pytest.raises(UsageError, match="positive"):
        kd.split_cpu(0)


@pytest.mark.parametrize("value", [0, -4, 2.5, True, None])
def test_global_batch_size_validates(value):
    with pytest.raises(UsageError, match="per_replica_batch_size"):
        kd.global_batch_size(value, tf.distribute.get_strategy())


# --------------------------------------------------------------------------- learning rate


def test_learning_rate_scaling_rules():
    args = dict(global_batch_size=800, reference_batch_size=100)
    assert kd.scale_learning_rate(1e-3, rule="linear", **args) == pytest.approx(8e-3)
    assert kd.scale_learning_rate(1e-3, rule="sqrt", **args) == pytest.approx(1e-3 * math.sqrt(8))
    assert kd.scale_learning_rate(1e-3, rule="none", **args) == pytest.approx(1e-3)
    # One replica at the recipe's batch: the recipe's learning rate, whatever the rule.
    for rule in kd.LR_SCALING_CHOICES:
        assert kd.scale_learning_rate(
            0.01, global_batch_size=100, reference_batch_size=100, rule=rule
        ) == pytest.approx(0.01)


def test_learning_rate_scaling_validates():
    with pytest.raises(UsageError, match="lr_scaling"):
        kd.scale_learning_rate(1e-3, global_batch_size=8, reference_batch_size=8, rule="cubic")
    with pytest.raises(UsageError, match="reference_batch_size"):
        kd.scale_learning_rate(1e-3, global_batch_size=8, reference_batch_size=0)
    with pytest.raises(UsageError, match="learning_rate"):
        kd.scale_learning_rate(-1.0, global_batch_size=8, reference_batch_size=8)


# --------------------------------------------------------------------------- sharding


@pytest.mark.parametrize(
    "name, policy", [("file", "FILE"), ("data", "DATA"), ("off", "OFF"), ("auto", "AUTO")]
)
def test_shard_policy_is_set_on_the_dataset(name, policy):
    options = tf.data.Options()
    options.deterministic = False
    dataset = tf.data.Dataset.range(4).with_options(options)
    sharded = kdata.with_shard_policy(dataset, name)
    got = sharded.options()
    assert got.experimental_distribute.auto_shard_policy == getattr(
        tf.data.experimental.AutoShardPolicy, policy
    )
    assert got.deterministic is False  # other options kept
    assert list(sharded.as_numpy_iterator()) == [0, 1, 2, 3]


def test_shard_policy_validates():
    with pytest.raises(UsageError, match="shard policy"):
        kdata.shard_policy("hint")
    with pytest.raises(UsageError, match="tf.data.Dataset"):
        kdata.with_shard_policy([1, 2], "data")


def test_mnist_recipe_data_is_sharded_by_data(mnist_available):
    splits = zoo_training.mnist_datasets(validation_size=1000, seed=0)(
        200, tf.distribute.get_strategy()
    )
    data = tf.data.experimental.AutoShardPolicy.DATA
    assert splits.train.options().experimental_distribute.auto_shard_policy == data
    assert splits.validation.options().experimental_distribute.auto_shard_policy == data
    assert splits.steps_per_epoch == math.ceil(59_000 / 200)
    images, _ = next(iter(splits.train))
    assert images.shape == (200, 28, 28, 1)


# --------------------------------------------------------------------------- mixed precision


def _tiny_binary_model(fan_in=2048, units=64):
    inputs = tf.keras.Input((fan_in,))
    latent = tf.keras.initializers.RandomUniform(1e-3, 1.0, seed=1)  # |w| >= 1e-3: no underflow
    signs = np.where(np.random.default_rng(1).random((fan_in, units)) < 0.5, -1.0, 1.0)
    x = lq.layers.QuantDense(
        units,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
        name="binary",
        kernel_initializer=latent,
    )(inputs)
    x = tf.keras.layers.BatchNormalization(name="bn")(x)
    outputs = tf.keras.layers.Activation("softmax", name="softmax")(x)
    model = tf.keras.Model(inputs, outputs)
    kernel = model.get_layer("binary").kernel
    kernel.assign(kernel * signs)
    return model


def test_with_precision_keeps_the_output_float32_and_binary_sums_exact():
    model = _tiny_binary_model()
    mixed = kd.with_precision(model, "mixed_float16")
    assert mixed.get_layer("binary").compute_dtype == "float16"
    assert mixed.get_layer("bn").compute_dtype == "float16"  # BN statistics: float32 inside
    assert mixed.get_layer("softmax").compute_dtype == "float32"
    assert mixed.output.dtype == tf.float32
    for a, b in zip(model.get_weights(), mixed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(2).standard_normal((16, 2048)).astype(np.float32)
    # ±1 · ±1 summed over 2048 inputs: integers up to 2048 are exact in float16.
    binary32 = tf.keras.Model(model.input, model.get_layer("binary").output)(x)
    binary16 = tf.keras.Model(mixed.input, mixed.get_layer("binary").output)(x)
    assert binary16.dtype == tf.float16
    np.testing.assert_array_equal(binary16.numpy().astype(np.float32), binary32.numpy())
    np.testing.assert_allclose(mixed(x), model(x), atol=2e-3)
    assert tf.keras.mixed_precision.global_policy().name == "float32"  # left as it was


def test_float32_reasons():
    model = _tiny_binary_model(fan_in=8, units=4)
    assert kd.float32_reason(model.get_layer("binary")) is None
    assert kd.float32_reason(model.get_layer("bn")) is None
    assert "output" in kd.float32_reason(model.get_layer("softmax"), is_output=True)
    scaled = lq.layers.QuantDense(4, kernel_quantizer="magnitude_aware_sign")
    assert "scale" in kd.float32_reason(scaled)


def test_with_precision_keeps_scaled_quantizers_float32():
    layers = pytest.importorskip("kbnn.layers")
    if not hasattr(layers, "DorefaDense"):
        pytest.skip("kbnn.layers.DorefaDense not available")
    inputs = tf.keras.Input((3136,))
    outputs = layers.DorefaDense(64, bit_w=1, bit_a=3, name="dorefa")(inputs)
    outputs = tf.keras.layers.Dense(10, name="head")(outputs)
    model = tf.keras.Model(inputs, outputs)
    mixed = kd.with_precision(model, "mixed_float16")
    assert mixed.get_layer("dorefa").compute_dtype == "float32"
    assert "scale" in kd.float32_reason(mixed.get_layer("dorefa"))
    x = np.random.default_rng(0).standard_normal((4, 3136)).astype(np.float32)
    np.testing.assert_allclose(mixed(x), model(x), rtol=1e-5, atol=1e-5)


def test_loss_scaling_only_for_float16():
    adam = tf.keras.optimizers.Adam()
    assert kd.loss_scale_optimizer(adam, "float32") is adam
    assert kd.loss_scale_optimizer(adam, "mixed_bfloat16") is adam
    wrapped = kd.loss_scale_optimizer(adam, "mixed_float16")
    assert isinstance(wrapped, tf.keras.mixed_precision.LossScaleOptimizer)
    assert kd.loss_scale_optimizer(wrapped, "mixed_float16") is wrapped
    with pytest.raises(UsageError, match="policy"):
        kd.loss_scale_optimizer(adam, "float8")


def test_bop_trains_under_mixed_float16():
    """Bop (in larq's CaseOptimizer) behind the legacy LossScaleOptimizer still sets the binary
    kernel to ±1 and trains the rest."""
    from kbnn.optimizers import get

    model = kd.with_precision(_tiny_binary_model(fan_in=32, units=10), "mixed_float16")
    optimizer = kd.loss_scale_optimizer(get("bop"), "mixed_float16")
    model.compile(optimizer, "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 32)).astype(np.float32), rng.integers(0, 10, 64)
    gamma_before = model.get_layer("bn").gamma.numpy()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    kernel = model.get_layer("binary").kernel.numpy()
    assert set(np.unique(kernel)) <= {-1.0, 1.0}
    assert np.all(np.isfinite(model.get_layer("bn").gamma.numpy()))
    assert np.any(model.get_layer("bn").gamma.numpy() != gamma_before)


# --------------------------------------------------------------------------- synchronized BN


def test_synchronize_batch_norm_on_one_replica_changes_nothing():
    model = _tiny_binary_model(fan_in=16, units=8)
    synced = kd.synchronize_batch_norm(model)
    assert synced.get_layer("bn").synchronized
    assert not model.get_layer("bn").synchronized
    x = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    np.testing.assert_allclose(synced(x, training=True), model(x, training=True), atol=1e-6)


def test_synchronize_shift_batch_norm():
    from kbnn.normalization import ShiftBatchNormalization

    inputs = tf.keras.Input((6,))
    model = tf.keras.Model(inputs, ShiftBatchNormalization(name="sbn")(inputs))
    if kd.training._supports_synchronized(ShiftBatchNormalization):
        synced = kd.synchronize_batch_norm(model)
        assert synced.get_layer("sbn").synchronized
        x = np.random.default_rng(0).standard_normal((8, 6)).astype(np.float32)
        np.testing.assert_allclose(synced(x, training=True), model(x, training=True), atol=1e-6)
    else:
        with pytest.raises(UsageError, match="synchronized"):
            kd.synchronize_batch_norm(model)


# --------------------------------------------------------------------------- local cluster


def test_free_ports_are_distinct():
    ports = local_cluster.free_ports(4)
    assert len(set(ports)) == 4 and all(1024 <= p < 65536 for p in ports)


PRINT_CONFIG = "import os; print(os.environ['TF_CONFIG']); print(os.environ['no_proxy'])"


def test_local_cluster_gives_each_worker_its_tf_config(tmp_path):
    results = local_cluster.run(
        [sys.executable, "-c", PRINT_CONFIG], 3, timeout=60, log_dir=tmp_path
    )
    configs = [json.loads(r.output().splitlines()[0]) for r in results]
    assert [r.returncode for r in results] == [0, 0, 0]
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
    workers = configs[0]["cluster"]["worker"]
    assert len(set(workers)) == 3 and all(w.startswith("127.0.0.1:") for w in workers)
    assert all(c["cluster"]["worker"] == workers for c in configs)
    assert "127.0.0.1" in results[0].output().splitlines()[1]


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_local_cluster_stops_the_others_when_one_fails(tmp_path):
    code = (
        "import json, os, sys, time\n"
        "index = json.loads(os.environ['TF_CONFIG'])['task']['index']\n"
        "time.sleep(60) if index == 0 else sys.exit(5)\n"
    )
    start = time.monotonic()
    results = local_cluster.run([sys.executable, "-c", code], 2, timeout=60, log_dir=tmp_path)
    assert time.monotonic() - start < 30
    assert results[0].stopped and results[0].returncode is None
    assert results[1].returncode == 5 and not results[1].stopped
    assert not any(_alive(r.pid) for r in results)


def test_local_cluster_time_limit_kills_everything(tmp_path):
    results = local_cluster.run(
        [sys.executable, "-c", "import time; time.sleep(60)"], 2, timeout=1.5, log_dir=tmp_path
    )
    assert all(r.stopped for r in results)
    assert not any(_alive(r.pid) for r in results)
    with pytest.raises(UsageError, match="num_workers"):
        local_cluster.run(["true"], 0, timeout=1)
    with pytest.raises(UsageError, match="timeout"):
        local_cluster.run(["true"], 1, timeout=0)


# --------------------------------------------------------------------------- train (1 replica)


def _synthetic_data(steps=2):
    rng = np.random.default_rng(0)

    def make(global_batch_size, strategy):
        x = rng.random((global_batch_size * steps, 28, 28, 1), dtype=np.float32)
        y = rng.integers(0, 10, global_batch_size * steps)
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(global_batch_size)
        return kdata.DataSplits(ds, ds.take(1), steps)

    return make


class _StopAfterEpoch(tf.keras.callbacks.Callback):
    """Simulates a crash: raises at the end of `epoch` (after BackupAndRestore saved it)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("simulated crash")


def test_train_on_the_default_strategy_resumes_from_backup(tmp_path):
    args = dict(
        strategy="default",
        per_replica_batch_size=8,
        epochs=2,
        optimizer="adam",
        learning_rate=1e-3,
        lr_scaling="linear",
        datasets=_synthetic_data(),
        output=tmp_path / "run",
        evaluate_test=False,
        verbose=0,
    )
    with pytest.raises(RuntimeError, match="simulated crash"):
        zoo_training.train("binarynet_mnist", callbacks=[_StopAfterEpoch(0)], **args)
    assert (tmp_path / "run" / "backup" / "chief" / "checkpoint").is_file()

    result = zoo_training.train("binarynet_mnist", **args)
    assert result.epochs_run == [1]  # epoch 0 restored, not run again
    assert result.num_replicas == 1 and result.global_batch_size == 8
    # lr tuned for the recipe's batch (100), scaled linearly to the global batch of 8
    assert result.learning_rate == pytest.approx(1e-3 * 8 / 100)
    assert result.is_chief and result.strategy == "default"
    for name in ("model.keras", "training_log.csv", "training_curves.png"):
        assert (tmp_path / "run" / name).is_file(), name
    assert not (tmp_path / "run" / "backup" / "chief").exists()  # deleted after finishing
    assert len(result.final_weights) == len(result.model.weights)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lr_scaling": "cubic"}, "lr_scaling"),
        ({"epochs": 0}, "epochs"),
        ({"optimizer": "sgd"}, "optimizer"),
        ({"mixed_precision": "float8"}, "policy"),
        ({"backup_freq": 0}, "backup_freq"),
        ({"strategy": "ps"}, "strategy"),
        ({"per_replica_batch_size": -1}, "per_replica_batch_size"),
    ],
)
def test_train_validates_before_training(tmp_path, kwargs, match):
    with pytest.raises(UsageError, match=match):
        zoo_training.train("binarynet_mnist", output=tmp_path, datasets=_synthetic_data(), **kwargs)


def test_train_unknown_model():
    with pytest.raises(UsageError, match="unknown zoo model"):
        zoo_training.train("resnet9000")
