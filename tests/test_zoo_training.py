"""kbnn.zoo.training: optimizers, learning rates, model/data split for tf.distribute."""

import dataclasses

import kbnn.zoo
from kbnn.data import DatasetNotFoundError
from kbnn.zoo import training

import numpy as np
import pytest
import tensorflow as tf


@pytest.mark.parametrize(
    "optimizer, bn", [("adam", "batchnorm"), ("shift_adamax", "shift"), ("bop", "batchnorm")]
)
def test_every_optimizer_and_bn_trains_a_step(optimizer, bn):
    model = training.build_model_for_training(
        "binarynet_mnist", optimizer=optimizer, bn=bn, decay_steps=10
    )
    x = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    y = np.arange(8) % 10
    kernel = model.get_layer("conv2").kernel
    before = kernel.numpy().copy()
    loss, _ = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    if optimizer == "bop":  # Bop flips signs of binary weights; latent values stay ±1-ish
        assert model.optimizer is not None
    else:
        assert not np.array_equal(before, kernel.numpy())
    assert np.abs(kernel.numpy()).max() <= 1.0  # weight_clip holds


def test_cosine_schedule_decays_to_zero():
    opt = training.make_optimizer("adam", learning_rate=1e-2, decay_steps=100)
    schedule = tf.keras.optimizers.schedules.deserialize(opt.get_config()["learning_rate"])
    assert isinstance(schedule, tf.keras.optimizers.schedules.CosineDecay)
    assert float(schedule(0)) == pytest.approx(1e-2)
    assert float(schedule(50)) == pytest.approx(5e-3, rel=1e-3)  # (1 + cos(pi/2)) / 2
    assert float(schedule(100)) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="optimizer: expected one of"):
        training.make_optimizer("sgd", learning_rate=1e-2, decay_steps=1)
    with pytest.raises(ValueError, match="learning_rate: expected a finite number > 0"):
        training.make_optimizer("adam", learning_rate=0.0, decay_steps=1)


def test_model_is_built_under_a_distribution_scope():
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = training.build_model_for_training("binarynet_mnist", decay_steps=5)
    assert model.optimizer is not None
    assert all(isinstance(v, tf.Variable) for v in model.weights)


def test_datasets_use_the_global_batch_size(mnist_available):
    train, val, steps = training.make_datasets(64, validation_size=1000)
    assert steps == -(-59_000 // 64)
    images, labels = next(iter(train))
    assert images.shape == (64, 28, 28, 1) and images.dtype == tf.float32
    assert float(tf.reduce_max(images)) <= 1.0 and labels.shape == (64,)
    assert sum(int(b[1].shape[0]) for b in val) == 1000
    with pytest.raises(ValueError, match="validation_size"):
        training.make_datasets(64, validation_size=60_000)
    with pytest.raises(ValueError, match="batch_size"):
        training.make_datasets(0)


def test_train_on_an_imagenet_model_needs_its_data(tmp_path, monkeypatch):
    """kbnn.zoo.train is kbnn.zoo.training.train: ImageNet models use kbnn.imagenet's pipeline,
    which fails fast (before building the model) when the data is not prepared."""
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match=r"ImageNet \(imagenet2012\) is not prepared"):
        kbnn.zoo.train("quicknet", output=tmp_path / "run", data_dir=str(tmp_path))


def test_learning_rate_defaults_follow_the_optimizer():
    recipe = kbnn.zoo.spec("binarynet_mnist").recipe
    assert training.default_learning_rate(recipe, "adam") == recipe.learning_rate
    assert training.default_learning_rate(recipe, "shift_adamax") == 2.0**-8
    assert training.default_learning_rate(recipe, "bop") == recipe.learning_rate  # its Adam part


def test_best_checkpoint_saves_only_improvements_atomically(tmp_path):
    model = kbnn.zoo.get("binarynet_mnist")
    callback = training.BestCheckpoint(tmp_path / "model.keras", "val_accuracy")
    callback.set_model(model)
    callback.on_epoch_end(0, {"val_accuracy": 0.5})
    first = (tmp_path / "model.keras").stat().st_mtime_ns
    callback.on_epoch_end(1, {"val_accuracy": 0.4})  # worse: not saved
    assert (tmp_path / "model.keras").stat().st_mtime_ns == first
    callback.on_epoch_end(2, {"val_accuracy": 0.6})
    assert callback.best == 0.6
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]  # no partial file left
    loaded = tf.keras.models.load_model(tmp_path / "model.keras")
    assert loaded.count_params() == model.count_params()


def test_train_config_and_keyword_overrides_merge_before_anything_runs(tmp_path):
    """`train(name, TrainConfig(...), **overrides)`: keywords override the config's fields, and
    bad values are refused before any data or model is built."""
    from kbnn.errors import UsageError

    config = training.TrainConfig(epochs=0, output=tmp_path)
    with pytest.raises(UsageError, match="epochs: expected a positive integer, got 0"):
        training.train("binarynet_mnist", config)
    with pytest.raises(UsageError, match="lr_scaling: expected one of"):  # epochs=2 now fine
        training.train("binarynet_mnist", config, epochs=2, lr_scaling="cubic")
    with pytest.raises(TypeError, match="epoch"):  # a misspelt field is not silently ignored
        training.train("binarynet_mnist", config, epoch=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 3
    assert not any(tmp_path.iterdir())  # nothing written


def _pretrained_binarynet_variables():
    base = kbnn.zoo.get("binarynet_mnist", weights="pretrained", compile=False)
    return {v.name.split(":")[0]: v.numpy() for layer in base.layers for v in layer.weights}


def test_init_from_a_zoo_name_loads_its_pretrained_weights_by_layer_name():
    """binarynet_s2_mnist has binarynet_mnist's layers (no pool1, conv1 at stride 2): every one of
    its variables starts from the shipped binarynet_mnist weights."""
    model = training.build_model_for_training("binarynet_s2_mnist", decay_steps=1)
    training.load_initial_weights(model, "binarynet_mnist")
    expected = _pretrained_binarynet_variables()
    got = {v.name.split(":")[0]: v.numpy() for layer in model.layers for v in layer.weights}
    assert set(got) == set(expected)
    for name, value in got.items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


def test_init_from_refuses_unusable_sources_before_anything_is_written(tmp_path):
    from kbnn.errors import ModelLoadError, UsageError

    model = training.build_model_for_training("binarynet_mcu_mnist", decay_steps=1)
    with pytest.raises(UsageError, match="'quicknet' ships no pretrained weights"):
        training.load_initial_weights(model, "quicknet")
    with pytest.raises(UsageError, match="init_from: expected a zoo model with pretrained"):
        training.load_initial_weights(model, str(tmp_path / "missing.npz"))
    with pytest.raises(ModelLoadError, match=r"conv2/kernel has shape \(5, 5, 32, 64\)"):
        training.load_initial_weights(model, "binarynet_mnist")
    with pytest.raises(UsageError, match="init_from: expected"):
        training.train("binarynet_mnist", output=tmp_path / "run", init_from="no_such_model")
    assert not any(tmp_path.iterdir())


def test_train_init_from_starts_the_fit_from_those_weights(tmp_path):
    """`train(..., init_from=NAME)`: one step at a tiny learning rate leaves the shipped ±1
    kernels' signs in place (a random start would not have them)."""

    def datasets(global_batch_size, strategy):
        x = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
        data = tf.data.Dataset.from_tensor_slices((x, np.arange(8) % 10)).batch(8).repeat()
        return training.DataSplits(data, None, 1)

    result = training.train(
        "binarynet_s2_mnist",
        init_from="binarynet_mnist",
        datasets=datasets,
        epochs=1,
        learning_rate=1e-9,
        output=tmp_path / "run",
        flip_ratio=False,
        verbose=0,
    )
    expected = _pretrained_binarynet_variables()
    for name in ("conv1/kernel", "conv2/kernel", "dense1/kernel", "dense2/kernel"):
        np.testing.assert_array_equal(
            np.sign(result.model.get_layer(name.split("/")[0]).kernel.numpy()), expected[name]
        )


def test_cli_train_init_from_is_a_one_line_error(capsys, tmp_path):
    from kbnn.cli import main

    argv = ["train", "binarynet_s2_mnist", "--init-from", "quicknet", "--output", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'quicknet' ships no pretrained weights" in err
