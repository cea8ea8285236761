"""`kbnn quickstart`: the whole path on the pretrained seed BinaryNet, offline, in one call.

pretrained `binarynet_mnist` (package data) → accuracy on the embedded real-MNIST sample →
LCE flatbuffer through `kbnn.converters` → LCE interpreter → agreement, size and latency
against the float32 TFLite twin.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from kbnn import converters, zoo
from kbnn.converters.verify import lce_outputs
from kbnn.data import mnist_sample, normalize_mnist

import numpy as np

MODEL_NAME = "binarynet_mnist"


@dataclasses.dataclass(frozen=True)
class QuickstartResult:
    model: str
    num_images: int
    keras_accuracy: float
    lce_accuracy: float
    argmax_agreement: float
    max_abs_diff: float
    binary_bytes: int
    float_bytes: int
    binary_latency_ms: float
    float_latency_ms: float
    num_threads: int
    output_path: str

    @property
    def size_ratio(self) -> float:
        return self.float_bytes / self.binary_bytes

    def table(self) -> str:
        rows = [
            ("model", f"{self.model} (pretrained, package data)"),
            ("images", f"{self.num_images} real MNIST test digits (embedded sample)"),
            ("Keras accuracy", f"{self.keras_accuracy:.2%}"),
            ("LCE accuracy", f"{self.lce_accuracy:.2%}"),
            ("Keras vs LCE argmax agreement", f"{self.argmax_agreement:.2%}"),
            ("Keras vs LCE max |diff|", f"{self.max_abs_diff:.2e}"),
            ("float32 TFLite twin", f"{self.float_bytes:,} bytes"),
            (
                "kbnn LCE flatbuffer",
                f"{self.binary_bytes:,} bytes ({self.size_ratio:.1f}x smaller)",
            ),
            (f"latency float32, {self.num_threads} thread", f"{self.float_latency_ms:.3f} ms"),
            (f"latency binary, {self.num_threads} thread", f"{self.binary_latency_ms:.3f} ms"),
            ("written", self.output_path),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"{name:<{width}}  {value}" for name, value in rows]
        lines.append(
            "note: latency measured on this machine's CPU; on x86 LCE runs reference kernels "
            "(binary can be slower than float here), ARM is the deployment target."
        )
        return "\n".join(lines)


def run_quickstart(
    output: str = "quickstart.tflite",
    *,
    num_threads: int = 1,
    progress: Callable[[str], None] = lambda message: None,
) -> QuickstartResult:
    """Run the pretrained model end to end and write its LCE flatbuffer to `output`."""
    progress(f"loading pretrained {MODEL_NAME}")
    model = zoo.get(MODEL_NAME, weights="pretrained")
    images, labels = mnist_sample()
    x = normalize_mnist(images)

    progress("evaluating in Keras")
    keras_probs = model.predict(x, batch_size=250, verbose=0)

    progress("converting to an LCE flatbuffer")
    conversion = converters.convert(model)
    conversion.save(output)

    progress("running the flatbuffer in LCE's interpreter")
    report = converters.verify(model, conversion.flatbuffer, x)
    (lce_probs,) = lce_outputs(conversion.flatbuffer, [x])
    float_flatbuffer = converters.float_twin_flatbuffer(model)

    progress("measuring latency")
    one = x[:1]
    binary_latency = converters.benchmark(conversion.flatbuffer, one, num_threads=num_threads)
    float_latency = converters.benchmark(float_flatbuffer, one, num_threads=num_threads)

    return QuickstartResult(
        model=MODEL_NAME,
        num_images=len(labels),
        keras_accuracy=float(np.mean(keras_probs.argmax(-1) == labels)),
        lce_accuracy=float(np.mean(lce_probs.argmax(-1) == labels)),
        argmax_agreement=float(report.argmax_agreement),
        max_abs_diff=float(report.max_abs_diff),
        binary_bytes=len(conversion.flatbuffer),
        float_bytes=len(float_flatbuffer),
        binary_latency_ms=float(binary_latency["median_ms"]),
        float_latency_ms=float(float_latency["median_ms"]),
        num_threads=num_threads,
        output_path=str(output),
    )
