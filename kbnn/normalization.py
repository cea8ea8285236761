"""Shift-based batch normalisation (BinaryNet, Courbariaux, Hubara et al. 2016, Algorithm 3).

Every multiplication of batch normalisation by a data-dependent factor is replaced by a
multiplication with a power of two, `kbnn.math.ap2`, i.e. a bit shift on fixed-point hardware.
"""

from __future__ import annotations

from kbnn._registry import register
from kbnn.math import ap2

import tensorflow as tf

__all__ = ["ShiftBatchNormalization", "get"]


@register(bare_name=True)  # also as the plain class name, for legacy .h5 files
class ShiftBatchNormalization(tf.keras.layers.Layer):
    r"""Shift-based batch normalisation (SBN), BinaryNet Algorithm 3.

    Training (`training=True`), per channel over the batch (and spatial) axes:

    $$\mu = \mathrm{mean}(x),\quad C = x - \mu,\quad
      \sigma^2 = \mathrm{mean}\big(C \cdot \mathrm{AP2}(C)\big),\quad
      s = 1/\sqrt{\sigma^2 + \epsilon},$$
    $$y = \mathrm{AP2}(\gamma) \cdot C \cdot \mathrm{AP2}(s) + \beta.$$

    The moving statistics are the batch mean and the *inverse* standard deviation `s`:
    `moving ← momentum · moving + (1 − momentum) · batch`.

    Inference (`training=False`) uses them:
    `y = AP2(γ) · AP2(moving_inv_std) · (x − moving_mean) + β`, computed as `x · a + b` with
    per-channel constants `a`, `b` so converters fold it into the preceding convolution's
    post-ops (or a single float MUL + ADD).

    Gradients: AP2 is passed straight through backward (`d AP2(u)/du := 1`, see
    `kbnn.math.ap2`); everything else (the mean, the variance and their dependence on `x`) is
    differentiated exactly, as in ordinary batch normalisation.

    Arguments:
        axis: the channel axis (an integer), -1 for `(N, C)` and `(N, H, W, C)` inputs.
        momentum: decay of the moving statistics.
        epsilon: added to the variance before the inverse square root.
        center: learn the offset `β`; `False` uses `β = 0`.
        scale: learn the scale `γ`; `False` uses `γ = 1`.
        synchronized: under a `tf.distribute` strategy with more than one replica, compute the
            batch statistics over the global batch (as Keras' `BatchNormalization(
            synchronized=True)`): one all-reduce (SUM) of the per-replica [Σx, count] for μ, a
            second one of Σ C·AP2(C) for σ². With one replica, or outside a replica context,
            exactly the unsynchronized computation. Inference is unaffected.
    """

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.9,
        epsilon: float = 1e-4,
        center: bool = True,
        scale: bool = True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_inv_std_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        synchronized: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"ShiftBatchNormalization: `axis` must be an integer, got {axis!r}.")
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(
                f"ShiftBatchNormalization: `momentum` must lie in [0, 1], got {momentum!r}."
            )
        if not float(epsilon) > 0.0:
            raise ValueError(f"ShiftBatchNormalization: `epsilon` must be > 0, got {epsilon!r}.")
        self.axis = axis
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = tf.keras.initializers.get(beta_initializer)
        self.gamma_initializer = tf.keras.initializers.get(gamma_initializer)
        self.moving_mean_initializer = tf.keras.initializers.get(moving_mean_initializer)
        self.moving_inv_std_initializer = tf.keras.initializers.get(moving_inv_std_initializer)
        self.beta_regularizer = tf.keras.regularizers.get(beta_regularizer)
        self.gamma_regularizer = tf.keras.regularizers.get(gamma_regularizer)
        self.beta_constraint = tf.keras.constraints.get(beta_constraint)
        self.gamma_constraint = tf.keras.constraints.get(gamma_constraint)
        self.synchronized = bool(synchronized)
        self.supports_masking = True

    # -- building -------------------------------------------------------------------------------

    def build(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        rank = input_shape.rank
        if rank is None or rank < 2:
            raise ValueError(
                f"ShiftBatchNormalization '{self.name}': input must have a batch and a channel "
                f"axis, got shape {input_shape}."
            )
        axis = self.axis + rank if self.axis < 0 else self.axis
        if not 0 < axis < rank:
            raise ValueError(
                f"ShiftBatchNormalization '{self.name}': `axis`={self.axis} is out of range (or "
                f"the batch axis) for inputs of shape {input_shape}."
            )
        channels = input_shape[axis]
        if channels is None:
            raise ValueError(
                f"ShiftBatchNormalization '{self.name}': channel axis {self.axis} of input shape "
                f"{input_shape} must be known."
            )
        self._channel_axis = axis
        self._reduction_axes = [i for i in range(rank) if i != axis]
        self._broadcast_shape = [1] * rank
        self._broadcast_shape[axis] = channels
        self.input_spec = tf.keras.layers.InputSpec(ndim=rank, axes={axis: channels})

        param_dtype = tf.float32 if self.dtype in ("float16", "bfloat16") else self.dtype
        shape = (channels,)
        self.gamma = (
            self.add_weight(
                name="gamma",
                shape=shape,
                dtype=param_dtype,
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                experimental_autocast=False,
            )
            if self.scale
            else None
        )
        self.beta = (
            self.add_weight(
                name="beta",
                shape=shape,
                dtype=param_dtype,
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                experimental_autocast=False,
            )
            if self.center
            else None
        )
        # Same synchronisation as Keras' BatchNormalization: under tf.distribute each replica
        # updates its own copy and reads return the mean over replicas.
        moving = dict(
            shape=shape,
            dtype=param_dtype,
            trainable=False,
            synchronization=tf.VariableSynchronization.ON_READ,
            aggregation=tf.VariableAggregation.MEAN,
            experimental_autocast=False,
        )
        self.moving_mean = self.add_weight(
            name="moving_mean", initializer=self.moving_mean_initializer, **moving
        )
        self.moving_inv_std = self.add_weight(
            name="moving_inv_std", initializer=self.moving_inv_std_initializer, **moving
        )
        super().build(input_shape)

    # -- forward --------------------------------------------------------------------------------

    def _training_value(self, training):
        if training is None:
            training = tf.keras.backend.learning_phase()
        if isinstance(training, int):
            training = bool(training)
        if not self.trainable:
            # As Keras' BatchNormalization: a frozen layer always uses its moving statistics.
            training = False
        return training

    def _broadcast(self, v):
        # Per-channel vectors broadcast by themselves along the last axis; keeping them rank 1
        # there matters: LCE fuses them into LceBconv2d, whose post-ops must be rank 1.
        if self._channel_axis == len(self._broadcast_shape) - 1:
            return v
        return tf.reshape(v, self._broadcast_shape)

    def _scale_and_offset(self, dtype):
        gamma = ap2(tf.cast(self.gamma, dtype)) if self.scale else None
        beta = tf.cast(self.beta, dtype) if self.center else None
        return gamma, beta

    def _batch_statistics(self, x):
        """(μ, C = x − μ, σ² = mean(C·AP2(C))) over this replica's batch, or over the global
        batch when `synchronized` and running in a replica context with several replicas."""
        axes = self._reduction_axes
        replica = tf.distribute.get_replica_context() if self.synchronized else None
        if replica is None or replica.num_replicas_in_sync == 1:
            mean = tf.reduce_mean(x, axis=axes, keepdims=True)
            centred = x - mean
            return mean, centred, tf.reduce_mean(centred * ap2(centred), axis=axes, keepdims=True)

        # Global sums: [Σx per channel, local count] in one all-reduce, then Σ C·AP2(C), which
        # needs the global μ first (AP2 is not linear, so no E[x²] − E[x]² shortcut). The
        # all-reduce's gradient is the all-reduce of the gradients, so backward is global too.
        sum_op = tf.distribute.ReduceOp.SUM
        channels = self._broadcast_shape[self._channel_axis]
        count = tf.cast(tf.size(x) // channels, x.dtype)
        totals = replica.all_reduce(sum_op, tf.concat([tf.reduce_sum(x, axis=axes), [count]], 0))
        count = totals[-1]
        mean = tf.reshape(totals[:-1] / count, self._broadcast_shape)
        centred = x - mean
        variance = replica.all_reduce(sum_op, tf.reduce_sum(centred * ap2(centred), axis=axes))
        return mean, centred, tf.reshape(variance / count, self._broadcast_shape)

    def _train_forward(self, x):
        gamma, beta = self._scale_and_offset(x.dtype)
        mean, centred, variance = self._batch_statistics(x)
        inv_std = tf.math.rsqrt(variance + self.epsilon)
        y = centred * ap2(inv_std)
        if gamma is not None:
            y = y * self._broadcast(gamma)
        if beta is not None:
            y = y + self._broadcast(beta)
        return y, tf.reshape(mean, [-1]), tf.reshape(inv_std, [-1])

    def _inference_forward(self, x):
        gamma, beta = self._scale_and_offset(x.dtype)
        multiplier = ap2(tf.cast(self.moving_inv_std, x.dtype))
        if gamma is not None:
            multiplier = multiplier * gamma
        offset = -tf.cast(self.moving_mean, x.dtype) * multiplier
        if beta is not None:
            offset = offset + beta
        return x * self._broadcast(multiplier) + self._broadcast(offset)

    def _update_moving(self, variable, value):
        decay = tf.cast(1.0 - self.momentum, variable.dtype)
        return variable.assign_sub((variable - tf.cast(value, variable.dtype)) * decay)

    def call(self, inputs, training=None):
        inputs = tf.convert_to_tensor(inputs)
        input_dtype = inputs.dtype
        x = inputs
        if input_dtype in (tf.float16, tf.bfloat16):
            x = tf.cast(x, tf.float32)  # statistics in float32, as Keras' BatchNormalization
        training = self._training_value(training)

        if training is False:
            outputs = self._inference_forward(x)
        else:
            y, mean, inv_std = self._train_forward(x)
            # Moving statistics never receive gradients.
            mean, inv_std = tf.stop_gradient(mean), tf.stop_gradient(inv_std)
            smart_cond = tf.__internal__.smart_cond.smart_cond  # plain call for a Python bool

            def update(variable, value):
                return lambda: smart_cond(
                    training, lambda: self._update_moving(variable, value), lambda: variable
                )

            self.add_update(update(self.moving_mean, mean))
            self.add_update(update(self.moving_inv_std, inv_std))
            outputs = smart_cond(training, lambda: y, lambda: self._inference_forward(x))
        outputs = tf.cast(outputs, input_dtype)
        outputs.set_shape(inputs.shape)
        return outputs

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)

    def get_config(self):
        ser = tf.keras.initializers.serialize
        config = {
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": ser(self.beta_initializer),
            "gamma_initializer": ser(self.gamma_initializer),
            "moving_mean_initializer": ser(self.moving_mean_initializer),
            "moving_inv_std_initializer": ser(self.moving_inv_std_initializer),
            "beta_regularizer": tf.keras.regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": tf.keras.regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": tf.keras.constraints.serialize(self.beta_constraint),
            "gamma_constraint": tf.keras.constraints.serialize(self.gamma_constraint),
            "synchronized": self.synchronized,
        }
        return {**super().get_config(), **config}


_BATCHNORM_ALIASES = ("batchnorm", "batch_norm", "bn")
_SHIFT_ALIASES = ("shift", "sbn", "shift_batchnorm", "shift_batch_norm")
BN_CHOICES = ("batchnorm", "shift")


def get(identifier: str | tf.keras.layers.Layer, **kwargs) -> tf.keras.layers.Layer:
    """A new normalisation layer from a name: `"batchnorm"` (Keras) or `"shift"` (SBN).

    `kwargs` (momentum, epsilon, axis, name, ...) go to the layer's constructor, so recipes can
    swap one for the other (`kbnn train ... --bn shift`). A layer instance is returned as is.
    """
    if isinstance(identifier, tf.keras.layers.Layer):
        return identifier
    key = str(identifier).strip().lower() if isinstance(identifier, str) else None
    if key in _BATCHNORM_ALIASES:
        return tf.keras.layers.BatchNormalization(**kwargs)
    if key in _SHIFT_ALIASES:
        return ShiftBatchNormalization(**kwargs)
    raise ValueError(
        f"Unknown normalisation {identifier!r} for `bn`; expected one of {BN_CHOICES}."
    )
