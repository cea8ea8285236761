r"""Quantizers from the BNN literature as serializable Keras layers, built on larq's.

Every quantizer is a `larq.quantizers.Quantizer` with a `precision` attribute, a `get_config`,
and a string alias, so it can be passed by name to any larq or kbnn layer:

```python
import kbnn
import larq as lq

lq.layers.QuantConv2D(64, 3, kernel_quantizer="twn", kernel_constraint="weight_clip")
kbnn.layers.QuantDense(10, kernel_quantizer=kbnn.quantizers.FiveLevelWeight())
```

| alias | class | forward | backward (pseudo-gradient) |
|---|---|---|---|
| `ste_sign` | larq's `SteSign` | sign(x), sign(0) = +1 | 1 where \|x\| ≤ 1 |
| `stochastic_sign` | `StochasticSign` | ±1, P(+1) = clip((x+1)/2, 0, 1); sign(x) at inference | 1 where \|x\| ≤ 1 |
| `xnor_weight` | `XnorWeight` | α·sign(W), α = E\|W\| per output channel | 1 where \|W\| ≤ 1 |
| `twn` | `TernaryWeight` | α·t, t ∈ {−1, 0, 1}, Δ = 0.7·E\|W\| | 1 where \|W\| ≤ 1 |
| `five_level` | `FiveLevelWeight` | α·t, t ∈ {−2..2}, least squares | 1 where \|W\| ≤ 1 |
| `dorefa_weight` | `DoReFaWeight` | 2·quantize_k(tanh W/(2 max\|tanh W\|) + ½) − 1 | through tanh, identity at rounding |
| `dorefa_activation` | `DoReFaActivation` | quantize_k(clip(x, 0, 1)) | 1 where 0 ≤ x ≤ 1 |
| `dorefa_gradient` | `DoReFaGradient` | identity | dr quantized to k bits with noise |
| `fixed_point_input` | `FixedPointInput` | 8-bit fixed point on [0, 1] | 1 where 0 ≤ x ≤ 1 |

Weight quantizers with a discrete level set also expose `integer_levels(w) -> (levels, scale)`
with `q(w) = levels · scale`, integer-valued `levels` and a per-output-channel (or scalar)
`scale`, and a class attribute `levels`; converters use these to lower layers to binary planes.
"""

import inspect
import numbers
from typing import TYPE_CHECKING

from kbnn import math as kmath
from kbnn._registry import register
from kbnn._validation import check_type

import larq as lq
import tensorflow as tf
from larq.quantizers import DoReFa, Quantizer, SteSign, _BaseQuantizer

__all__ = [
    "ALIASES",
    "DoReFaActivation",
    "DoReFaGradient",
    "DoReFaWeight",
    "FiveLevelWeight",
    "FixedPointInput",
    "Quantizer",
    "SteSign",
    "StochasticSign",
    "TernaryWeight",
    "XnorWeight",
    "deserialize",
    "get",
    "known_aliases",
    "serialize",
    "ste_sign",
]

ste_sign = lq.quantizers.ste_sign  # the BinaryNet quantizer function, aliased (not copied)
serialize = lq.quantizers.serialize
deserialize = lq.quantizers.deserialize

#: Every alias kbnn documents, name -> class (larq's `ste_sign` included). Contract tests
#: parametrize over this table, so a new quantizer is tested as soon as it is registered.
ALIASES: dict[str, type] = {"ste_sign": SteSign}

if TYPE_CHECKING:  # to a type checker, the classes the mixins below go with
    from larq.quantizers import _BaseQuantizer as _LevelMixinBase
    from tf_keras.src.engine.base_layer import BaseRandomLayer as _BaseRandomLayer
else:
    _LevelMixinBase = object
    _BaseRandomLayer = tf.keras.__internal__.layers.BaseRandomLayer
_RNG_TYPE = "stateful"  # the random quantizers own a stateful `tf.random.Generator`


def _pop_rng_type(kwargs: dict) -> None:
    """Drop `rng_type` from a deserialized config (tf-keras >= 2.20 writes it in get_config).

    The random quantizers always pass `rng_type="stateful"` themselves; any other value in a
    config would silently change their sampling, so it is refused.
    """
    rng_type = kwargs.pop("rng_type", _RNG_TYPE)
    if rng_type != _RNG_TYPE:
        raise ValueError(
            f"rng_type must be {_RNG_TYPE!r} for kbnn's random quantizers, got {rng_type!r}"
        )


def _random_quantizer_config(base_config: dict) -> dict:
    """`base_config` without `rng_type`, so configs are the same on tf-keras 2.19 and >= 2.20."""
    return {key: value for key, value in base_config.items() if key != "rng_type"}


def _register(alias: str):
    """Register a quantizer class as `kbnn>ClassName`, `ClassName` and its short `alias`.

    The bare class name is needed too: legacy (.h5) deserialization of larq layers looks
    quantizers up by `class_name` only (larq registers its own quantizers the same way).
    """

    def decorator(cls):
        cls = register(cls, bare_name=True)
        lq.utils.register_alias(alias)(cls)
        ALIASES[alias] = cls
        return cls

    return decorator


def known_aliases() -> list[str]:
    """Every string a quantizer argument accepts (kbnn's and larq's aliases and class names)."""
    names = {
        name
        for name, obj in tf.keras.utils.get_custom_objects().items()
        if isinstance(obj, type) and issubclass(obj, Quantizer) and ">" not in name
    }
    return sorted(names | set(ALIASES))


def get(identifier):
    """Resolve a quantizer from an alias, a config dict, a callable or None (larq semantics).

    An unknown name raises a ValueError that lists the known aliases.
    """
    if isinstance(identifier, str):
        try:
            return lq.quantizers.get(identifier)
        except ValueError as err:
            raise ValueError(
                f"Unknown quantizer {identifier!r}. Known aliases: {', '.join(known_aliases())}."
            ) from err
    return lq.quantizers.get(identifier)


def _check_clip_value(clip_value):
    if clip_value is not None and (
        not isinstance(clip_value, numbers.Real) or isinstance(clip_value, bool) or clip_value <= 0
    ):
        raise ValueError(f"`clip_value` must be a positive number or None, got {clip_value!r}.")
    return clip_value


def _resolve_training(training):
    return tf.keras.backend.learning_phase() if training is None else training


def _do_not_convert(method):
    """`tf.autograph.experimental.do_not_convert` for a layer's `call`, signature kept.

    The quantizers' `call`s are plain graph code (no Python control flow on tensors), so
    AutoGraph has nothing to convert, and trying to warns ("AutoGraph could not transform ...")
    wherever it cannot read their source: .pyc-only installs, or a module edited on disk while
    a process that imported it keeps tracing. The explicit `__signature__` keeps Keras'
    argument inspection (`training`, ...) seeing `method`'s, not the wrapper's `*args, **kwargs`.
    """
    wrapper = tf.autograph.experimental.do_not_convert(method)
    wrapper.__signature__ = inspect.signature(method)
    return wrapper


# --------------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------------


@_register("stochastic_sign")
class StochasticSign(_BaseQuantizer, _BaseRandomLayer):
    r"""Stochastic binarization (Courbariaux, Hubara et al. 2016, eq. 2).

    Training: q(x) = +1 with probability σ(x) = clip((x + 1)/2, 0, 1) (the hard sigmoid), −1
    otherwise, so E[q(x)] = 2σ(x) − 1. Inference (`training=False`): exactly larq's `ste_sign`
    forward, sign(x) with sign(0) = +1, so LCE lowers it to a binary convolution.

    Backward: ∂q/∂x := 1 where |x| ≤ `clip_value`, 0 elsewhere (clipped STE).

    # Arguments
        clip_value: gradient cancelled where |x| > clip_value; None keeps it everywhere.
        seed: int seed of the layer's own `tf.random.Generator`; the same seed gives the same
            sequence of samples.
    """

    precision = 1

    def __init__(self, clip_value: float | None = 1.0, seed: int | None = None, **kwargs):
        self.clip_value = _check_clip_value(clip_value)
        self.seed = seed
        _pop_rng_type(kwargs)
        super().__init__(seed=seed, rng_type=_RNG_TYPE, **kwargs)

    def _sample(self, x):
        uniform = self._random_generator.random_uniform(tf.shape(x), dtype=x.dtype)

        def forward(x):
            hard_sigmoid = tf.clip_by_value((x + 1.0) / 2.0, 0.0, 1.0)
            return tf.where(uniform < hard_sigmoid, tf.ones_like(x), -tf.ones_like(x))

        return kmath.ste(x, forward, self.clip_value)

    @_do_not_convert
    def call(self, inputs, training=None):
        training = _resolve_training(training)
        outputs = tf.__internal__.smart_cond.smart_cond(
            training,
            lambda: self._sample(inputs),
            lambda: ste_sign(inputs, clip_value=self.clip_value),
        )
        return super().call(outputs)

    def get_config(self):
        return {
            **_random_quantizer_config(super().get_config()),
            "clip_value": self.clip_value,
            "seed": self.seed,
        }


@_register("dorefa_activation")
class DoReFaActivation(DoReFa):
    r"""DoReFa-Net activation quantizer (Zhou et al. 2016, §2.4): q(x) = quantize_k(clip(x, 0, 1)).

    quantize_k(r) = round((2^k − 1)·r)/(2^k − 1). Backward: identity through the rounding, so
    ∂q/∂x = 1 on [0, 1] and 0 outside (the gradient of the clip). larq's `DoReFa` in
    "activations" mode does the work; this class fixes the mode, validates `k_bit` and adds
    `integer_levels` / `bit_planes` (levels 0..n, scale 1/n, n = 2^k − 1).

    # Arguments
        k_bit: bits of the activation, 1..32.
    """

    _mode = "activations"

    def __init__(self, k_bit: int = 3, **kwargs):
        kwargs.pop("mode", None)
        super().__init__(k_bit=kmath.check_bits(k_bit, "k_bit"), mode=self._mode, **kwargs)

    @property
    def k_bit(self) -> int:
        return self.precision

    @property
    def n(self) -> int:
        return kmath.max_level(self.precision)

    def integer_levels(self, x):
        """(levels, scale) with levels = round(n·clip(x, 0, 1)) ∈ {0..n}, scale = 1/n."""
        x = tf.convert_to_tensor(x)
        return tf.round(tf.clip_by_value(x, 0.0, 1.0) * self.n), tf.constant(1.0 / self.n, x.dtype)

    def bit_planes(self, x, signed: bool = False):
        """Bit planes of the quantized input (last axis, LSB first); see `kbnn.math.to_bit_planes`.

        q(x) = scale · Σ_i 2^i·plane_i: a k-bit layer is k binary layers (QNN, Hubara et al. 2016).
        """
        levels, _ = self.integer_levels(x)
        return kmath.to_bit_planes(levels, self.precision, signed=signed)

    def get_config(self):
        config = super().get_config()
        config.pop("mode", None)
        return config


@_register("fixed_point_input")
class FixedPointInput(DoReFaActivation):
    r"""Fixed-point first-layer input (BinaryNet, Courbariaux, Hubara et al. 2016, §2.6).

    Inputs in [0, 1] are represented with `bits` bits: q(x) = round(n·clip(x, 0, 1))/n,
    n = 2^bits − 1 (for 8-bit MNIST pixels, n·x is the pixel value itself). The first layer
    can then be computed with binary products only, one per bit plane x^m:
    s = Σ_{m=1}^{bits} 2^{m−1}·(x^m · w_b) (eq. 7); use `bit_planes` with
    `kbnn.math.bit_plane_sum`. Backward: identity on [0, 1].

    `signed=True` is the same grid mapped to [−1, 1] (an image rescaled by 2x − 1):
    q(y) = 2·q₀((y + 1)/2) − 1 = (2Q − n)/n, Q = round(n·clip((y + 1)/2, 0, 1)); the planes
    of Q then give y = Σ_m 2^{m−1}·(2·x^m − 1)/n with no constant term. Backward: identity on
    [−1, 1]. `integer_levels` and `bit_planes` return Q and its planes.

    # Arguments
        bits: input bit width, 1..32 (8 by default).
        signed: inputs in [−1, 1] instead of [0, 1].
    """

    def __init__(self, bits: int = 8, signed: bool = False, **kwargs):
        kwargs.pop("k_bit", None)
        self.signed = check_type(signed, "signed", bool)
        super().__init__(k_bit=kmath.check_bits(bits, "bits"), **kwargs)

    @property
    def bits(self) -> int:
        return self.precision

    def call(self, inputs):
        if not self.signed:
            return super().call(inputs)
        return 2.0 * super().call((inputs + 1.0) / 2.0) - 1.0

    def integer_levels(self, x):
        """(Q, 1/n): q(x) = Q/n, or (2Q − n)/n when signed (Q of (x + 1)/2)."""
        x = tf.convert_to_tensor(x)
        return super().integer_levels((x + 1.0) / 2.0 if self.signed else x)

    def get_config(self):
        config = super().get_config()
        config["bits"] = config.pop("k_bit")
        config["signed"] = self.signed
        return config


@_register("dorefa_gradient")
class DoReFaGradient(_BaseQuantizer, _BaseRandomLayer):
    r"""DoReFa-Net gradient quantizer (Zhou et al. 2016, §2.5, eq. 12).

    Forward: identity. Backward: the incoming gradient dr is replaced by
    2·m·(quantize_k(dr/(2m) + ½ + N(k)) − ½), m = max|dr| over every axis but the batch axis,
    N(k) ~ U(−½·1/(2^k−1), +½·1/(2^k−1)) (see `kbnn.math.quantize_gradient`).

    Precision is 32 because the forward output is not quantized; `k_bit` is the gradient's.

    # Arguments
        k_bit: gradient bits, 1..32.
        seed: int seed of the noise generator.
    """

    precision = 32

    def __init__(self, k_bit: int = 4, seed: int | None = None, **kwargs):
        self.k_bit = kmath.check_bits(k_bit, "k_bit")
        self.seed = seed
        _pop_rng_type(kwargs)
        super().__init__(seed=seed, rng_type=_RNG_TYPE, **kwargs)

    @_do_not_convert
    def call(self, inputs):
        half_width = 0.5 * kmath.gradient_noise_width(self.k_bit)

        @tf.custom_gradient
        def _identity(x):
            def grad(dy):
                noise = self._random_generator.random_uniform(
                    tf.shape(dy), minval=-half_width, maxval=half_width, dtype=dy.dtype
                )
                return kmath.quantize_gradient(dy, self.k_bit, noise)

            return tf.identity(x), grad

        return super().call(_identity(inputs))

    def get_config(self):
        return {
            **_random_quantizer_config(super().get_config()),
            "k_bit": self.k_bit,
            "seed": self.seed,
        }


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------


def _smallest_int_dtype(max_level: int) -> str:
    """The narrowest signed integer dtype that holds every level in −max_level..max_level."""
    return next(d for d in ("int8", "int16", "int32", "int64") if max_level <= tf.as_dtype(d).max)


class _LevelFlipRatio(_LevelMixinBase):
    """Mixin: larq's `flip_ratio` metric, fed with the integer levels of `integer_levels`.

    larq's `_BaseQuantizer.call` feeds `FlipRatio` the quantizer's outputs cast to int8: for
    α·t with |α·t| < 1 that is 0 everywhere, so flips were never counted. These quantizers
    feed it the levels t instead (an int8 metric unless the levels need more bits), so
    `larq.context.metrics_scope(["flip_ratio"])` reports the fraction of weights whose level
    changed since the previous step.
    """

    @property
    def _max_level(self) -> int:
        return max(abs(level) for level in self.levels)

    def build(self, input_shape):
        if self._custom_metrics and "flip_ratio" in self._custom_metrics:
            self.flip_ratio = lq.metrics.FlipRatio(
                values_dtype=_smallest_int_dtype(self._max_level), name=f"flip_ratio/{self.name}"
            )
            self.flip_ratio.build(input_shape)
        super(_BaseQuantizer, self).build(input_shape)  # not larq's int8 metric on the outputs

    def _track_levels(self, outputs, levels):
        """What `_BaseQuantizer.call` does, on the levels: update the metric, return `outputs`."""
        if hasattr(self, "flip_ratio"):
            self.add_metric(self.flip_ratio(levels))
        return outputs


class _LevelWeight(_LevelFlipRatio, _BaseQuantizer):
    """Base of scaled weight quantizers q(W) = levels(W)·scale(W) with a clipped STE backward."""

    levels: tuple[int, ...] = ()

    def __init__(self, clip_value: float | None = 1.0, **kwargs):
        self.clip_value = _check_clip_value(clip_value)
        super().__init__(**kwargs)

    def integer_levels(self, w):  # pragma: no cover - abstract
        raise NotImplementedError

    @_do_not_convert
    def call(self, inputs):
        levels, scale = self.integer_levels(inputs)  # once, for the outputs and the metric
        # Backward the clipped STE only: levels and scale are constants of the gradient.
        outputs = kmath.ste(inputs, lambda _: levels * scale, self.clip_value)
        return self._track_levels(outputs, levels)

    def get_config(self):
        return {**super().get_config(), "clip_value": self.clip_value}


@_register("xnor_weight")
class XnorWeight(_LevelWeight):
    r"""XNOR-Net / BWN binary weights (Rastegari et al. 2016, eq. 4): q(W) = α·sign(W).

    α = E|W| = ‖W‖₁/n per output channel (last kernel axis), the least-squares optimal scale for
    sign(W). sign(0) = +1 (larq's `math.sign`), so the kernel is ±α per output channel and LCE
    folds α into the binary convolution's post-multiplier.

    Backward: ∂q/∂W := 1 where |W| ≤ `clip_value` (clipped STE; α treated as a constant of 1).
    """

    precision = 1
    levels = (-1, 1)

    def integer_levels(self, w):
        w = tf.convert_to_tensor(w)
        return lq.math.sign(w), kmath.mean_abs(w, per_channel=True)


@_register("twn")
class TernaryWeight(_LevelWeight):
    r"""Ternary Weight Networks (Li & Liu 2016, eqs. 6 and 9): q(W) = α·t.

    Δ = threshold_factor·E|W| (0.7 in the paper, an approximation of the optimum for Gaussian
    or uniform weights); t = +1 where W > Δ, −1 where W < −Δ, 0 elsewhere; α = mean of |W| over
    |W| > Δ (0 if no weight passes). Statistics per output channel (last axis) by default, over
    the whole tensor with `per_channel=False` (the paper's layer-wise form).

    Backward: ∂q/∂W := 1 where |W| ≤ `clip_value` (clipped STE).

    # Arguments
        threshold_factor: the 0.7 in Δ = 0.7·E|W|; must be > 0.
        per_channel: per-output-channel Δ and α (True) or one per tensor (False).
        clip_value: gradient cancelled where |W| > clip_value; None keeps it everywhere.
    """

    precision = 2
    levels = (-1, 0, 1)
    threshold_factor: float
    per_channel: bool

    def __init__(self, threshold_factor: float = 0.7, per_channel: bool = True, **kwargs):
        if (
            not isinstance(threshold_factor, numbers.Real)
            or isinstance(threshold_factor, bool)
            or not threshold_factor > 0
        ):
            raise ValueError(f"`threshold_factor` must be > 0, got {threshold_factor!r}.")
        self.threshold_factor = float(threshold_factor)
        self.per_channel = bool(per_channel)
        super().__init__(**kwargs)

    def integer_levels(self, w):
        # larq's `ste_tern` takes a scalar threshold and carries its own gradient; TWN needs a
        # per-channel Δ inside one STE, so the (one-line) forward lives in kbnn.math.ternarize.
        w = tf.convert_to_tensor(w)
        delta = self.threshold_factor * kmath.mean_abs(w, self.per_channel)
        ternary = kmath.ternarize(w, delta)
        return ternary, kmath.least_squares_scale(w, ternary, self.per_channel)

    def get_config(self):
        return {
            **super().get_config(),
            "threshold_factor": self.threshold_factor,
            "per_channel": self.per_channel,
        }


@_register("five_level")
class FiveLevelWeight(_LevelWeight):
    r"""Five-level weights q(W) = α·t, t ∈ {−2, −1, 0, 1, 2}, fitted by least squares.

    min over α ≥ 0 and t of ‖W − α·t‖², per output channel (or per tensor): for fixed α each
    weight takes the nearest level (thresholds ±α/2, ±3α/2); for fixed t the best α is
    ⟨W, t⟩/⟨t, t⟩. Alternating the two (Lloyd) from E|W| stalls in poor local optima (up to
    13× the optimal error on clipped latent weights), so kbnn first scores 64 candidate α on a
    grid over [0, 2·max|W|] (on ≤ 128 sampled weights per channel), then polishes the best with
    three alternating steps — see `kbnn.math.fit_symmetric_levels` for the derivation and the
    measured gap to the exact optimum (median 0 %, 99th percentile 2.5 %). Static shapes,
    elementwise ops and reductions only, so it compiles with XLA.
    For Gaussian weights α* ≈ 1.056·E|W|.

    Backward: ∂q/∂W := 1 where |W| ≤ `clip_value` (clipped STE).

    # Arguments
        per_channel: α per output channel (last axis) or one per tensor.
        clip_value: gradient cancelled where |W| > clip_value; None keeps it everywhere.
    """

    precision = 3
    levels = (-2, -1, 0, 1, 2)

    def __init__(self, per_channel: bool = True, **kwargs):
        self.per_channel = bool(per_channel)
        super().__init__(**kwargs)

    def integer_levels(self, w):
        return kmath.fit_symmetric_levels(w, max_level=2, per_channel=self.per_channel)

    def get_config(self):
        return {**super().get_config(), "per_channel": self.per_channel}


@_register("dorefa_weight")
class DoReFaWeight(_LevelFlipRatio, DoReFa):
    r"""DoReFa-Net weight quantizer (Zhou et al. 2016, eqs. 7 and 9).

    k = 1: q(W) = E|W|·sign(W) (mean over the whole layer), backward identity (STE).
    k > 1: q(W) = 2·quantize_k(tanh(W)/(2·max|tanh(W)|) + ½) − 1 — larq's `DoReFa` in "weights"
    mode, op for op; backward through tanh and the normalisation (max treated as constant),
    identity at the rounding. Levels are the odd integers −n..n (n = 2^k − 1) with scale 1/n.

    Not idempotent for k ≥ 4, by the paper's formula: q(W) spans [−1, 1] (max |q| = 1), so
    q(q(W)) maps each level u = l/n to tanh(u)/tanh(1), which exceeds u by up to 0.107 (at
    u ≈ 0.53). That is less than half a step (1/n) for k ≤ 3, so q(q(W)) = q(W) for k = 2, 3
    (k = 1: up to the float32 sum in E|W|); for k ≥ 4 levels move: max |q(q(W)) − q(W)| = 0.133 (k = 4, 8 of the 16 levels move one
    step), 0.129 (k = 5), 0.095 (k = 6), 0.110 (k = 7 and 8). Quantize latent weights, not
    already quantized ones (converters read `integer_levels` of the latent kernel).

    # Arguments
        k_bit: weight bits, 1..32.
    """

    def __init__(self, k_bit: int = 1, **kwargs):
        kwargs.pop("mode", None)
        super().__init__(k_bit=kmath.check_bits(k_bit, "k_bit"), mode="weights", **kwargs)

    @property
    def k_bit(self) -> int:
        return self.precision

    @property
    def levels(self) -> tuple[int, ...]:
        n = kmath.max_level(self.precision)
        return tuple(range(-n, n + 1, 2))

    @property
    def _max_level(self) -> int:
        return kmath.max_level(self.precision)

    def _odd_levels(self, normed):
        """2·round(n·normed) − n ∈ {−n, −n + 2, .., n} for `normed` = larq's weight_preprocess."""
        n = kmath.max_level(self.precision)
        return 2.0 * tf.round(normed * n) - n

    def integer_levels(self, w):
        w = tf.convert_to_tensor(w)
        if self.precision == 1:
            return lq.math.sign(w), kmath.mean_abs(w, per_channel=False)
        n = kmath.max_level(self.precision)
        return self._odd_levels(self.weight_preprocess(w)), tf.constant(1.0 / n, w.dtype)

    @_do_not_convert
    def call(self, inputs):
        if self.precision == 1:
            levels, scale = self.integer_levels(inputs)
            outputs = kmath.ste(inputs, lambda _: levels * scale, None)
        else:
            # larq's `DoReFa.call` in "weights" mode (same ops, so the same bits), without its
            # flip-ratio update on the outputs.
            normed = self.weight_preprocess(inputs)
            quantized = kmath.ste(normed, lambda x: kmath.quantize_k(x, self.precision), None)
            outputs = 2.0 * quantized - 1.0
            levels = self._odd_levels(normed)
        return self._track_levels(outputs, levels)

    def get_config(self):
        config = super().get_config()
        config.pop("mode", None)
        return config
