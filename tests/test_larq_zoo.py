"""Third-party larq models through kbnn.converters: every larq-zoo 2.4.0 model definition and the
three models of larq's documentation (benchmarks/compat_larq_zoo.py) convert and agree with
Keras `predict` in LCE's interpreter (sign ties apart), or are refused with a reason.

larq-zoo is not a kbnn dependency (it pins protobuf < 3.21): install the `larq-zoo-test` extra
and then `pip install --no-deps larq-zoo==2.4.0 zookeeper==1.3.4` (docs/stack.md). Without it
the larq-zoo cases are skipped; the docs models need only larq.
"""

import importlib.util

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import converters
from kbnn.converters.levels import input_encoding
from kbnn.converters.verify import lce_outputs

import larq as lq
import larq_compute_engine as lce
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

#: Input height = width: the smallest each model builds at (XNORNet needs 224).
SIZES = {"BinaryAlexNet": 64, "DoReFaNet": 48, "XNORNet": 224}
DEFAULT_SIZE = 32
SAMPLES = 8

#: Models kbnn refuses, with the reason the error must give. Empty: every model converts.
REFUSED: dict[str, str] = {}


def _binary_convs(model) -> int:
    """QuantConv2D layers that LCE must run as LceBconv2d: sign inputs, a kernel quantizer."""
    return sum(
        isinstance(layer, lq.layers.QuantConv2D)
        and layer.kernel_quantizer is not None
        and input_encoding(layer).kind == "sign"
        for layer in model.submodules
    )


def _check(name: str, model, seed: int = 1) -> None:
    shape = tuple(model.inputs[0].shape[1:])
    calibration = np.random.default_rng(seed + 1).uniform(-1, 1, (32, *shape))
    compat.perturb_batchnorm(model, calibration.astype(np.float32))
    x = np.random.default_rng(seed).uniform(-1, 1, (SAMPLES, *shape)).astype(np.float32)
    if name in REFUSED:
        with pytest.raises(converters.ConversionError, match=REFUSED[name]):
            converters.convert(model)
        return
    conversion = converters.convert(model)
    assert conversion.ops.get("LceBconv2d", 0) >= _binary_convs(model), conversion.ops
    report = converters.verify(model, conversion.flatbuffer, x)
    if report.passed():  # no real disagreement; argmax agrees away from ties
        return
    # kbnn must agree with Keras wherever plain LCE does: any other sample must come out of
    # kbnn's flatbuffer as it comes out of plain LCE's (LCE's own disagreement, not kbnn's).
    plain = lce.convert_keras_model(model)
    unexplained = report.disagreements or report.ties
    ours = lce_outputs(conversion.flatbuffer, [x[unexplained]])[0]
    theirs = lce_outputs(plain, [x[unexplained]])[0]
    tolerance = report.outputs[0].tolerance
    assert np.abs(ours - theirs).max() <= tolerance, (str(report), np.abs(ours - theirs).max())


@pytest.mark.parametrize("name", ZOO)
def test_larq_zoo_model_converts_and_agrees_with_keras(name):
    if SKIP_ZOO:
        pytest.skip(SKIP_ZOO)
    tf.keras.backend.clear_session()
    size = SIZES.get(name, DEFAULT_SIZE)
    model = compat.zoo_models()[name](input_shape=(size, size, 3), weights=None, num_classes=10)
    _check(name, model)


@pytest.mark.parametrize("name", sorted(compat.DOCS_MODELS))
def test_larq_docs_model_converts_and_agrees_with_keras(name):
    tf.keras.backend.clear_session()
    _check(name, compat.DOCS_MODELS[name]())
