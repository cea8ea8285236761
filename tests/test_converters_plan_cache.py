"""One level plan per layer per conversion: what the cache recognises, and that it changes nothing.

The reference for "changes nothing" is the uncached path (every pass and the report planning
every layer afresh, as before the cache): the flatbuffer must be byte-identical. The reference
for `infer_levels`' sampled search is the plain search over the whole kernel, written out here.
"""

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
import kbnn.zoo
from kbnn import layers as kl
from kbnn.converters import convert, levels, plan
from kbnn.converters.graph import rebuild

import numpy as np
import pytest
import tensorflow as tf

#: One model per lowering kind runs in the fast lane (binary convs and dense, weight planes,
#: activation planes); the other MNIST models of the zoo in the slow one.
FAST = ("binarynet_mnist", "ternarynet_mnist", "dorefanet_mnist")
MNIST = [
    name if name in FAST else pytest.param(name, marks=pytest.mark.slow)
    for name in kbnn.zoo.list_models()
    if kbnn.zoo.spec(name).dataset == "mnist"
]


def _count_analyses(monkeypatch) -> list:
    calls = []
    analyse = plan._analyse

    def counted(layer):
        calls.append(layer.name)
        return analyse(layer)

    monkeypatch.setattr(plan, "_analyse", counted)
    return calls


@pytest.mark.parametrize("name", MNIST)
def test_cached_plans_give_the_uncached_flatbuffer_byte_for_byte(name, monkeypatch):
    shipped = kbnn.zoo.available_weights(name) == "package"
    tf.keras.utils.set_random_seed(0)  # for a model without shipped weights yet
    model = kbnn.zoo.get(name, weights="pretrained" if shipped else None, compile=False)
    calls = _count_analyses(monkeypatch)
    tf.keras.backend.reset_uids()  # quantizers the passes create are named by a global counter
    cached = convert(model)
    cached_calls = len(calls)
    monkeypatch.setattr(plan._PlanCache, "get", lambda self, layer: plan._analyse(layer))
    tf.keras.backend.reset_uids()
    uncached = convert(model)
    assert cached.flatbuffer == uncached.flatbuffer
    assert str(cached.report) == str(uncached.report)
    assert cached_calls < len(calls) - cached_calls  # the cache did answer some of the asks
    assert plan._ACTIVE.get() is None  # dropped when convert returned


def _ternary_model(name="t", seed=0):
    inputs = tf.keras.Input((5, 5, 8))
    x = kl.TernaryConv2D(4, 3, input_quantizer="ste_sign", name=name)(inputs)
    model = tf.keras.Model(inputs, x)
    kernel = model.get_layer(name).kernel
    kernel.assign(np.random.default_rng(seed).uniform(-1, 1, kernel.shape))
    return model


def test_cache_recognises_clones_by_content_not_identity():
    model = _ternary_model()
    layer = model.get_layer("t")
    with plan.plan_cache() as cache:
        first = plan.plan_layer(layer)
        assert plan.plan_layer(rebuild(model).get_layer("t")) is first  # a pass's clone
        assert plan.layer_levels(layer) is plan.layer_levels(rebuild(model).get_layer("t"))
        assert len(cache.entries) == 1
        with plan.plan_cache() as inner:  # a nested block shares the outer cache
            assert inner is cache
        plan.plan_layer(_ternary_model(seed=1).get_layer("t"))  # other kernel values
        plan.plan_layer(_ternary_model(name="u").get_layer("u"))  # same values, other name
        assert len(cache.entries) == 3
        before = plan.layer_levels(layer).levels
        layer.kernel.assign(-layer.kernel)  # changed in place: analysed again
        assert np.array_equal(plan.layer_levels(layer).levels, -before)
        assert len(cache.entries) == 4
    assert plan._ACTIVE.get() is None
    assert plan.plan_layer(layer) is not plan.plan_layer(layer)  # no cache outside a block


def _reference_infer_levels(quantized):
    """The search over the whole kernel, every candidate scale checked in full."""
    q = np.asarray(quantized, np.float64)
    channels = q.shape[-1]
    flat = np.abs(q.reshape(-1, channels))
    candidates = []
    if np.any(flat > 0):
        candidates.append(np.full(channels, flat[flat > 0].min()))
    candidates.append(np.array([c[c > 0].min() if np.any(c > 0) else 1.0 for c in flat.T]))
    for base in candidates:
        for divisor in range(1, 9):
            scale = base / divisor
            rounded = np.round(q / scale)
            if np.abs(rounded).max(initial=0) > levels.MAX_LEVEL:
                break
            if np.allclose(q / scale, rounded, atol=1e-4) and np.allclose(
                rounded * scale, q, rtol=1e-6, atol=1e-9
            ):
                return rounded.astype(np.float32), scale.astype(np.float32)
    return None


def _kernels():
    rng = np.random.default_rng(3)
    shape = (3, 3, 40, 24)  # 8640 rows x 24 channels > the 65,536-element sample
    big = (16, 40, 40, 24)
    alpha = rng.uniform(0.1, 2.0, 24).astype(np.float32)
    ternary = rng.integers(-1, 2, big).astype(np.float32)
    ternary[..., 5] = np.where(ternary[..., 5] == 0, 0, 2)  # a channel without level ±1
    late = np.sign(rng.uniform(-1, 1, big)).astype(np.float32) * alpha
    late[-1, -1, -1, 0] *= 1.5  # off the d = 1 grid past the sample: seen in full only
    beyond = rng.integers(-3, 4, big).astype(np.float32) * 0.25
    beyond[-1, -1, -1, 1] = 300.0  # |level| > 255 past the sample
    signs = np.where(rng.uniform(-1, 1, big) < 0, -1, 1).astype(np.float32)
    return {
        "xnor": signs * alpha,
        # ±α_c kernels whose α_c are multiples of the smallest α (one scale for the whole
        # kernel wins), need divisor 2 (1.5×), or give levels over 255.
        "xnor_integer_ratios": signs * np.float32(0.3) * rng.integers(1, 4, 24).astype(np.float32),
        "xnor_half_ratios": signs * np.float32(0.2) * rng.choice([1.0, 1.5], 24).astype(np.float32),
        "xnor_ratio_over_255": signs * np.where(np.arange(24) == 3, 300.0, 1.0).astype(np.float32),
        "ternary_per_channel": ternary * alpha,
        "dorefa": (2 * rng.integers(0, 4, shape) - 3).astype(np.float32) / 3,
        "five_level": rng.integers(-2, 3, shape).astype(np.float32) * 0.37,
        "float": rng.normal(size=shape).astype(np.float32),
        "zeros": np.zeros(shape, np.float32),
        "off_grid_past_sample": late,
        "too_large_past_sample": beyond,
        "zero_channel": np.concatenate(
            [np.zeros(shape[:-1] + (1,), np.float32), np.sign(rng.normal(size=shape))], axis=-1
        ).astype(np.float32),
    }


@pytest.mark.parametrize(("kind", "kernel"), list(_kernels().items()))
def test_infer_levels_equals_the_full_search(kind, kernel):
    want = _reference_infer_levels(kernel)
    got = levels.infer_levels(kernel)
    if want is None:
        assert got is None, kind
        return
    assert got is not None, kind
    for mine, reference in zip(got, want, strict=True):
        assert mine.dtype == reference.dtype and np.array_equal(mine, reference), kind


@pytest.mark.parametrize(
    "level_set",
    [[-1, 1], [-1, 0, 1], [-2, -1, 0, 1, 2], [-3, -1, 1, 3], [-7, 7], [0], [-5, 2], [-255, 255]],
)
def test_plane_count_is_the_number_of_planes(level_set):
    values = np.random.default_rng(0).choice(level_set, size=(3, 3, 4, 5)).astype(np.float32)
    assert levels.plane_count(values) == len(levels.weight_planes(values))
