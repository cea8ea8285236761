"""The adversarial corpus (#16): generated bad inputs over every CLI command and the public
loaders. Every case must give one clear error (CLI: one line, exit code 2, no traceback),
run no code from the file (a Lambda would plant the canary), leave its input byte-identical
and write nothing.

The CLI runs in-process (`kbnn.cli.main(argv)`): the process boundary (real exit codes,
SIGINT, kill -9) is tested in test_cli_startup.py and test_security_crash.py.
"""

from __future__ import annotations

import hashlib
import pathlib

import kbnn.zoo
from kbnn import _loading
from kbnn.cli import build_parser, main
from kbnn.errors import KbnnError

import pytest
import security_inputs as inputs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """{kind: {case: path}} built once; the canary path; the good files."""
    import kbnn.converters

    root = tmp_path_factory.mktemp("corpus")
    canary = root / "CANARY"
    model = inputs.small_model()
    tflite = kbnn.converters.convert(model, progress=False).flatbuffer
    (root / "good.tflite").write_bytes(tflite)
    models = inputs.model_inputs(root / "models", canary, tflite)
    good_npz = root / "good.npz"
    kbnn.zoo.weights.save_compact(kbnn.zoo.get("binarynet_mnist", compile=False), good_npz)
    return {
        "canary": canary,
        "models": models,
        "weights": inputs.weight_inputs(root / "weights", good_npz),
        "flatbuffers": inputs.flatbuffer_inputs(
            root / "flatbuffers", tflite, root / "models" / "good.h5"
        ),
        "good_tflite": root / "good.tflite",
        "good_keras": root / "models" / "good.keras",
    }


def _commands() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return set(sub.choices)


AVAILABLE = _commands()


def _digest(path: pathlib.Path) -> str | None:
    if path.is_symlink() and not path.exists():
        return "dangling"
    if not path.is_file():
        return "folder" if path.is_dir() else None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run_cli(argv, capsys, watched, out_dir, canary) -> str:
    """kbnn ARGV in-process; checks exit 2, one stderr line, no canary, nothing written or
    changed. Returns the error line."""
    before = {path: _digest(path) for path in watched}
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, f"exit {code}: {captured.err}"
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"kbnn {argv[0]}: error: "), lines[0]
    assert "Traceback" not in captured.err
    assert not canary.exists(), "code from the model file ran"
    assert {path: _digest(path) for path in watched} == before, "an input changed"
    assert sorted(p.name for p in out_dir.rglob("*")) == [], "something was written"
    return lines[0]


MODEL_COMMANDS = {
    "convert": lambda model, out, good: ["convert", model, "-o", out / "x.tflite"],
    "summary": lambda model, out, good: ["summary", model, "--json", out / "s.json"],
    "compress": lambda model, out, good: ["compress", model, "-o", out / "x.kbz", "--huffman"],
    "evaluate": lambda model, out, good: ["evaluate", model],
    "export-android": lambda model, out, good: [
        "export-android",
        "--model",
        model,
        "--out",
        out / "assets",
        "--samples",
        "0",
    ],
    "export-c": lambda model, out, good: ["export-c", model, "-o", out / "c"],
    "bench": lambda model, out, good: ["bench", good, "--model", model],
}


def _model_case_names() -> list[str]:
    # Names are fixed by security_inputs.model_inputs; listed here so pytest ids are stable.
    return [
        "lambda_h5",
        "lambda_h5_as_keras",
        "lambda_h5_as_hdf5",
        "lambda_h5_no_suffix",
        "lambda_zip_keras",
        "lambda_zip_as_h5",
        "h5_unknown_class",
        "h5_config_not_json",
        "h5_config_a_list",
        "h5_lambda_marker",
        "h5_weights_only",
        "zip_foreign_module",
        "zip_builtins_exec_activation",
        "zip_builtins_input_activation",
        "zip_numpy_load_activation",
        "zip_unknown_class",
        "zip_lambda_marker",
        "zip_without_config",
        "zip_flip0",
        "zip_flip1",
        "zip_flip2",
        "h5_flip_magic",
        *[f"keras_cut{int(f * 100):02d}" for f in inputs.TRUNCATIONS],
        *[f"h5_cut{int(f * 100):02d}" for f in inputs.TRUNCATIONS if f],
        "random_bytes",
        "text",
        "tflite_as_model",
        "kbz_magic",
        "zip_magic_only",
        "npz_as_model",
        "folder",
        "missing",
        "dangling_symlink",
    ]


@pytest.mark.parametrize("case", _model_case_names())
@pytest.mark.parametrize("command", sorted(MODEL_COMMANDS))
def test_cli_refuses_bad_model_file(corpus, command, case, tmp_path, capsys):
    if command not in AVAILABLE:
        pytest.skip(f"kbnn {command} is not built in this tree")
    model = corpus["models"][case]
    argv = MODEL_COMMANDS[command](model, tmp_path, corpus["good_tflite"])
    line = _run_cli(argv, capsys, [model, corpus["good_tflite"]], tmp_path, corpus["canary"])
    assert model.name in line, f"the error must name the user's file: {line}"


@pytest.mark.parametrize("case", _model_case_names())
def test_safe_loader_refuses_bad_model_file(corpus, case):
    model = corpus["models"][case]
    before = _digest(model)
    with pytest.raises(KbnnError) as error:
        _loading.load_model(model)
    assert model.name in str(error.value)
    assert "\n" not in str(error.value)
    assert not corpus["canary"].exists()
    assert _digest(model) == before


@pytest.mark.parametrize("case", [c for c in _model_case_names() if "lambda" in c])
def test_lambda_model_loads_only_when_explicitly_unsafe(corpus, case):
    """The refusal is the check, not a broken file: with safe_mode=False (the user's explicit
    choice, warned about) the same file loads and its code does run."""
    if case in ("h5_lambda_marker", "zip_lambda_marker"):
        pytest.skip("crafted markers are not loadable models")
    with pytest.warns(UserWarning, match="executed as Python code"):
        model = _loading.load_model(corpus["models"][case], safe_mode=False)
    model(tf_zeros(model))
    assert corpus["canary"].exists()
    corpus["canary"].unlink()


def tf_zeros(model):
    import numpy as np

    return np.zeros((1, *model.input_shape[1:]), np.float32)


WEIGHT_CASES = [
    *[
        f"npz_{name}"
        for name in (
            "huge_shape",
            "negative_shape",
            "shape_of_strings",
            "key_not_string",
            "unknown_kind",
            "format_string",
            "format_future",
            "variables_a_dict",
            "meta_a_list",
            "meta_not_json",
            "missing_member",
            "wrong_dtype",
            "meta_float",
            "flip0",
            "flip1",
            "cut10",
            "cut50",
            "cut95",
        )
    ],
]


@pytest.mark.parametrize("case", WEIGHT_CASES)
def test_zoo_get_refuses_bad_weights(corpus, case):
    path = corpus["weights"][case]
    before = _digest(path)
    with pytest.raises(KbnnError) as error:
        kbnn.zoo.get("binarynet_mnist", weights=path, compile=False)
    assert path.name in str(error.value)
    assert _digest(path) == before


@pytest.mark.parametrize("case", WEIGHT_CASES)
def test_cli_evaluate_refuses_bad_weights(corpus, case, tmp_path, capsys):
    path = corpus["weights"][case]
    _run_cli(
        ["evaluate", "binarynet_mnist", "--weights", path],
        capsys,
        [path],
        tmp_path,
        corpus["canary"],
    )


@pytest.mark.parametrize(
    "case",
    [
        "tflite_cut0",
        "tflite_cut5",
        "tflite_cut50",
        "tflite_cut90",
        "tflite_random",
        "tflite_is_h5",
        "tflite_missing",
    ],
)
@pytest.mark.parametrize("command", ["inspect", "bench"])
def test_cli_refuses_bad_flatbuffer(corpus, command, case, tmp_path, capsys):
    path = corpus["flatbuffers"][case]
    _run_cli([command, path], capsys, [path], tmp_path, corpus["canary"])


# ----------------------------------------------------------------------- outputs (#16: 4-7)


def _output_cases(model: pathlib.Path, out: pathlib.Path) -> dict:
    link, hard = out.parent / "link.keras", out.parent / "hard.keras"
    return {
        "convert_onto_input": ["convert", model, "-o", model],
        "convert_onto_input_via_symlink": ["convert", model, "-o", link],
        "convert_onto_input_via_hard_link": ["convert", model, "-o", hard],
        "convert_twin_onto_input": [
            "convert",
            model,
            "-o",
            out / "a.tflite",
            "--float-twin",
            model,
        ],
        "convert_twin_missing_folder": [
            "convert",
            model,
            "-o",
            out / "a.tflite",
            "--float-twin",
            out / "missing" / "t.tflite",
        ],
        "convert_into_missing_folder": ["convert", model, "-o", out / "missing" / "a.tflite"],
        "convert_output_is_folder": ["convert", model, "-o", out],
        "compress_onto_input": ["compress", model, "-o", model, "--huffman"],
        "compress_into_missing_folder": [
            "compress",
            model,
            "-o",
            out / "no" / "x.kbz",
            "--huffman",
        ],
        "summary_json_missing_folder": ["summary", model, "--json", out / "no" / "s.json"],
        "summary_json_onto_input": ["summary", model, "--json", model],
        "quickstart_missing_folder": ["quickstart", "-o", out / "missing" / "q.tflite"],
        "train_output_is_a_file": ["train", "binarynet_mnist", "--output", model],
        "export_android_out_is_a_file": ["export-android", "--model", model, "--out", model],
    }


@pytest.mark.parametrize("case", sorted(_output_cases(pathlib.Path("m"), pathlib.Path("o"))))
def test_cli_refuses_bad_output_before_any_work(corpus, case, tmp_path, capsys):
    model = tmp_path / "model.keras"
    model.write_bytes(corpus["good_keras"].read_bytes())
    (tmp_path / "link.keras").symlink_to(model)
    (tmp_path / "hard.keras").hardlink_to(model)
    out = tmp_path / "out"
    out.mkdir()
    argv = _output_cases(model, out)[case]
    _run_cli(argv, capsys, [model], out, corpus["canary"])
