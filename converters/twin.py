"""The float TFLite twin of a model: the size and latency baseline for a conversion.

Definition: the same graph with every quantizer removed — input, kernel, depthwise and
pointwise quantizers of larq/kbnn layers, quantizer layers (`kbnn.layers.Sign`,
`GradientQuantizer`) become the identity, XNOR input scaling is dropped — keeping the latent
float32 weights; shift-based BN is replaced by its inference affine map as a BatchNormalization.
It is converted with TensorFlow's own `tf.lite.TFLiteConverter` with default settings
(float32, no quantization, no LCE): what the architecture costs as an ordinary float network.
Its flatbuffer runs on LiteRT through `kbnn.converters.interpreters` (`float_interpreter`,
`run_float`), never on LCE's interpreter.
"""

from __future__ import annotations

from kbnn.converters.errors import ConversionError
from kbnn.converters.graph import rebuild
from kbnn.converters.passes import fold_shift_batchnorm, latent_value, strip_quantizers

import larq as lq
import tensorflow as tf

_QUANTIZED_KEYS = (
    "input_quantizer",
    "kernel_quantizer",
    "depthwise_quantizer",
    "pointwise_quantizer",
)


def float_twin(model) -> tf.keras.Model:
    """The float twin as a Keras model (see the module docstring)."""
    model = fold_shift_batchnorm(model)

    def replace(layer, args, kwargs):
        if isinstance(layer, lq.quantizers.Quantizer):
            return args[0]
        if any(hasattr(layer, key) for key in _QUANTIZED_KEYS):
            twin = strip_quantizers(layer, keep_input_quantizer=False)
            outputs = twin(*args, **kwargs)
            twin.set_weights([latent_value(w) for w in layer.weights])
            return outputs
        return None

    return rebuild(model, replace, name=f"{model.name}_float_twin")


def float_twin_flatbuffer(model) -> bytes:
    """The float twin converted with `tf.lite.TFLiteConverter` (default settings)."""
    twin = float_twin(model)
    try:
        return tf.lite.TFLiteConverter.from_keras_model(twin).convert()
    except Exception as err:  # the TF converter raises many error types
        raise ConversionError(f"TFLiteConverter could not convert the float twin: {err}") from err
