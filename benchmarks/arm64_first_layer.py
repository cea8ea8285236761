"""First-layer lowerings of pretrained binarynet_mnist on ARM: which is cheapest, which is exact.

binarynet_mnist's first layer is a 5×5 convolution with ±1 kernels on the float 28×28×1 image,
followed by batch norm, max-pool and sign. kbnn lowers it to a float CONV_2D (BN folded by
LCE). Candidates measured here, each replacing `conv1` + `bn1` of the lowered graph
(`kbnn.converters.passes.lower`) and converted with LCE:

- `float`: kbnn's lowering (float CONV_2D, BN folded);
- `float-depthwise`: the same as a DEPTHWISE_CONV_2D with depth multiplier 32;
- `int8`: an int8 CONV_2D on the exactly 8-bit image (input scale 1/255), ±1 kernels (int8
  ±127, scale 1/127), the BN + sign threshold t folded into an integer bias so the int8 output
  keeps the sign exactly: sign(BN(conv)) = sign(Σ p·w − t) with p the pixel value, made with
  fake-quantization ops so LCE's converter emits the int8 kernels;
- `int8-depthwise`: the int8 version as DEPTHWISE_CONV_2D.

Every candidate runs on the aarch64 runner (instructions per inference, LCE default mode) and
on all 10,000 MNIST test digits in LCE's x86 interpreter (test accuracy, argmax differences
from Keras). Bit planes of the 8-bit image are not built: on a 1-channel input each plane costs
a full binary convolution with 1 useful bit per 32-bit word (dorefanet_mnist's 3 planes of its
3-bit image measured 2,628,238 instructions, 5.6× the float CONV_2D).

`--binary-bounds` measures what a binary first layer packed 25 taps to a word would cost at
least, without building it: the input staircase it needs (thermometer levels, T thresholds at
(i − ½)/T) and its accuracy in Keras on all 10,000 digits; the cheapest builtin that gathers a
5×5 neighbourhood of the 28×28 image into words (a float CONV_2D or DEPTHWISE_CONV_2D with
weights 2^j); and a 1×1 LceBconv2d from K packed words to 32 bit-packed channels on 28×28.

    python benchmarks/arm64_first_layer.py --runner ../shared/arm64
    python benchmarks/arm64_first_layer.py --runner ../shared/arm64 --binary-bounds
"""

from __future__ import annotations

import argparse
import os

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import zoo
from kbnn.converters import arm64, passes
from kbnn.converters.flatbuffer import format_table
from kbnn.converters.graph import rebuild
from kbnn.converters.passes import batchnorm_affine, latent_value
from kbnn.converters.verify import KERNEL_OPTIONS, keras_outputs, lce_outputs
from kbnn.data import mnist_arrays, mnist_sample, normalize_mnist

import numpy as np
import tensorflow as tf

L = tf.keras.layers
#: int8 output scale: the integer accumulator itself (input scale · weight scale).
ACCUMULATOR_SCALE = 1.0 / (255 * 127)


def _fake_quant_input(x):
    return tf.quantization.fake_quant_with_min_max_args(x, min=0.0, max=1.0, num_bits=8)


def _fake_quant_output(y):
    scale = ACCUMULATOR_SCALE
    return tf.quantization.fake_quant_with_min_max_args(y, min=-128 * scale, max=127 * scale)


def _fake_quant_kernel(kernel, channels):
    ones = tf.ones(channels)
    return tf.quantization.fake_quant_with_min_max_vars_per_channel(
        kernel, -ones, ones, num_bits=8, narrow_range=True
    )


class Int8SignConv(L.Conv2D):
    """Conv2D with fake-quantized input, ±1 kernel and output: LCE emits an int8 CONV_2D."""

    def call(self, inputs):
        kernel = _fake_quant_kernel(self.kernel, self.filters)
        y = tf.nn.conv2d(_fake_quant_input(inputs), kernel, 1, self.padding.upper())
        return _fake_quant_output(tf.nn.bias_add(y, self.bias))


class Int8SignDepthwise(L.DepthwiseConv2D):
    """The same as a depthwise convolution (1 input channel, depth multiplier = filters)."""

    def call(self, inputs):
        shape = self.depthwise_kernel.shape
        kernel = _fake_quant_kernel(tf.reshape(self.depthwise_kernel, shape), shape[-1])
        y = tf.nn.depthwise_conv2d(
            _fake_quant_input(inputs), kernel, (1, 1, 1, 1), self.padding.upper()
        )
        return _fake_quant_output(tf.nn.bias_add(y, self.bias))


def sign_threshold_weights(conv, bn):
    """±1 kernel and bias with sign(conv·m + c) = sign(kernel ⋆ p + bias·255·127) on pixel
    values p: channels with m < 0 get the negated kernel; the bias is −t + 64/127 in pixel
    units, t = ⌈−255·c/|m|⌉ (the accumulator is then ≥ 64 or ≤ −63, never 0)."""
    multiplier, offset = batchnorm_affine(bn)
    kernel = np.where(latent_value(conv.kernel) < 0, -1.0, 1.0)
    flip = np.where(multiplier < 0, -1.0, 1.0)
    threshold = np.ceil(-255.0 * offset * flip / np.abs(multiplier))
    bias = (-threshold * 127 + 64) * ACCUMULATOR_SCALE
    return (kernel * flip).astype(np.float32), bias.astype(np.float32)


def candidate(lowered, kind: str):
    """`lowered` with conv1 + bn1 replaced by the `kind` first layer."""
    conv, bn = lowered.get_layer("conv1"), lowered.get_layer("bn1")

    def replace(layer, args, kwargs):
        if layer.name == "bn1":
            return args[0]
        if layer.name != "conv1":
            return None
        size, filters = conv.kernel_size, conv.filters
        if kind == "float-depthwise":
            multiplier, offset = batchnorm_affine(bn)
            kernel = np.where(latent_value(conv.kernel) < 0, -1.0, 1.0) * multiplier
            new = L.DepthwiseConv2D(size, depth_multiplier=filters, padding=conv.padding)
            weights = [kernel.astype(np.float32), offset.astype(np.float32)]
        else:
            weights = list(sign_threshold_weights(conv, bn))
            if kind == "int8":
                new = Int8SignConv(filters, size, padding=conv.padding)
            else:
                new = Int8SignDepthwise(size, depth_multiplier=filters, padding=conv.padding)
        outputs = new(args[0])
        new.set_weights(weights)
        return outputs

    return lowered if kind == "float" else rebuild(lowered, replace)


def staircase(images, levels: int):
    """The input a binary layer on `levels` thermometer planes sees: (1/T) Σ_i [x > (i − ½)/T]."""
    thresholds = (np.arange(1, levels + 1) - 0.5) / levels
    return sum((images > t).astype(np.float32) for t in thresholds) / levels


def packing_flatbuffer(words: int, depthwise: bool) -> bytes:
    """28×28×1 → `words` channels, channel w = Σ_j 2^j x[tap j of its group] over the 5×5
    neighbourhood (the taps split into `words` groups): the word-building step alone."""
    per_word = -(-25 // words)
    kernel = np.zeros((5, 5, 1, words), np.float32)
    for tap in range(25):
        kernel[tap // 5, tap % 5, 0, tap // per_word] = 2.0 ** (tap % per_word)

    @tf.function(input_signature=[tf.TensorSpec([1, 28, 28, 1], tf.float32)])
    def pack(x):
        if depthwise:
            return tf.nn.depthwise_conv2d(x, kernel, (1, 1, 1, 1), "SAME")
        return tf.nn.conv2d(x, kernel, 1, "SAME")

    function = pack.get_concrete_function()
    return tf.lite.TFLiteConverter.from_concrete_functions([function], pack).convert()


def bconv_flatbuffer(words: int) -> bytes:
    """A 1×1 binary convolution from 32·`words` channels to 32 on 28×28, its output bit-packed
    (BN with γ > 0, then a binary layer): the binary first layer's GEMM and output alone."""
    import larq as lq
    import larq_compute_engine as lce

    inputs = tf.keras.Input((28, 28, 32 * words))
    x = lq.layers.QuantConv2D(32, 1, input_quantizer="ste_sign", kernel_quantizer="ste_sign")(
        inputs
    )
    x = L.BatchNormalization(gamma_initializer="ones", beta_initializer="zeros")(x)
    x = lq.layers.QuantConv2D(4, 1, input_quantizer="ste_sign", kernel_quantizer="ste_sign")(x)
    return lce.convert_keras_model(tf.keras.Model(inputs, L.GlobalAveragePooling2D()(x)))


def _first_op(flatbuffer, x, runner, name):
    cost = arm64.run(flatbuffer, x, per_op=True, runner=runner, reps=2)
    return f"{[n for op, n in cost.operators if op == name][0]:,}"


def binary_bounds(runner) -> int:
    """Print the three lower-bound tables of a binary first layer (see the module docstring)."""
    model = zoo.get("binarynet_mnist", weights="pretrained", compile=False)
    images, labels = mnist_arrays("test")
    rows = [("input levels T", "words per pixel (25·T bits)", "Keras accuracy")]
    for levels in (0, 1, 2, 3, 4, 7):
        x = images if levels == 0 else staircase(images, levels)
        accuracy = np.mean(keras_outputs(model, [x])[0].argmax(1) == labels)
        rows.append(
            (
                str(levels or "8-bit (exact)"),
                str(-(-25 * levels // 32) or "—"),
                f"{100 * accuracy:.2f}%",
            )
        )
    print(format_table(rows))
    sample = normalize_mnist(mnist_sample()[0][:2])
    rows = [("5×5 word packing", "words", "instructions")]
    for depthwise in (False, True):
        for words in (1, 4):
            op = "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D"
            rows.append(
                (
                    op,
                    str(words),
                    _first_op(packing_flatbuffer(words, depthwise), sample, runner, op),
                )
            )
    print(format_table(rows))
    rows = [("LceBconv2d 1×1, 28×28 → 32, bit-packed output", "instructions")]
    for words in (1, 2, 4):
        x = np.random.default_rng(0).normal(size=(2, 28, 28, 32 * words)).astype(np.float32)
        rows.append(
            (f"{words} word(s) deep", _first_op(bconv_flatbuffer(words), x, runner, "LceBconv2d"))
        )
    print(format_table(rows))
    return 0


def main(argv=None) -> int:
    import larq_compute_engine as lce

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runner", help=f"runner directory (default: ${arm64.RUNNER_ENV})")
    parser.add_argument(
        "--binary-bounds", action="store_true", help="the pieces of a binary first layer"
    )
    args = parser.parse_args(argv)
    if args.binary_bounds:
        return binary_bounds(args.runner)
    model = zoo.get("binarynet_mnist", weights="pretrained", compile=False)
    lowered = passes.lower(model)
    sample = normalize_mnist(mnist_sample()[0][:4])
    images, labels = mnist_arrays("test")
    keras = keras_outputs(model, [images])[0].argmax(1)
    rows = [("first layer", "first-layer op", "total", "accuracy", "argmax ≠ Keras")]
    for kind in ("float", "float-depthwise", "int8", "int8-depthwise"):
        flatbuffer = lce.convert_keras_model(candidate(lowered, kind))
        cost = arm64.run(flatbuffer, sample, per_op=True, runner=args.runner, reps=2)
        first = [(op, n) for op, n in cost.operators if "CONV" in op][0]
        predicted = lce_outputs(flatbuffer, [images], **KERNEL_OPTIONS)[0].argmax(1)
        rows.append(
            (
                kind,
                f"{first[0]} {first[1]:,}",
                f"{cost.instructions:,}",
                f"{100 * np.mean(predicted == labels):.2f}%",
                str(int(np.sum(predicted != keras))),
            )
        )
    print(f"Keras accuracy: {100 * np.mean(keras == labels):.2f}% over {len(labels):,} digits")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    raise SystemExit(main())
