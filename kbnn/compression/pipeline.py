"""The DeepCompression pipeline: prune → share → Huffman, with a report after each stage.

Han, Mao & Dally, "Deep Compression" (ICLR 2016), Fig. 1. Every stage is measured with the
exact encoder that writes the file, so the byte counts in the report are what is stored
(weights only, like the paper's tables; the file adds the model config and framing).

Where an encoding costs more than it saves — a relative index on a dense layer, a codebook
for a ten-weight layer, a Huffman table longer than the stream it codes — the report says
so and that tensor keeps the previous stage's encoding (DeepCompression's small layers are
the classic case: 2^b centroids cost more than the weights they replace).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping

from kbnn.compression import encoding as enc
from kbnn.compression import format as fmt
from kbnn.compression import layers as klayers
from kbnn.compression import pruning, quantized, sharing

import numpy as np
import tensorflow as tf


@dataclasses.dataclass
class StageReport:
    """One row of the compression report."""

    stage: str
    params: int
    nonzeros: int
    bytes: int
    accuracy: float | None = None
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.bytes / self.params if self.params else 0.0


@dataclasses.dataclass
class CompressionResult:
    """The compressed model (what the file reproduces exactly) and the per-stage report."""

    model: tf.keras.Model
    stages: list[StageReport]
    saved: fmt.SaveReport | None = None
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def baseline_bytes(self) -> int:
        return self.stages[0].bytes

    @property
    def ratio(self) -> float:
        """Float32 weights over compressed weights (the paper's compression rate)."""
        return self.baseline_bytes / self.stages[-1].bytes

    def format(self) -> str:
        """The report as a text table, then notes (skipped encodings, file size)."""
        header = (
            f"{'stage':<10} {'params':>9} {'nonzeros':>9} {'bits/w':>7} {'bytes':>10} "
            f"{'ratio':>7} {'accuracy':>9}"
        )
        lines = [header, "-" * len(header)]
        for row in self.stages:
            accuracy = "" if row.accuracy is None else f"{100 * row.accuracy:.2f}%"
            lines.append(
                f"{row.stage:<10} {row.params:>9,} {row.nonzeros:>9,} "
                f"{row.bits_per_weight:>7.2f} {row.bytes:>10,} "
                f"{self.baseline_bytes / row.bytes:>6.1f}x {accuracy:>9}"
            )
        for row in self.stages:
            lines += [f"  {row.stage}: {note}" for note in row.notes]
        lines += [f"  {note}" for note in self.notes]
        if self.saved is not None:
            lines.append(
                f"  file {self.saved.path}: {self.saved.file_bytes:,} bytes (weights "
                f"{self.saved.payload_bytes:,} + model config {self.saved.header_bytes:,} + "
                f"framing), {self.baseline_bytes / self.saved.file_bytes:.1f}x the float32 "
                "weights"
            )
        return "\n".join(lines)


# --- training helpers ------------------------------------------------------------------------


def _outputs_probabilities(model: tf.keras.Model) -> bool:
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    return activation is tf.keras.activations.softmax or (isinstance(last, tf.keras.layers.Softmax))


def default_compile(learning_rate: float = 1e-4) -> Callable[[tf.keras.Model], None]:
    """Adam(`learning_rate`) + sparse categorical cross-entropy (logits or softmax outputs)."""

    def compile_model(model: tf.keras.Model) -> None:
        loss = tf.keras.losses.SparseCategoricalCrossentropy(
            from_logits=not _outputs_probabilities(model)
        )
        model.compile(
            optimizer=tf.keras.optimizers.Adam(learning_rate), loss=loss, metrics=["accuracy"]
        )

    return compile_model


def accuracy(model: tf.keras.Model, data) -> float:
    """Top-1 accuracy of `model` on a dataset of `(x, y)` batches (inference mode)."""
    forward = tf.function(lambda x: model(x, training=False))
    correct = total = 0
    for x, y in data:
        predicted = tf.argmax(forward(x), axis=-1, output_type=tf.int64)
        correct += int(tf.reduce_sum(tf.cast(predicted == tf.cast(y, tf.int64), tf.int64)))
        total += int(tf.size(y))
    if not total:
        raise ValueError("the evaluation dataset is empty")
    return correct / total


def _steps_per_epoch(data) -> int:
    steps = int(data.cardinality()) if hasattr(data, "cardinality") else -1
    if steps < 1:
        raise ValueError(
            "train data must be a finite tf.data.Dataset of batches with a known "
            "cardinality (do not .repeat() it)"
        )
    return steps


def prune_and_retrain(
    model: tf.keras.Model,
    train_data,
    sparsity,
    *,
    rounds: int = 3,
    epochs_per_round: int = 1,
    compile_fn=None,
    verbose: int = 0,
) -> tf.keras.Model:
    """Iterative pruning (Han et al. 2015): `rounds` prune → retrain rounds, growing threshold.

    Round r prunes each layer to 1 − (1 − s)^(r/R) of its weights (`iterative_targets`) and
    retrains `epochs_per_round` epochs with that mask. Returns the stripped, pruned model.
    """
    targets = pruning.per_layer(sparsity, model, "sparsity")
    steps = _steps_per_epoch(train_data) * epochs_per_round
    schedules = {
        name: pruning.IterativeSparsity(
            pruning.iterative_targets(float(s), rounds), steps_per_round=steps
        )
        for name, s in targets.items()
    }
    wrapped = pruning.prune_low_magnitude(model, schedules)
    (compile_fn or default_compile())(wrapped)
    wrapped.fit(
        train_data,
        epochs=rounds * epochs_per_round,
        verbose=verbose,
        callbacks=[pruning.UpdatePruningStep()],
    )
    return pruning.strip_pruning(wrapped)


# --- stage accounting ------------------------------------------------------------------------


def _count(model: tf.keras.Model) -> tuple[int, int]:
    params = nonzeros = 0
    for weight in model.weights:
        value = weight.numpy()
        params += value.size
        nonzeros += int(np.count_nonzero(value))
    return params, nonzeros


def _measure(name, model, stage, gap_bits, evaluate) -> tuple[StageReport, list]:
    tensors = fmt.encode_model(model, max_stage=stage, gap_bits=gap_bits)
    params, nonzeros = _count(model)
    row = StageReport(
        name,
        params,
        nonzeros,
        sum(t.nbytes for t in tensors),
        evaluate(model) if evaluate else None,
    )
    return row, tensors


def _stage_notes(tensors, stage: enc.Stage, what: str) -> list[str]:
    """Notes for kernels where `stage`'s encodings were tried and lost; a stage-level verdict."""
    notes, used = [], False
    for tensor in tensors:
        encoding = tensor.encoding
        used = used or encoding.chosen.stage == stage
        if len(tensor.shape) < 2:
            continue  # biases and normalisation parameters: not what the stages are for
        if stage == enc.Stage.HUFFMAN:
            for stream, (fixed, huff) in encoding.lost_huffman_streams().items():
                notes.append(
                    f"Huffman coding of {tensor.name} {stream} costs more than it "
                    f"saves ({huff:,} B vs {fixed:,} B fixed-width): kept fixed-width"
                )
            continue
        tried = {name: size for (name, st), size in encoding.sizes.items() if st == stage}
        if tried and encoding.chosen.stage < stage:
            best_name, best = min(tried.items(), key=lambda kv: kv[1])
            notes.append(
                f"{what} ({best_name}) of {tensor.name} costs more than it saves "
                f"({best:,} B vs {encoding.chosen.nbytes:,} B {encoding.chosen.name}): "
                "skipped"
            )
    if not used:
        notes.append(f"{what} costs more than it saves for every tensor: stage skipped")
    return notes


# --- the pipeline ----------------------------------------------------------------------------


def _check_identical(model, reloaded, data) -> None:
    x, _ = next(iter(data))
    if not np.array_equal(model(x, training=False).numpy(), reloaded(x, training=False).numpy()):
        raise RuntimeError(
            "kbnn bug: the model loaded from the compressed file computes "
            "different outputs than the compressed model"
        )


def _bits_per_layer(model, bits, conv_bits) -> dict[str, int]:
    if isinstance(bits, Mapping):
        return dict(bits)
    out = {}
    for layer in model.layers:
        if sharing.is_shareable(layer):
            kernel_rank = len(klayers.kernel_variable(layer).shape)
            out[layer.name] = conv_bits if (conv_bits and kernel_rank > 2) else bits
    return out


def _sharing_pays(kernel: np.ndarray, bits: int, gap_bits) -> bool:
    codebook, indices, _ = sharing.cluster_kernel(kernel, bits)
    shared = enc.choose(codebook[indices], gap_bits=gap_bits, max_stage=enc.Stage.SHARE)
    current = enc.choose(kernel, gap_bits=gap_bits, max_stage=enc.Stage.PRUNE)
    return shared.chosen.nbytes < current.chosen.nbytes


def _finetune(shared, data, epochs, compile_fn, verbose) -> None:
    """Train the codebooks (and biases, normalisation); other kernels stay frozen.

    Unshared kernels are frozen so that pruned zeros of layers whose sharing was skipped, and
    the latent weights of quantized layers, do not move.
    """
    frozen = [
        layer
        for layer in shared.layers
        if not isinstance(layer, sharing.SharedWeights)
        and layer.trainable
        and klayers.kernel_attribute(layer) is not None
    ]
    for layer in frozen:
        layer.trainable = False
    try:
        compile_fn(shared)
        shared.fit(data, epochs=epochs, verbose=verbose)
    finally:
        for layer in frozen:
            layer.trainable = True


@dataclasses.dataclass(frozen=True)
class CompressionConfig:
    """What `compress` does at each stage (the data and the output file are separate arguments).

    # Fields
        sparsity: fraction of weights pruned per prunable layer (float or {layer: float});
            None or 0 skips pruning.
        bits: codebook index bits per shared float layer (int or {layer: bits}); None skips
            weight sharing. `conv_bits` overrides it for conv kernels (paper: 8 conv, 5 fc).
            Quantized (larq/kbnn) kernels are stored as their levels in this stage either way.
        huffman: add the Huffman stage.
        rounds, epochs_per_round: iterative pruning with `train_data` (rounds × epochs).
        finetune_epochs: codebook fine-tuning epochs with training data.
        compile_fn: compiles the wrapped models for retraining (default Adam 1e-4, sparse
            categorical cross-entropy); `finetune_compile_fn` for the codebook fine-tuning
            (default: `compile_fn`).
        gap_bits: relative-index gap width (None: the encoder picks the smallest).
        verbose: Keras `fit` verbosity.
    """

    sparsity: float | Mapping[str, float] | None = 0.9
    bits: int | Mapping[str, int] | None = 5
    conv_bits: int | None = None
    huffman: bool = True
    rounds: int = 3
    epochs_per_round: int = 1
    finetune_epochs: int = 1
    compile_fn: Callable[[tf.keras.Model], None] | None = None
    finetune_compile_fn: Callable[[tf.keras.Model], None] | None = None
    gap_bits: int | None = None
    verbose: int = 0


def _prune_stage(model, config, train_data, compile_fn, evaluate):
    if train_data is not None:
        pruned = prune_and_retrain(
            model,
            train_data,
            config.sparsity,
            rounds=config.rounds,
            epochs_per_round=config.epochs_per_round,
            compile_fn=compile_fn,
            verbose=config.verbose,
        )
    else:
        pruned = pruning.magnitude_prune(model, config.sparsity)
    row, tensors = _measure("pruned", pruned, enc.Stage.PRUNE, config.gap_bits, evaluate)
    row.notes = _stage_notes(tensors, enc.Stage.PRUNE, "relative-index sparse format")
    return pruned, row


def _share_stage(model, config, finetune_data, compile_fn, evaluate):
    """Weight sharing where it pays (fine-tuned with data), then quantized kernels as levels."""
    notes, chosen = [], {}
    per_layer = _bits_per_layer(model, config.bits, config.conv_bits) if config.bits else {}
    for name, layer_bits in per_layer.items():
        kernel = klayers.kernel_variable(model.get_layer(name)).numpy()
        if _sharing_pays(kernel, layer_bits, config.gap_bits):
            chosen[name] = layer_bits
        else:
            notes.append(
                f"weight sharing ({layer_bits} bits) of layer {name!r} "
                f"({kernel.size:,} weights) costs more than it saves: skipped"
            )
    if chosen:
        shared = sharing.share_weights(model, chosen)
        if finetune_data is not None and config.finetune_epochs:
            _finetune(
                shared,
                finetune_data,
                config.finetune_epochs,
                config.finetune_compile_fn or compile_fn,
                config.verbose,
            )
        model = sharing.strip_sharing(shared)
    # Quantized (binary/ternary/five-level) kernels: store q(W) as levels · scale.
    model, materialize_notes = quantized.materialize_quantized(model)
    row, tensors = _measure("shared", model, enc.Stage.SHARE, config.gap_bits, evaluate)
    row.notes = (
        notes
        + materialize_notes
        + _stage_notes(tensors, enc.Stage.SHARE, "weight sharing / level coding")
    )
    return model, row


def compress(
    model: tf.keras.Model,
    config: CompressionConfig | None = None,
    *,
    train_data=None,
    test_data=None,
    finetune_data=None,
    output: str | os.PathLike | None = None,
) -> CompressionResult:
    """Prune, share weights, Huffman-code; report each stage; optionally write `output`.

    # Arguments
        config: the stages' settings (`CompressionConfig()` when None).
        train_data: `(x, y)` batches; with it, pruning retrains (`rounds` ×
            `epochs_per_round` epochs) and the codebooks are fine-tuned `finetune_epochs`.
            Without it, pruning is one-shot and the codebooks are plain k-means.
        finetune_data: data for the codebook fine-tuning if different from `train_data`.
        test_data: `(x, y)` batches for the accuracy column.
        output: write the compressed model here (`.kbz`); the final row's accuracy is then
            measured on the model loaded back from the file.
    """
    config = config if config is not None else CompressionConfig()
    pruning.check_functional(model)
    evaluate = (lambda m: accuracy(m, test_data)) if test_data is not None else None
    compile_fn = config.compile_fn or default_compile()
    gap_bits = config.gap_bits

    row, _ = _measure("baseline", model, enc.Stage.BASELINE, gap_bits, evaluate)
    stages = [row]
    current = model
    if config.sparsity:
        current, row = _prune_stage(current, config, train_data, compile_fn, evaluate)
        stages.append(row)
    if config.bits or quantized.quantized_layers(current):
        finetune_data = finetune_data if finetune_data is not None else train_data
        current, row = _share_stage(current, config, finetune_data, compile_fn, evaluate)
        stages.append(row)

    final_evaluate = evaluate
    saved = None
    if output is not None:
        saved = fmt.save_compressed(current, output, gap_bits=gap_bits, huffman=config.huffman)
        if evaluate is not None:
            reloaded = fmt.load_compressed(output)
            _check_identical(current, reloaded, test_data)

            def final_evaluate(_model, reloaded=reloaded):
                return accuracy(reloaded, test_data)  # measured on the file's model

    if config.huffman:
        row, tensors = _measure("huffman", current, enc.Stage.HUFFMAN, gap_bits, final_evaluate)
        row.notes = _stage_notes(tensors, enc.Stage.HUFFMAN, "Huffman coding")
        stages.append(row)
    elif final_evaluate is not evaluate:
        stages[-1].accuracy = final_evaluate(current)
    return CompressionResult(current, stages, saved, [])
