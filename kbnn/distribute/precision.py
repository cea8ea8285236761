"""Mixed precision for binarized networks: which layers may compute in 16 bits, which stay float32.

Keras' mixed precision (`mixed_float16` on NVIDIA GPUs, `mixed_bfloat16` on TPUs) keeps the
variables in float32 and computes in 16 bits. For kbnn's layers, measured on this stack
(docs/distributed_training.md, "Mixed precision"):

- sign quantizers (`ste_sign`, `approx_sign`, `swish_sign`, `stochastic_sign`) are exact in 16
  bits, and so are the integer sums of a binary convolution / dense layer (±1 · ±1) up to 2048
  in float16 (256 in bfloat16, 512 for even fan-in);
- batch normalisation (Keras' and kbnn's shift-based BN) computes its statistics in float32 by
  itself, so it may stay in the policy;
- **must stay float32**: the model's output layer (softmax; the loss needs float32
  probabilities — Keras' mixed-precision guide) and every quantized layer whose *kernel
  quantizer computes a data-dependent scale* (XNOR, TWN, five-level, DoReFa weights, larq's
  magnitude-aware sign): their `reduce_mean` in float16 is 1e-3-relative at best, and
  `tf.reduce_mean` over more than 65,504 float16 elements returns 0 (the element count
  overflows float16), which zeroes e.g. a DoReFa 1-bit dense layer of 3136×64 weights.

`with_precision(model, policy)` rebuilds a model with each layer on the right policy.
"""

from __future__ import annotations

import contextlib

from kbnn._validation import check_choice
from kbnn.kernels import kernel_quantizer
from kbnn.quantizers import StochasticSign

import larq as lq
import tensorflow as tf

__all__ = [
    "POLICY_CHOICES",
    "SIGN_QUANTIZERS",
    "float32_reason",
    "loss_scale_optimizer",
    "with_precision",
]

POLICY_CHOICES = ("float32", "mixed_float16", "mixed_bfloat16")


#: Kernel quantizers whose forward pass is a pure sign / identity: exact in 16 bits.
SIGN_QUANTIZERS = (
    lq.quantizers.SteSign,
    lq.quantizers.ApproxSign,
    lq.quantizers.SwishSign,
    lq.quantizers.SteHeaviside,
    lq.quantizers.NoOp,
    StochasticSign,
)


def check_policy(policy: str) -> str:
    return check_choice(policy, "mixed precision policy", POLICY_CHOICES)


def float32_reason(layer: tf.keras.layers.Layer, *, is_output: bool = False) -> str | None:
    """Why `layer` must compute in float32 under a mixed policy, or None when 16 bits are fine."""
    if is_output:
        return "model output: the loss needs float32 probabilities"
    quantizer = kernel_quantizer(layer)
    if quantizer is not None and not isinstance(quantizer, SIGN_QUANTIZERS):
        return (
            f"kernel quantizer {type(quantizer).__name__} computes a data-dependent scale "
            "(reduce_mean/max over the kernel), inexact or zero in 16 bits"
        )
    return None


@contextlib.contextmanager
def _global_policy(policy: str):
    """Layers built inside (and the quantizer sub-layers they create) get `policy`."""
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


def with_precision(model: tf.keras.Model, policy: str = "mixed_float16") -> tf.keras.Model:
    """A copy of functional `model` (same weights) computing in `policy`, except the layers
    `float32_reason` names, which compute in float32. Build it inside `strategy.scope()` when
    distributing; compile it with `loss_scale_optimizer(...)` for `mixed_float16`."""
    check_policy(policy)
    outputs = set(model.output_names)

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, tf.keras.layers.InputLayer):
            return layer.__class__.from_config(config)
        dtype = "float32" if float32_reason(layer, is_output=layer.name in outputs) else policy
        config["dtype"] = dtype
        for key, value in config.items():  # serialized quantizers carry their own dtype
            if (
                key.endswith("quantizer")
                and isinstance(value, dict)
                and isinstance(value.get("config"), dict)
            ):
                value["config"]["dtype"] = dtype
        with _global_policy(dtype):  # quantizers created from strings follow the layer too
            return layer.__class__.from_config(config)

    copy = tf.keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def loss_scale_optimizer(optimizer, policy: str):
    """`optimizer` wrapped in Keras' dynamic `LossScaleOptimizer` for `mixed_float16` (float16
    gradients underflow without it); unchanged for the other policies. Works for the legacy
    optimizers (larq's Bop/CaseOptimizer) too."""
    check_policy(policy)
    if policy != "mixed_float16" or isinstance(
        optimizer, tf.keras.mixed_precision.LossScaleOptimizer
    ):
        return optimizer
    return tf.keras.mixed_precision.LossScaleOptimizer(optimizer)
