"""`get`, `load` and `info`: build a zoo model (optionally with weights), resolve a zoo name or
a model file into a model, and describe a zoo model."""

from __future__ import annotations

import os

from kbnn import _loading
from kbnn._validation import check_choice, check_int, fail
from kbnn.errors import ModelLoadError, UsageError
from kbnn.zoo import cards, registry
from kbnn.zoo import weights as weight_files

PRETRAINED = "pretrained"
RANDOM = "random"
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def get(
    name,
    *,
    weights=None,
    input_shape=None,
    num_classes=None,
    include_top=True,
    bn="batchnorm",
    compile=True,
):
    """Build zoo model `name` as a `tf.keras.Model`, like `keras.applications`.

    Arguments:
        name: a name from `list_models()`.
        weights: None (random initialisation), `"pretrained"` (the shipped package data for
            the MNIST models, else downloaded into the cache and sha256-checked), or the path
            of a weights file (kbnn `.npz`, Keras `.h5`, `.keras`).
        input_shape: default the model's (e.g. (28, 28, 1), (224, 224, 3)).
        num_classes: default the model's; pretrained weights need the default with the top.
        include_top: keep the classifier; without it the model ends in its feature layer.
        bn: "batchnorm" (float BN) or "shift" (shift-based BN, BinaryNet Alg. 3); pretrained
            weights are for "batchnorm".
        compile: compile with sparse categorical cross-entropy, accuracy and Adam.
    """
    entry = registry.spec(name)
    check_choice(include_top, "include_top", (True, False))
    if num_classes is not None:
        check_int(num_classes, "num_classes", low=2)
    if input_shape is not None:
        input_shape = tuple(input_shape)
        if len(input_shape) != 3 or not all(isinstance(d, int) and d > 0 for d in input_shape):
            raise fail("input_shape", "(height, width, channels)", input_shape)
    if weights == PRETRAINED:
        _check_pretrained_compatible(entry, input_shape, num_classes, include_top, bn)
    elif weights is not None and not isinstance(weights, str | os.PathLike):
        raise fail("weights", "None, 'pretrained' or a file path", weights)

    model = entry.builder(
        input_shape=input_shape or entry.input_shape,
        num_classes=num_classes or entry.num_classes,
        include_top=include_top,
        bn=bn,
    )
    if weights == PRETRAINED:
        _load_pretrained(entry, model, include_top)
    elif weights is not None:
        weight_files.load_weights_file(model, weights)
    if compile:
        from kbnn.zoo.training import compile_model

        compile_model(model)
    return model


def load(ref, *, weights=PRETRAINED, compile=False, safe_mode=None):
    """The model a user names: a zoo model NAME or a saved `.keras`/`.h5` FILE (every command's
    one resolver, so names and files follow the same rules and errors everywhere).

    A registered name wins: `get(ref, weights=...)`. Anything else is a path, opened by the
    safe loader `kbnn._loading.load_model` (format from the file's bytes; Lambda layers and
    unknown classes refused unless `safe_mode=False`; None follows the CLI's `--unsafe`).
    A bare word that is neither a name nor an existing file, a missing path, a folder and a
    file of the wrong format each raise one `KbnnError` that names `ref`.

    Arguments:
        ref: a name from `list_models()` or the path of a model file.
        weights: for a zoo name: "pretrained" (default), "random" or None (random
            initialisation, as `get`'s None), or a weights file; a model file brings its own
            weights, so anything but "pretrained" is refused for it.
        compile: compile like `get(compile=True)` (sparse categorical cross-entropy,
            accuracy, Adam); the file's own training config is never loaded.
        safe_mode: False loads a file without the checks (it warns); None: safe unless the
            CLI's `--unsafe` is active.
    """
    if isinstance(ref, str) and ref in registry.list_models():
        return get(ref, weights=None if weights == RANDOM else weights, compile=compile)
    if not isinstance(ref, str | os.PathLike):
        raise fail("model", "a zoo model name or a model file path", ref)
    if weights != PRETRAINED:
        raise UsageError(
            f"weights={weights!r} applies to a zoo model name; model file {os.fspath(ref)!r} "
            "brings its own weights"
        )
    if isinstance(ref, str) and not _looks_like_path(ref):
        raise UsageError(
            f"model {ref!r} is neither a zoo model name ({', '.join(registry.list_models())}) "
            f"nor an existing model file ({'/'.join(MODEL_SUFFIXES)})"
        )
    model = _loading.load_model(ref, safe_mode=safe_mode)
    if compile:
        from kbnn.zoo.training import compile_model

        compile_model(model)
    return model


def _looks_like_path(ref: str) -> bool:
    """Whether a string that names no zoo model is meant as a file (so a missing one is
    reported as a missing file, not as an unknown name)."""
    separators = {os.sep, os.altsep, "/"} - {None}
    return (
        os.path.lexists(ref)
        or ref.lower().endswith(MODEL_SUFFIXES)
        or any(sep in ref for sep in separators)
    )


def _check_pretrained_compatible(entry, input_shape, num_classes, include_top, bn):
    if not available_weights(entry.name):
        known = [n for n in registry.list_models() if available_weights(n)]
        raise UsageError(
            f"no pretrained weights for {entry.name!r}; models with weights: {', '.join(known)}"
        )
    if bn != "batchnorm":
        raise UsageError(f"pretrained weights of {entry.name!r} are for bn='batchnorm', not {bn!r}")
    if include_top and num_classes not in (None, entry.num_classes):
        raise UsageError(
            f"pretrained {entry.name!r} has num_classes={entry.num_classes}; pass "
            "include_top=False to use other classes"
        )
    if input_shape not in (None, entry.input_shape) and entry.dataset == "mnist":
        raise UsageError(f"pretrained {entry.name!r} needs input_shape={entry.input_shape}")


def available_weights(name: str) -> str | None:
    """ "package" (shipped), "url" (downloaded on demand) or None."""
    if cards.packaged_weights(name) is not None:
        return "package"
    entry = registry.spec(name)
    if entry.weights_url and entry.weights_sha256:
        return "url"
    return None


def _load_pretrained(entry, model, include_top):
    shipped = cards.shipped_weights(entry.name)
    if shipped is not None:
        path, sha256 = shipped
    else:
        sha256 = entry.weights_sha256
        path = weight_files.fetch(entry.weights_url, sha256)
    try:
        weight_files.load_compact(model, path, sha256=sha256, allow_unused=not include_top)
    except weight_files.WeightsIntegrityError:
        raise
    except ModelLoadError as err:
        raise ModelLoadError(f"pretrained weights of {entry.name!r}: {err}") from err


def count_params(model) -> dict:
    """Total, trainable and binary (1-bit kernel) parameter counts."""
    from kbnn.kernels import iter_layers, kernel_precision, kernel_variable  # TensorFlow

    import numpy as np

    total = int(sum(np.prod(w.shape) for w in model.weights))
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    binary = 0
    for layer in iter_layers(model):
        if kernel_precision(layer) == 1:
            binary += int(np.prod(kernel_variable(layer).shape))
    return {"total": total, "trainable": trainable, "binary": binary}


def info(name: str, *, params: bool = True) -> dict:
    """What the zoo knows about `name`: paper, bits, expected accuracy, weights and, for
    shipped weights, the model card (measured accuracy, sha256, training command, date)."""
    entry = registry.spec(name)
    result = {
        "name": entry.name,
        "paper": entry.paper,
        "dataset": entry.dataset,
        "input_shape": list(entry.input_shape),
        "num_classes": entry.num_classes,
        "bits": entry.bits,
        "expected_accuracy": entry.expected_accuracy,
        "expected_source": entry.expected_source,
        "weights": available_weights(name),
        "doc": (entry.builder.__doc__ or "").strip().split("\n\n")[0],
    }
    if entry.recipe is not None:
        recipe = entry.recipe
        result["recipe"] = {
            "epochs": recipe.epochs,
            "batch_size": recipe.batch_size,
            "optimizer": recipe.optimizer,
            "learning_rate": recipe.learning_rate,
        }
    if entry.weights_url:
        result["weights_url"] = entry.weights_url
        result["sha256"] = entry.weights_sha256
    if params:
        result["params"] = count_params(get(name, compile=False))
    card = cards.read_card(name)
    if card:
        result["card"] = card
    return result
