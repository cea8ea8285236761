"""Magnitude pruning with persistent masks (Han et al. 2015; DeepCompression, Han et al. 2016, §2).

Built on tensorflow-model-optimization: its `PruneLowMagnitude` wrapper (mask/threshold/step
variables, top-k threshold, serialization), its schedules (`ConstantSparsity`,
`PolynomialDecay`), `UpdatePruningStep` and `strip_pruning`. kbnn changes the wrapper in the
two places where tfmot does not give the paper's guarantees:

1. *Pruned weights get no gradient.* tfmot assigns W ← W⊙M before each step and runs the layer
   on W itself, so ∂L/∂W is nonzero at pruned positions: the optimizer moves them (momentum
   keeps moving them after the mask is set) and its slot variables fill with their gradients.
   kbnn's wrapper runs the layer on W⊙M, so ∂L/∂W = M⊙∂L/∂W_eff is exactly zero there, and
   keeps tfmot's W ← W⊙M so the stored weights stay exactly zero too.
2. *Masks only shrink.* tfmot recomputes the mask from |W| at every update, so a pruned weight
   that drifted can come back. kbnn computes the threshold on |W⊙M| and ANDs the new mask with
   the old one: a pruned connection stays pruned while the threshold grows.

larq/kbnn quantized layers are prunable when their kernel quantizer maps 0 to 0 (ternary,
five-level); the latent weights are pruned and the quantizer is applied to W⊙M.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping

from kbnn._registry import register
from kbnn.compression import layers as klayers

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.keras import utils as tfmot_utils
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_impl, pruning_wrapper
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_schedule as sched

ConstantSparsity = sched.ConstantSparsity
PolynomialDecay = sched.PolynomialDecay
UpdatePruningStep = tfmot.sparsity.keras.UpdatePruningStep


class IterativeSparsity(sched.PruningSchedule):
    """Prune → retrain rounds with a growing target (Han et al. 2015, §3.3 iterative pruning).

    Round r covers `steps_per_round` training steps; the mask is updated once, on the first
    step of each round, to sparsity `targets[r]`, and the network retrains with that mask for
    the rest of the round. Targets must not decrease: the magnitude threshold only grows.

    # Arguments
        targets: sparsity per round, each in [0, 1), non-decreasing.
        steps_per_round: training steps per round (≥ 1).
        begin_step: pruning step of the first round's mask update (tfmot counts the first
            training step as 1).
    """

    def __init__(self, targets: Iterable[float], steps_per_round: int, begin_step: int = 1):
        targets = [float(t) for t in targets]
        if not targets or any(not 0.0 <= t < 1.0 for t in targets):
            raise ValueError(f"`targets` must be sparsities in [0, 1), got {targets}")
        if any(b < a for a, b in zip(targets, targets[1:], strict=False)):
            raise ValueError(f"`targets` must not decrease (the threshold only grows): {targets}")
        if int(steps_per_round) < 1:
            raise ValueError(f"`steps_per_round` must be >= 1, got {steps_per_round}")
        self.targets = targets
        self.steps_per_round = int(steps_per_round)
        self.begin_step = int(begin_step)

    def __call__(self, step):
        relative = tf.cast(step, tf.int64) - self.begin_step
        round_index = tf.math.floordiv(relative, self.steps_per_round)
        rounds = len(self.targets)
        should_prune = tf.logical_and(
            tf.logical_and(relative >= 0, round_index < rounds),
            tf.equal(tf.math.floormod(relative, self.steps_per_round), 0),
        )
        sparsity = tf.gather(
            tf.constant(self.targets, tf.float32), tf.clip_by_value(round_index, 0, rounds - 1)
        )
        return should_prune, sparsity

    def get_config(self):
        return {
            "class_name": type(self).__name__,
            "config": {
                "targets": self.targets,
                "steps_per_round": self.steps_per_round,
                "begin_step": self.begin_step,
            },
        }


def iterative_targets(final_sparsity: float, rounds: int) -> list[float]:
    """Targets that prune the same fraction of the *remaining* weights each round.

    s_r = 1 − (1 − s)^(r/R), r = 1..R; e.g. s = 0.9, R = 3 → 0.536, 0.785, 0.9.
    """
    if not 0.0 <= final_sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {final_sparsity}")
    if rounds < 1:
        raise ValueError(f"`rounds` must be >= 1, got {rounds}")
    return [1.0 - (1.0 - final_sparsity) ** (r / rounds) for r in range(1, rounds + 1)]


_SCHEDULES = {
    "ConstantSparsity": ConstantSparsity,
    "PolynomialDecay": PolynomialDecay,
    "IterativeSparsity": IterativeSparsity,
}


class _MonotonePruning(pruning_impl.Pruning):
    """tfmot's magnitude pruning, with thresholds computed on W⊙M and masks that only shrink."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._mask_of = {id(weight): mask for weight, mask, _ in self._pruning_vars}

    def _maybe_update_block_mask(self, weights):
        old_mask = self._mask_of[id(weights)]
        threshold, mask = super()._maybe_update_block_mask(weights * old_mask)
        return threshold, mask * old_mask


@register
class PruneLowMagnitude(pruning_wrapper.PruneLowMagnitude):
    """tfmot's magnitude-pruning wrapper with gradient-masked, monotone masks (see module doc).

    Forward: y = layer(x) with kernel q(W⊙M) (q the layer's kernel quantizer, identity for
    float layers), so ∂L/∂W = 0 wherever M = 0. Needs tfmot's `UpdatePruningStep` callback in
    `fit`, like tfmot's wrapper.
    """

    def __init__(self, layer, pruning_schedule=None, **kwargs):
        if pruning_schedule is None:
            pruning_schedule = ConstantSparsity(0.5, begin_step=0)
        attribute = klayers.kernel_attribute(layer)
        if attribute is None:
            raise ValueError(
                f"layer {layer.name!r} ({type(layer).__name__}) has no kernel kbnn can prune"
            )
        if not klayers.quantizer_keeps_zero(klayers.kernel_quantizer(layer)):
            raise ValueError(
                f"layer {layer.name!r} ({type(layer).__name__}) is not prunable: its kernel "
                "quantizer maps a zero weight to a nonzero value, so pruning saves nothing"
            )
        if not hasattr(layer, "get_prunable_weights"):
            # What tfmot's PruneRegistry does for built-in layers, for any layer with a kernel
            # attribute (larq's Quant* layers included): prune the (latent) kernel.
            layer.get_prunable_weights = lambda: [klayers.kernel_variable(layer)]
        self.kernel_attribute = attribute
        super().__init__(layer, pruning_schedule=pruning_schedule, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        self.pruning_obj = _MonotonePruning(
            training_step_fn=lambda: self.pruning_step,
            pruning_vars=self.pruning_vars,
            pruning_schedule=self.pruning_schedule,
            block_size=self.block_size,
            sparsity_m_by_n=self.sparsity_m_by_n,
            block_pooling_type=self.block_pooling_type,
        )
        kernel = klayers.kernel_variable(self.layer)
        if not any(weight is kernel for weight, _, _ in self.pruning_vars):
            raise ValueError(
                f"layer {self.layer.name!r}: get_prunable_weights() must return "
                f"its {self.kernel_attribute!r} variable"
            )

    def kernel_mask(self) -> tf.Variable:
        """The mask variable of the layer's kernel."""
        kernel = klayers.kernel_variable(self.layer)
        return next(mask for weight, mask, _ in self.pruning_vars if weight is kernel)

    def call(self, inputs, training=None, **kwargs):
        # Same update sequence as tfmot's `call` (step += 1, scheduled mask update,
        # W ← W⊙M); only the forward differs: it reads W⊙M, not W.
        if training is None:
            training = tf.keras.backend.learning_phase()

        def increment_step():
            with tf.control_dependencies([self.pruning_step.assign_add(1)]):
                return tf.no_op("update")

        def update_mask():
            with tf.control_dependencies(
                [
                    tf.debugging.assert_greater_equal(
                        self.pruning_step, np.int64(1), message=self._PRUNE_CALLBACK_ERROR_MSG
                    )
                ]
            ):
                with tf.control_dependencies([self.pruning_obj.conditional_mask_update()]):
                    return tf.no_op("update")

        def no_op():
            return tf.no_op("no_update")

        self.add_update(tfmot_utils.smart_cond(training, increment_step, no_op))
        self.add_update(tfmot_utils.smart_cond(training, update_mask, no_op))
        self.add_update(self.pruning_obj.weight_mask_op())
        kernel = klayers.kernel_variable(self.layer)
        masked = klayers.effective_kernel(self.layer, kernel * self.kernel_mask())
        with klayers.substituted(self.layer, self.kernel_attribute, masked):
            return klayers.call_inner(self.layer, inputs, training=training, **kwargs)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        schedule = config.pop("pruning_schedule")
        config["pruning_schedule"] = tf.keras.utils.deserialize_keras_object(
            schedule, custom_objects=_SCHEDULES
        )
        config["layer"] = tf.keras.layers.deserialize(config.pop("layer"))
        return cls(**config)


def is_prunable(layer: tf.keras.layers.Layer) -> bool:
    """True if kbnn's pruning wrapper accepts `layer` (a kernel, zero-preserving quantizer)."""
    if isinstance(layer, tf.keras.Model | pruning_wrapper.PruneLowMagnitude):
        return False
    attribute = klayers.kernel_attribute(layer)
    return attribute is not None and klayers.quantizer_keeps_zero(klayers.kernel_quantizer(layer))


def per_layer(value, model: tf.keras.Model, what: str) -> dict:
    """Expand a scalar or {layer name: value} into a dict over prunable layers' names.

    Unknown or unprunable layer names raise a ValueError naming `what` and the layer.
    """
    names = [layer.name for layer in model.layers]
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"{what}: no layer named {unknown} in model {model.name!r}")
        for name in value:
            if not is_prunable(model.get_layer(name)):
                layer = model.get_layer(name)
                raise ValueError(
                    f"{what}: layer {name!r} ({type(layer).__name__}) is not "
                    "prunable (no kernel, or its quantizer maps 0 to a nonzero)"
                )
        return dict(value)
    return {layer.name: value for layer in model.layers if is_prunable(layer)}


def check_functional(model) -> None:
    """ValueError unless `model` is a Sequential or functional Keras model."""
    if not isinstance(model, tf.keras.Model):
        raise ValueError(f"expected a tf.keras.Model, got {type(model).__name__}")
    if not (isinstance(model, tf.keras.Sequential) or model._is_graph_network):  # noqa: SLF001
        raise ValueError(
            f"model {model.name!r} is a subclassed model; only Sequential and "
            "functional models can be pruned or compressed"
        )


def copy_model(model: tf.keras.Model) -> tf.keras.Model:
    """An independent copy (same config, same weights) — the transforms never touch their input."""
    check_functional(model)
    clone = tf.keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def prune_low_magnitude(model: tf.keras.Model, schedule=0.5) -> tf.keras.Model:
    """Copy of `model` with every prunable layer wrapped in kbnn's `PruneLowMagnitude`.

    `schedule`: a tfmot `PruningSchedule`, a sparsity (→ `ConstantSparsity(s, begin_step=0,
    frequency=1)`), or a dict {layer name: schedule or sparsity} that prunes only those layers.
    Train with `callbacks=[UpdatePruningStep()]`, then `strip_pruning`.
    """
    schedules = per_layer(schedule, model, "schedule")
    clone = copy_model(model)

    def wrap(layer):
        target = schedules.get(layer.name)
        if target is None:
            return layer
        if not isinstance(target, sched.PruningSchedule):
            target = ConstantSparsity(float(target), begin_step=0, frequency=1)
        return PruneLowMagnitude(layer, pruning_schedule=target)

    return tf.keras.models.clone_model(clone, clone_function=wrap)


def _wrappers(model) -> list[PruneLowMagnitude]:
    return [layer for layer in model.layers if isinstance(layer, PruneLowMagnitude)]


def apply_masks(model: tf.keras.Model) -> None:
    """W ← W⊙M for every kbnn pruning wrapper in `model` (in place)."""
    for wrapper in _wrappers(model):
        kernel = klayers.kernel_variable(wrapper.layer)
        # tf.where, not W·M: the product leaves −0.0 where negative weights were pruned.
        kernel.assign(tf.where(wrapper.kernel_mask() != 0, kernel, tf.zeros_like(kernel)))


def strip_pruning(model: tf.keras.Model) -> tf.keras.Model:
    """Masks applied, wrappers removed (tfmot's `strip_pruning`): a plain model with zeros."""
    apply_masks(model)
    return tfmot.sparsity.keras.strip_pruning(model)


def pruning_masks(model: tf.keras.Model) -> dict[str, np.ndarray]:
    """{inner layer name: kernel mask} for every kbnn pruning wrapper in `model`."""
    return {w.layer.name: w.kernel_mask().numpy() for w in _wrappers(model)}


def magnitude_mask(weights: np.ndarray, sparsity: float) -> np.ndarray:
    """Keep the round(n·(1 − s)) largest |w| (at least one), like tfmot's top-k threshold."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    flat = np.abs(np.asarray(weights)).ravel()
    keep = max(1, int(round(flat.size * (1.0 - sparsity))))
    order = np.argsort(-flat, kind="stable")
    mask = np.zeros(flat.size, dtype=np.float32)
    mask[order[:keep]] = 1.0
    return mask.reshape(np.shape(weights))


def magnitude_prune(model: tf.keras.Model, sparsity) -> tf.keras.Model:
    """One-shot magnitude pruning without retraining: a pruned copy of `model`.

    `sparsity`: a float for every prunable layer, or {layer name: sparsity}.
    """
    targets = per_layer(sparsity, model, "sparsity")
    clone = copy_model(model)
    for name, target in targets.items():
        kernel = klayers.kernel_variable(clone.get_layer(name))
        value = kernel.numpy()
        kernel.assign(np.where(magnitude_mask(value, float(target)) != 0, value, np.float32(0)))
    return clone


@dataclasses.dataclass(frozen=True)
class SensitivityPoint:
    """One point of a sensitivity scan: `metric` with only `layer` pruned to `sparsity`."""

    layer: str
    sparsity: float
    metric: float


def sensitivity_scan(
    model: tf.keras.Model,
    evaluate: Callable[[tf.keras.Model], float],
    sparsities: Iterable[float] = (0.5, 0.7, 0.8, 0.9, 0.95),
    layers: Iterable[str] | None = None,
) -> list[SensitivityPoint]:
    """Prune one layer at a time (one-shot, no retraining) and measure `evaluate(model)`.

    The curve per layer (Han et al. 2015, Fig. 5) shows how much each layer tolerates; use
    it to pick per-layer sparsities. `model` is left unchanged.
    """
    sparsities = [float(s) for s in sparsities]
    names = (
        list(layers)
        if layers is not None
        else [layer.name for layer in model.layers if is_prunable(layer)]
    )
    per_layer(dict.fromkeys(names, 0.0), model, "layers")
    points = []
    for name in names:
        kernel = klayers.kernel_variable(model.get_layer(name))
        original = kernel.numpy()
        try:
            for sparsity in sparsities:
                mask = magnitude_mask(original, sparsity)
                kernel.assign(np.where(mask != 0, original, np.zeros_like(original)))
                points.append(SensitivityPoint(name, sparsity, float(evaluate(model))))
        finally:
            kernel.assign(original)
    return points


def kernel_sparsity(model: tf.keras.Model) -> dict[str, float]:
    """{layer name: fraction of exact zeros in its (latent) kernel} for layers with a kernel."""
    result = {}
    for layer in model.layers:
        inner = layer.layer if isinstance(layer, tf.keras.layers.Wrapper) else layer
        if klayers.kernel_attribute(inner) and inner.built:
            value = klayers.kernel_variable(inner).numpy()
            result[inner.name] = float(np.mean(value == 0))
    return result
