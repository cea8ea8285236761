"""kbnn.converters: Keras models → Larq Compute Engine flatbuffers on binary kernels.

LCE's `convert_keras_model` lowers only fully binary convolutions to `LceBconv2d`; dense,
ternary, five-level and k-bit layers stay float32. `convert` first rewrites the Keras graph
(`kbnn.converters.passes`: dense → 1×1 conv, multi-level weights → binary planes, k-bit
activations → bit planes, batch-norm folding) so every kbnn layer kind reaches LCE as binary
convolutions, then converts with LCE and reports per layer what happened.

```python
conversion = kbnn.converters.convert(model, verify_with=x)
conversion.save("model.tflite")
print(conversion.report)
```
"""

from kbnn.converters.benchmark import benchmark
from kbnn.converters.c_array import CArray, to_c_array
from kbnn.converters.convert import Conversion, convert
from kbnn.converters.errors import ConversionError, FlatbufferError, VerificationError
from kbnn.converters.flatbuffer import InspectReport, inspect, read_flatbuffer
from kbnn.converters.passes import PASSES, lower
from kbnn.converters.report import ConversionReport, LayerReport
from kbnn.converters.twin import float_twin, float_twin_flatbuffer
from kbnn.converters.verify import KERNEL_OPTIONS, VerifyReport, sign_margins, verify

__all__ = [
    "KERNEL_OPTIONS",
    "PASSES",
    "CArray",
    "Conversion",
    "ConversionError",
    "ConversionReport",
    "FlatbufferError",
    "InspectReport",
    "LayerReport",
    "VerificationError",
    "VerifyReport",
    "benchmark",
    "convert",
    "float_twin",
    "float_twin_flatbuffer",
    "inspect",
    "lower",
    "read_flatbuffer",
    "sign_margins",
    "to_c_array",
    "verify",
]
