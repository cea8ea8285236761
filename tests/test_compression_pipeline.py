"""The DeepCompression pipeline on tiny models, quantized-kernel entropy, and `kbnn compress`."""

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import cli
from kbnn import layers as kl
from kbnn.compression import format as fmt
from kbnn.compression import pipeline, pruning, quantized

import larq as lq
import numpy as np
import pytest
import tensorflow as tf


def _data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12)).astype("float32")
    y = (x[:, :6].sum(axis=1) > 0).astype("int64")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(32)


def _tiny_model():
    model = tf.keras.Sequential(
        [
            tf.keras.layers.Dense(48, activation="relu", input_shape=(12,), name="hidden"),
            tf.keras.layers.Dense(4, activation="relu", name="narrow"),
            tf.keras.layers.Dense(2, name="tiny"),  # 8 weights: a codebook costs more than they do
        ]
    )
    # Eight well separated (fixed) weights in the last layer: each needs its own centroid.
    tiny = model.get_layer("tiny")
    tiny.kernel.assign([[1.5, -1.2], [0.9, -0.6], [0.3, 1.1], [-1.8, 0.7]])
    tiny.trainable = False
    pipeline.default_compile(1e-2)(model)
    model.fit(_data(), epochs=8, verbose=0)
    tiny.trainable = True
    return model


@pytest.fixture(scope="module")
def trained():
    tf.keras.utils.set_random_seed(0)
    return _tiny_model()


def test_pipeline_stages_file_and_warnings(trained, tmp_path):
    data = _data()
    out = tmp_path / "tiny.kbz"
    config = pipeline.CompressionConfig(
        sparsity={"hidden": 0.8, "narrow": 0.1, "tiny": 0.25},
        bits=5,
        rounds=2,
        epochs_per_round=1,
        finetune_epochs=1,
        compile_fn=pipeline.default_compile(1e-3),
    )
    result = pipeline.compress(trained, config, train_data=data, test_data=data, output=out)
    names = [row.stage for row in result.stages]
    assert names == ["baseline", "pruned", "shared", "huffman"]
    base, pruned, shared, huff = result.stages
    params = sum(w.size for w in trained.get_weights())
    assert {row.params for row in result.stages} == {params}
    assert base.bytes == 4 * params and base.bits_per_weight == 32.0
    assert pruned.nonzeros == pytest.approx(params - 461 - 19 - 2, abs=2)  # round(n(1 − s)) kept
    assert base.bytes > pruned.bytes > shared.bytes >= huff.bytes
    assert result.ratio == pytest.approx(base.bytes / huff.bytes)
    assert all(row.accuracy is not None and row.accuracy > 0.6 for row in result.stages)
    # The seed's warning cases: encodings that cost more than they save are reported, skipped.
    report = result.format()
    assert "weight sharing (5 bits) of layer 'tiny' (8 weights) costs more than it saves" in report
    assert "relative-index sparse format (sparse) of narrow/kernel:0 costs more than it saves" in (
        report
    )
    assert "x the float32 weights" in report
    tiny = result.model.get_layer("tiny").kernel.numpy()
    assert np.unique(tiny).size > 4  # not shared
    # Retraining and codebook fine-tuning kept every pruned weight at exactly zero.
    assert pruning.kernel_sparsity(result.model) == pytest.approx(
        {"hidden": 461 / 576, "narrow": 19 / 192, "tiny": 0.25}
    )  # tiny: unshared, frozen
    assert np.unique(result.model.get_layer("hidden").kernel.numpy()).size <= 32
    loaded = fmt.load_compressed(out)
    x = next(iter(data))[0]
    np.testing.assert_array_equal(loaded(x).numpy(), result.model(x).numpy())
    assert result.saved.payload_bytes == huff.bytes


def test_one_shot_pipeline_without_data(trained):
    result = pipeline.compress(
        trained, pipeline.CompressionConfig(sparsity=0.5, bits=3, huffman=False)
    )
    assert [row.stage for row in result.stages] == ["baseline", "pruned", "shared"]
    assert all(row.accuracy is None for row in result.stages)
    assert "accuracy" in result.format().splitlines()[0]


def test_binary_kernels_report_huffman_as_not_worth_it():
    tf.keras.utils.set_random_seed(1)
    model = tf.keras.Sequential(
        [
            lq.layers.QuantDense(
                64,
                kernel_quantizer="ste_sign",
                kernel_constraint="weight_clip",
                input_shape=(32,),
                name="binary",
            ),
            tf.keras.layers.Dense(2, name="out"),
        ]
    )
    result = pipeline.compress(
        model, pipeline.CompressionConfig(sparsity=None, bits=None, huffman=True)
    )
    report = result.format()
    assert "Huffman coding of binary/kernel:0 values costs more than it saves" in report
    shared_row = next(r for r in result.stages if r.stage == "huffman")
    # The binary kernel is stored at 1 bit per weight (+ a 2-entry codebook).
    binary = next(t for t in fmt.encode_model(result.model) if t.name == "binary/kernel:0")
    assert binary.nbytes * 8 / binary.size == pytest.approx(1.0, abs=0.05)
    assert shared_row.bytes < result.stages[0].bytes


def _ternary_model(sparsity, seed=0):
    """A TernaryDense whose latent kernel ternarizes to a chosen fraction of zeros."""
    rng = np.random.default_rng(seed)
    layer = kl.TernaryDense(64, name="ternary", input_shape=(128,))
    model = tf.keras.Sequential([layer])
    latent = rng.choice([-1.0, 1.0], size=(128, 64)) * rng.uniform(0.5, 1.0, (128, 64))
    latent[rng.random((128, 64)) < sparsity] = 0.0
    layer.kernel.latent_variable.assign(latent.astype("float32"))
    return model


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.8])
def test_ternary_entropy_coding_bits_per_weight(sparsity):
    model, notes = quantized.materialize_quantized(_ternary_model(sparsity))
    assert notes == []
    [stats] = quantized.level_statistics(model)
    counts = np.array(stats.counts, dtype=float)
    p = counts / counts.sum()
    entropy = -(p[p > 0] * np.log2(p[p > 0])).sum()
    assert stats.entropy_bits_per_weight == pytest.approx(entropy)
    assert stats.sparsity == pytest.approx(p[1])
    # Three symbols: Huffman spends 1 bit on the most frequent level, 2 on the others.
    table_and_header = 8 * (1 + 2 + 2 + 2) / stats.weights
    assert stats.huffman_bits_per_weight == pytest.approx(1 + (1 - p.max()), abs=table_and_header)
    scales = 32 * 64 / stats.weights  # one float32 scale per output channel
    if sparsity >= 0.5:  # below log2(3) = 1.58 bits per weight with sparsity
        assert stats.stored_bits_per_weight - scales < np.log2(3)
    if sparsity >= 0.8:
        assert stats.stored_bits_per_weight < np.log2(3)
    assert stats.stored_encoding.startswith("levels")


@pytest.mark.parametrize("bit_w,idempotent", [(2, True), (4, False)])
def test_only_idempotent_quantizers_are_materialised(bit_w, idempotent):
    model = tf.keras.Sequential([kl.DorefaDense(32, bit_w=bit_w, bit_a=2, input_shape=(16,))])
    layer = model.layers[0]
    q = layer.kernel_quantizer
    once = q(tf.constant(layer.kernel.latent_variable.numpy())).numpy()
    twice = q(tf.constant(once)).numpy()
    assert np.allclose(twice, once, rtol=1e-6, atol=0) == idempotent  # the premise
    materialised, notes = quantized.materialize_quantized(model)
    kernel = materialised.layers[0].kernel.latent_variable.numpy()
    if idempotent:  # levels·scale from integer_levels: q(W) up to float rounding
        assert notes == [] and np.allclose(kernel, once, rtol=1e-6, atol=0)
    else:
        assert len(notes) == 1 and "not idempotent" in notes[0]
        np.testing.assert_array_equal(kernel, layer.kernel.latent_variable.numpy())


# --- CLI -------------------------------------------------------------------------------------


@pytest.fixture()
def saved_model(trained, tmp_path):
    path = tmp_path / "model.keras"
    trained.save(path)
    return path


def test_cli_compress_prints_the_report(saved_model, tmp_path, capsys):
    out = tmp_path / "out.kbz"
    rc = cli.main(
        [
            "compress",
            str(saved_model),
            "--prune",
            "0.8",
            "--bits",
            "4",
            "--huffman",
            "--prune-layer",
            "tiny=0.5",
            "-o",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0, text
    lines = text.splitlines()
    assert lines[0].split() == [
        "stage",
        "params",
        "nonzeros",
        "bits/w",
        "bytes",
        "ratio",
        "accuracy",
    ]
    assert [line.split()[0] for line in lines[2:6]] == ["baseline", "pruned", "shared", "huffman"]
    assert "costs more than it saves" in text
    model = fmt.load_compressed(out)
    sparsity = 1 - np.count_nonzero(model.get_layer("hidden").kernel.numpy()) / (12 * 48)
    assert sparsity == pytest.approx(0.8, abs=0.01)
    assert 1 - np.count_nonzero(model.get_layer("tiny").kernel.numpy()) / 8 == 0.5


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--prune", "1.5"], "--prune must be in [0, 1)"),
        (["--bits", "12"], "--bits must be in 1..8"),
        (["--prune-layer", "hidden"], "NAME=SPARSITY"),
        (["--prune-layer", "nope=0.5"], "no layer named"),
        ([], "nothing to do"),
    ],
)
def test_cli_usage_errors_are_one_line(saved_model, tmp_path, capsys, argv, message):
    rc = cli.main(["compress", str(saved_model), "-o", str(tmp_path / "x.kbz"), *argv])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1


def test_cli_missing_model(tmp_path, capsys):
    rc = cli.main(
        ["compress", str(tmp_path / "none.keras"), "--bits", "4", "-o", str(tmp_path / "x.kbz")]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "none.keras' does not exist" in err and err.count("\n") == 1


def test_cli_reports_mnist_accuracy_per_stage(mnist_available, tmp_path, capsys):
    from kbnn.data import mnist

    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential(
        [tf.keras.layers.Flatten(input_shape=(28, 28, 1)), tf.keras.layers.Dense(10, name="linear")]
    )
    pipeline.default_compile(1e-2)(model)
    model.fit(mnist("train[:6000]", 100), epochs=1, verbose=0)
    path = tmp_path / "linear.keras"
    model.save(path)
    rc = cli.main(
        [
            "compress",
            str(path),
            "--prune",
            "0.5",
            "--bits",
            "5",
            "--huffman",
            "--dataset",
            "mnist",
            "--epochs",
            "0",
            "--finetune-epochs",
            "0",
            "-o",
            str(tmp_path / "linear.kbz"),
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0
    accuracies = [float(line.split()[-1].rstrip("%")) for line in text.splitlines()[2:6]]
    assert all(80.0 < a < 95.0 for a in accuracies), text
