"""Optimizers for binarized networks: BinaryNet's shift-based AdaMax, and a `get` helper.

`ShiftAdaMax` uses tf_keras' current optimizer API (state saved in `.keras` files);
`LegacyShiftAdaMax` is the same update on `tf.keras.optimizers.legacy`, the base larq 0.14's
`CaseOptimizer` and `Bop` require, so BinaryNet's update can train the real-valued variables
beside Bop:

    lq.optimizers.CaseOptimizer(
        (lq.optimizers.Bop.is_binary_variable, lq.optimizers.Bop()),
        default_optimizer=kbnn.optimizers.LegacyShiftAdaMax(),
    )
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import TYPE_CHECKING

from kbnn._registry import register
from kbnn.math import ap2

import larq as lq
import tensorflow as tf

if TYPE_CHECKING:  # the shared base is, to a type checker, the Keras optimizer it goes with
    from tf_keras.optimizers import Adamax as _MixinBase
else:
    _MixinBase = object

__all__ = [
    "OPTIMIZER_CHOICES",
    "LegacyShiftAdaMax",
    "ShiftAdaMax",
    "get",
    "glorot_lr_scale",
    "shift_adamax_update",
]

OPTIMIZER_CHOICES = ("adam", "shift_adamax", "bop")
_LegacyOptimizer = tf.keras.optimizers.legacy.Optimizer


def _fans(shape: tf.TensorShape) -> tuple[int, int]:
    """(fan_in, fan_out) of a kernel, with Keras' Glorot-initializer convention.

    Dense `(in, out)`; convolution `(*kernel_size, in, out)` multiplies both by the receptive
    field. (Keras keeps its own version private, hence these few lines.)
    """
    dims = [int(d) for d in shape]
    receptive_field = math.prod(dims[:-2])
    return dims[-2] * receptive_field, dims[-1] * receptive_field


def glorot_lr_scale(shape) -> float:
    """Per-layer learning-rate multiplier of the reference BinaryNet code.

    `1 / sqrt(1.5 / (fan_in + fan_out))` for kernels (rank >= 2); 1 for vectors and scalars
    (biases, normalisation parameters), which the reference code does not scale.
    """
    shape = tf.TensorShape(shape)
    if shape.rank is None or shape.rank < 2 or not shape.is_fully_defined():
        return 1.0
    fan_in, fan_out = _fans(shape)
    return 1.0 / math.sqrt(1.5 / (fan_in + fan_out))


def shift_adamax_update(m, v, gradient, step, beta_1, beta_2, epsilon):
    r"""One shift-based AdaMax step, as tensors: returns `(m_t, v_t, delta)`, `θ_t = θ − delta`.

    `m_t = β1·m + (1−β1)·g`, `v_t = max(β2·v, |g|)`, `delta = step · m_t / (AP2(v_t) + ε)`;
    `step` is already a power of two. The one implementation both optimizer classes use.
    """
    m_t = beta_1 * m + (1.0 - beta_1) * gradient
    v_t = tf.maximum(beta_2 * v, tf.abs(gradient))
    return m_t, v_t, step * m_t / (ap2(v_t) + epsilon)


def _shift_step(learning_rate, beta_1, iterations, variable, glorot: bool):
    """AP2(η_ℓ / (1 − β1^t)) with t = iterations + 1 and η_ℓ the (Glorot-scaled) lr."""
    dtype = variable.dtype.base_dtype
    t = tf.cast(iterations + 1, dtype)
    lr = tf.cast(learning_rate, dtype)
    if glorot:
        lr = lr * glorot_lr_scale(variable.shape)
    return ap2(lr / (1.0 - tf.pow(tf.cast(beta_1, dtype), t)))


def _dense(gradient, variable):
    """Sparse (IndexedSlices) gradients as dense ones: every row decays, as Keras' Adamax."""
    if isinstance(gradient, tf.IndexedSlices):
        return tf.math.unsorted_segment_sum(
            gradient.values, gradient.indices, num_segments=tf.shape(variable)[0]
        )
    return gradient


def _check_args(beta_1, beta_2, epsilon, glorot_lr_scale):
    for arg, value in (("beta_1", beta_1), ("beta_2", beta_2)):
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or not 0.0 <= float(value) < 1.0
        ):
            raise ValueError(f"ShiftAdaMax: `{arg}` must be a number in [0, 1), got {value!r}.")
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or not epsilon > 0.0:
        raise ValueError(f"ShiftAdaMax: `epsilon` must be a number > 0, got {epsilon!r}.")
    if not isinstance(glorot_lr_scale, bool):
        raise ValueError(
            f"ShiftAdaMax: `glorot_lr_scale` must be True or False, got {glorot_lr_scale!r}."
        )


class _ShiftAdaMaxBase(_MixinBase):
    """The constructor, the apply body and the config both ShiftAdaMax classes share."""

    default_name = "ShiftAdaMax"

    def __init__(
        self,
        learning_rate=2.0**-6,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 2.0**-27,
        glorot_lr_scale: bool = False,
        name: str | None = None,
        **kwargs,
    ):
        _check_args(beta_1, beta_2, epsilon, glorot_lr_scale)
        super().__init__(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            name=name or self.default_name,
            **kwargs,
        )
        self.glorot_lr_scale = glorot_lr_scale

    def _apply_shift_adamax(self, variable, gradient, m, v, coefficients, **assign_kwargs):
        """Assign m_t, v_t and θ − delta; `coefficients` = (lr, β1, β2, ε) in `variable`'s dtype."""
        learning_rate, beta_1, beta_2, epsilon = coefficients
        step = _shift_step(learning_rate, beta_1, self.iterations, variable, self.glorot_lr_scale)
        m_t, v_t, delta = shift_adamax_update(m, v, gradient, step, beta_1, beta_2, epsilon)
        return (
            m.assign(m_t, **assign_kwargs),
            v.assign(v_t, **assign_kwargs),
            variable.assign_sub(delta, **assign_kwargs),
        )

    def get_config(self):
        return {**super().get_config(), "glorot_lr_scale": self.glorot_lr_scale}


# larq's CaseOptimizer.get_config records each sub-optimizer's `name` as its class name and
# from_config looks that name up, so the plain class names must resolve too.
@register(bare_name=True)
class ShiftAdaMax(_ShiftAdaMaxBase, tf.keras.optimizers.Adamax):
    r"""Shift-based AdaMax (BinaryNet, Courbariaux, Hubara et al. 2016, Algorithm 4).

    For step `t` (1-based), gradient `g` and variable `θ`:

    $$m \leftarrow \beta_1 m + (1-\beta_1) g,\qquad v \leftarrow \max(\beta_2 v, |g|),$$
    $$\mathrm{step} = \mathrm{AP2}\!\left(\frac{\eta_\ell}{1-\beta_1^t}\right),\qquad
      \theta \leftarrow \theta - \mathrm{step}\cdot \frac{m}{\mathrm{AP2}(v) + \epsilon}.$$

    `AP2` (`kbnn.math.ap2`) turns both the step and the division by `v` into bit shifts.
    `η_ℓ = learning_rate`, or with `glorot_lr_scale=True`
    `learning_rate · 1/sqrt(1.5/(fan_in + fan_out))` for each kernel (rank >= 2), the per-layer
    scaling of the reference BinaryNet code; fan-in/out are read from the kernel's own shape
    (`(in, out)` dense, `(kh, kw, in, out)` conv, as Keras' Glorot initializer), so no layer
    information has to be passed in. Biases and normalisation parameters keep `learning_rate`.

    Latent-weight clipping to [-1, 1] is not done here: give the kernel a constraint
    (larq's `"weight_clip"`, the default of kbnn's binary layers); Keras applies it after every
    update. A learning-rate schedule's value is used as `learning_rate` before the AP2. Sparse
    gradients are applied as their dense equivalent.

    Built on tf_keras' current `tf.keras.optimizers.Optimizer`: its state round-trips through
    `.keras`, `.h5` and TF checkpoints. larq's `CaseOptimizer` accepts only legacy optimizers:
    use `LegacyShiftAdaMax` there (same update, same arguments).
    """

    default_name = "ShiftAdaMax"

    def update_step(self, gradient, variable):
        index = self._index_dict[self._var_key(variable)]
        dtype = variable.dtype.base_dtype
        coefficients = [
            tf.cast(value, dtype)
            for value in (self.learning_rate, self.beta_1, self.beta_2, self.epsilon)
        ]
        gradient = tf.cast(_dense(gradient, variable), dtype)
        self._apply_shift_adamax(variable, gradient, self._m[index], self._u[index], coefficients)


@register(bare_name=True)
class LegacyShiftAdaMax(_ShiftAdaMaxBase, tf.keras.optimizers.legacy.Adamax):
    """`ShiftAdaMax` (same update, same arguments) on `tf.keras.optimizers.legacy`.

    That is the base larq 0.14's `CaseOptimizer` and `Bop` need, so this one can train the
    real-valued variables beside `Bop`. Its state round-trips through `.h5` and TF checkpoints;
    tf_keras' `.keras` format stores no legacy optimizer state.
    """

    default_name = "LegacyShiftAdaMax"

    def _resource_apply_dense(self, grad, var, apply_state=None):
        var_device, var_dtype = var.device, var.dtype.base_dtype
        c = (apply_state or {}).get((var_device, var_dtype)) or self._fallback_apply_state(
            var_device, var_dtype
        )
        coefficients = (c["lr_t"], c["beta_1_t"], c["beta_2_t"], c["epsilon"])
        m, v = self.get_slot(var, "m"), self.get_slot(var, "v")
        return tf.group(
            *self._apply_shift_adamax(var, grad, m, v, coefficients, use_locking=self._use_locking)
        )

    def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
        dense = _dense(tf.IndexedSlices(grad, indices), var)
        return self._resource_apply_dense(dense, var, apply_state=apply_state)


def get(identifier, *, learning_rate: float | None = None, legacy: bool = False):
    """An optimizer from a name, a serialized config or an instance (returned as is).

    Names: `"adam"` (Keras' Adam, default lr 1e-3), `"shift_adamax"` (`ShiftAdaMax`, default
    lr 2^-6) and `"bop"`: larq's `Bop` for binary kernels (variables whose quantizer has
    `precision == 1`) in a larq `CaseOptimizer` whose default optimizer — for every other
    variable — is legacy Adam (default lr 1e-3). `learning_rate` overrides the default lr of the
    named optimizer (for `"bop"`, of its default optimizer). `legacy=True` returns the
    `tf.keras.optimizers.legacy` variants (`LegacyShiftAdaMax`), which larq's `CaseOptimizer`
    requires for its members.
    """
    if isinstance(identifier, _LegacyOptimizer | tf.keras.optimizers.Optimizer):
        return identifier
    if isinstance(identifier, Mapping):
        try:
            return tf.keras.optimizers.deserialize(dict(identifier), use_legacy_optimizer=legacy)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(
                f"Invalid optimizer config (`optimizer`) {identifier!r}: {err}"
            ) from err
    if not isinstance(identifier, str):
        raise ValueError(
            f"Cannot build an optimizer from {identifier!r} (`optimizer`); pass one of "
            f"{OPTIMIZER_CHOICES}, a serialized optimizer config or an optimizer instance."
        )
    if learning_rate is not None and not learning_rate > 0:
        raise ValueError(f"`learning_rate` must be > 0, got {learning_rate!r}.")
    key = identifier.strip().lower().replace("-", "_")
    adam = tf.keras.optimizers.legacy.Adam if legacy else tf.keras.optimizers.Adam
    if key == "adam":
        return adam(learning_rate=learning_rate or 1e-3)
    if key in ("shift_adamax", "shiftadamax"):
        cls = LegacyShiftAdaMax if legacy else ShiftAdaMax
        return cls(learning_rate=learning_rate or 2.0**-6)
    if key == "bop":
        return lq.optimizers.CaseOptimizer(
            (lq.optimizers.Bop.is_binary_variable, lq.optimizers.Bop()),
            default_optimizer=tf.keras.optimizers.legacy.Adam(learning_rate=learning_rate or 1e-3),
        )
    raise ValueError(
        f"Unknown optimizer {identifier!r} (`optimizer`); expected one of {OPTIMIZER_CHOICES}, "
        "a serialized optimizer config or an optimizer instance."
    )
