"""Third-party larq models through kbnn.converters: every larq-zoo 2.4.0 model definition and the
three models of larq's documentation (benchmarks/compat_larq_zoo.py) convert and agree with
Keras `predict` in LCE's interpreter (sign ties apart); none is refused any more. The
models have `weights=None` and BN statistics from a batch of inputs, then perturbed.

larq-zoo is not a kbnn dependency (it pins protobuf < 3.21): install the `larq-zoo-test` extra
and then `pip install --no-deps larq-zoo==2.4.0 zookeeper==1.3.4` (docs/stack.md). Without it
the larq-zoo cases are skipped; the docs models need only larq.
"""

import importlib.util

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import converters
from kbnn.converters.levels import input_encoding

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO_ROOT

pytestmark = pytest.mark.slow

_spec = importlib.util.spec_from_file_location(
    "compat_larq_zoo", REPO_ROOT / "benchmarks" / "compat_larq_zoo.py"
)
compat = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compat)

try:
    import larq_zoo  # noqa: F401

    ZOO = sorted(compat.zoo_models())
    SKIP_ZOO = None
except Exception as err:  # ImportError, or a zookeeper/protobuf clash at import
    ZOO = ["QuickNet"]  # one placeholder case that reports the skip reason
    SKIP_ZOO = f"larq_zoo is not importable ({type(err).__name__}: {err}); see docs/stack.md"

#: Input height = width of the larq-zoo models (XNORNet: 224, `compat.MIN_SIZE`). Not smaller:
#: below 96 the literature models' last stage shrinks to 1×1 or 2×2 maps, where LCE 0.16 computes
#: zero-padded binary convolutions wrongly (plain LCE too; docs/converters.md, "Limits").
SIZE = 96
SAMPLES = 8


def _binary_convs(model) -> int:
    """QuantConv2D layers that LCE must run as LceBconv2d: sign inputs, a kernel quantizer."""
    return sum(
        isinstance(layer, lq.layers.QuantConv2D)
        and layer.kernel_quantizer is not None
        and input_encoding(layer).kind == "sign"
        for layer in model.submodules
    )


def _check(model, seed: int = 1) -> None:
    shape = tuple(model.inputs[0].shape[1:])
    calibration = np.random.default_rng(seed + 1).uniform(-1, 1, (32, *shape))
    compat.perturb_batchnorm(model, calibration.astype(np.float32))
    x = np.random.default_rng(seed).uniform(-1, 1, (SAMPLES, *shape)).astype(np.float32)
    conversion = converters.convert(model)
    assert conversion.ops.get("LceBconv2d", 0) >= _binary_convs(model), conversion.ops
    report = converters.verify(model, conversion.flatbuffer, x)
    assert report.passed(), str(report)  # no real disagreement; argmax agrees away from ties
    assert report.judged_argmax_agreement in (None, 1.0), str(report)


@pytest.mark.parametrize("name", ZOO)
def test_larq_zoo_model_converts_and_agrees_with_keras(name):
    if SKIP_ZOO:
        pytest.skip(SKIP_ZOO)
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(0)
    model = compat.build(name, SIZE)
    _check(model)


@pytest.mark.parametrize("name", sorted(compat.DOCS_MODELS))
def test_larq_docs_model_converts_and_agrees_with_keras(name):
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(0)
    _check(compat.DOCS_MODELS[name]())
