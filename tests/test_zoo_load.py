"""`kbnn.zoo.load`: the one resolver of "a zoo NAME or a model FILE" used by every command.

Loaded models are checked by their outputs on real MNIST digits against `zoo.get` (names)
or the model that was saved (files); bad references by the error class and the ref it names.
"""

from __future__ import annotations

import shutil

import kbnn.zoo
from kbnn import _loading
from kbnn.cli import main
from kbnn.data import mnist_sample, normalize_mnist
from kbnn.errors import MissingFileError, ModelLoadError, UsageError

import numpy as np
import pytest
import security_inputs
from helpers import randomize_weights

NAME = "binarynet_mlp_mnist"  # the smallest zoo model with shipped weights
IMAGES = normalize_mnist(mnist_sample()[0][:16])


def _outputs(model) -> np.ndarray:
    return model(IMAGES, training=False).numpy()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A randomized kbnn model saved as .keras, .h5 and (a .keras zip) without a suffix, and
    its outputs."""
    folder = tmp_path_factory.mktemp("saved")
    model = randomize_weights(security_inputs.small_model(), seed=3)
    model.save(folder / "model.keras")
    model.save(folder / "model.h5")
    shutil.copy(folder / "model.keras", folder / "model_no_suffix")
    return folder, _outputs(model)


@pytest.mark.parametrize("file", ["model.keras", "model.h5", "model_no_suffix"])
@pytest.mark.parametrize("as_path", [False, True], ids=["str", "pathlike"])
def test_a_model_file_loads_with_the_saved_outputs(saved, file, as_path):
    folder, expected = saved
    ref = folder / file if as_path else str(folder / file)
    model = kbnn.zoo.load(ref)
    np.testing.assert_array_equal(_outputs(model), expected)
    assert model.optimizer is None  # compile=False: the file's training config is not loaded


def test_a_zoo_name_loads_its_pretrained_weights():
    loaded = kbnn.zoo.load(NAME)
    np.testing.assert_array_equal(
        _outputs(loaded), _outputs(kbnn.zoo.get(NAME, weights="pretrained"))
    )
    accuracy = np.mean(np.argmax(_outputs(loaded), -1) == mnist_sample()[1][:16])
    assert accuracy >= 0.9  # really the trained weights (98.56% card accuracy)
    assert loaded.optimizer is None


@pytest.mark.parametrize("weights", ["random", None])
def test_random_weights_are_zoo_gets_random_initialisation(weights):
    import tensorflow as tf

    tf.keras.utils.set_random_seed(7)
    loaded = kbnn.zoo.load(NAME, weights=weights)
    tf.keras.utils.set_random_seed(7)
    reference = kbnn.zoo.get(NAME, weights=None)
    np.testing.assert_array_equal(_outputs(loaded), _outputs(reference))
    pretrained = kbnn.zoo.get(NAME, weights="pretrained")
    assert not np.allclose(_outputs(loaded), _outputs(pretrained))


def test_a_weights_file_goes_onto_the_zoo_architecture(tmp_path):
    source = randomize_weights(kbnn.zoo.get(NAME, compile=False), seed=5)
    kbnn.zoo.weights.save_compact(source, tmp_path / "w.npz")
    loaded = kbnn.zoo.load(NAME, weights=str(tmp_path / "w.npz"))
    np.testing.assert_array_equal(_outputs(loaded), _outputs(source))


@pytest.mark.parametrize("ref", [NAME, "model.keras"])
def test_compile_true_compiles_names_and_files(saved, ref):
    folder, _ = saved
    model = kbnn.zoo.load(ref if ref == NAME else folder / ref, compile=True)
    assert model.optimizer is not None and model.compiled_loss is not None


def test_a_zoo_name_wins_over_a_file_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / NAME).write_text("not a model")
    np.testing.assert_array_equal(
        _outputs(kbnn.zoo.load(NAME)), _outputs(kbnn.zoo.get(NAME, weights="pretrained"))
    )
    with pytest.raises(ModelLoadError, match=f"'./{NAME}' is not a Keras model file"):
        kbnn.zoo.load(f"./{NAME}")  # a path is always a file


BAD_REFS = {  # case: (ref under the test's folder, or a bare word; error; message)
    "missing_path": ("{tmp}/nope.keras", MissingFileError, "does not exist"),
    "missing_bare_file": ("nope.h5", MissingFileError, "does not exist"),
    "missing_in_folder": ("{tmp}/a/b", MissingFileError, "does not exist"),
    "folder": ("{tmp}/folder", ModelLoadError, "is a folder, not a file"),
    "unknown_name": ("binarynet_mnistt", UsageError, "neither a zoo model name"),
    "wrong_format": ("{tmp}/notes.txt", ModelLoadError, "is not a Keras model"),
}


@pytest.mark.parametrize("case", sorted(BAD_REFS))
def test_a_bad_ref_is_one_error_that_names_it(tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "folder").mkdir()
    template, error, message = BAD_REFS[case]
    ref = template.format(tmp=tmp_path)
    with pytest.raises(error) as raised:
        kbnn.zoo.load(ref)
    text = str(raised.value)
    assert message in text and repr(ref) in text and "\n" not in text
    if case == "unknown_name":
        assert all(name in text for name in kbnn.zoo.list_models())


@pytest.mark.parametrize("ref", [3, None, ["binarynet_mnist"]])
def test_a_ref_that_is_no_name_or_path_is_refused(ref):
    with pytest.raises(UsageError, match=r"model: expected a zoo model name or a model file"):
        kbnn.zoo.load(ref)


@pytest.mark.parametrize("weights", ["random", None, "w.npz"])
def test_a_model_file_takes_no_weights(saved, weights):
    folder, _ = saved
    with pytest.raises(UsageError, match="applies to a zoo model name; model file .*model.keras"):
        kbnn.zoo.load(folder / "model.keras", weights=weights)


def test_a_name_without_pretrained_weights_says_so():
    with pytest.raises(UsageError, match="no pretrained weights for 'quicknet'"):
        kbnn.zoo.load("quicknet")


@pytest.fixture
def lambda_file(tmp_path):
    canary = tmp_path / "CANARY"
    path = tmp_path / "evil.h5"
    security_inputs.lambda_model(canary).save(path)
    return path, canary


def test_a_lambda_file_is_refused_unless_unsafe(lambda_file):
    path, canary = lambda_file
    with pytest.raises(ModelLoadError, match="contains a Lambda layer"):
        kbnn.zoo.load(path)
    assert not canary.exists()
    with pytest.warns(UserWarning, match="executed as Python code"):
        model = kbnn.zoo.load(path, safe_mode=False)
    np.testing.assert_array_equal(_outputs(model), IMAGES)  # the Lambda is the identity
    assert canary.exists()  # its code did run: the refusal above was the check


def test_safe_mode_none_follows_the_clis_unsafe_flag(lambda_file):
    path, canary = lambda_file
    _loading.allow_unsafe(True)
    try:
        model = kbnn.zoo.load(path)
    finally:
        _loading.allow_unsafe(False)
    np.testing.assert_array_equal(_outputs(model), IMAGES)
    assert canary.exists()


def _command(name, ref, tmp_path):
    text = tmp_path / "any.tflite"
    text.write_text("read only after the model")
    out = tmp_path / "out"
    return {
        "evaluate": ["evaluate", ref],
        "summary": ["summary", ref],
        "export-c": ["export-c", ref, "-o", out],
        "export-android": ["export-android", "--model", ref, "--out", out, "--samples", "0"],
        "bench": ["bench", text, "--model", ref],
    }[name]


@pytest.mark.parametrize("command", ["bench", "evaluate", "export-android", "export-c", "summary"])
def test_every_command_gives_the_same_error_for_an_unknown_name(command, tmp_path, capsys):
    assert main([str(a) for a in _command(command, "binarynet_mnistt", tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"kbnn {command}: error: model 'binarynet_mnistt' is neither a zoo model name "
        f"({', '.join(kbnn.zoo.list_models())}) nor an existing model file (.keras/.h5/.hdf5)"
    )
    assert not (tmp_path / "out").exists()


def test_summary_counts_a_zoo_model_without_weights_randomly_initialised(capsys):
    assert main(["summary", "binarynet_cifar10"]) == 0
    captured = capsys.readouterr()
    assert "'binarynet_cifar10' has no pretrained weights; counting a randomly" in captured.err
    assert "binary" in captured.out
