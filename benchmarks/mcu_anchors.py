"""The two anchors a binary Cortex-M model is compared against, generated as C with the same
`kbnn_infer` API as `kbnn export-c` output so the same harness measures all three:

- **CMSIS-NN int8** (ARM's kernels, v7.0.0 sources, compiled here for the Cortex-M4): the same
  layers with int8 weights and activations, run layer by layer as TFLite Micro would (no fusion).
  Hidden layers are exact: a ±1 weight is the int8 value ±1 and BN + sign becomes the integer
  bias `-ceil(t)` plus a requantisation by 2 with output offset 1, clamped to [-1, 1], so each
  output is sign(a·v + b) as in Keras (negative-scale channels get negated weights). The output
  layer's BN is folded into a per-class int8 requantisation whose scale is calibrated on the
  measured images (post-training quantisation: max |score| maps to 127).
  Where a model max-pools before its BN (binarynet_mnist), the int8 net thresholds before the
  pool: same cost, not the same function, so its accuracy is not reported.
- **float C**: plain single-precision loops (`benchmarks/mcu/float_kernels.c`) in the model's
  own layer order, with ±1.0 weights, float BN and sign: the same function as Keras.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)

import numpy as np
import tensorflow as tf

HERE = Path(__file__).resolve().parent
CMSIS_NN_DEFAULT = HERE.parents[1] / "shared" / "cmsis-nn"
FLOAT_KERNELS = HERE / "mcu" / "float_kernels.c"
CMSIS_SOURCES = (
    "ConvolutionFunctions/arm_convolve_wrapper_s8.c",
    "ConvolutionFunctions/arm_convolve_s8.c",
    "ConvolutionFunctions/arm_convolve_1x1_s8.c",
    "ConvolutionFunctions/arm_convolve_1x1_s8_fast.c",
    "ConvolutionFunctions/arm_convolve_1_x_n_s8.c",
    "ConvolutionFunctions/arm_convolve_get_buffer_sizes_s8.c",
    "ConvolutionFunctions/arm_nn_mat_mult_kernel_s8_s16.c",
    "ConvolutionFunctions/arm_nn_mat_mult_kernel_row_offset_s8_s16.c",
    "ConvolutionFunctions/arm_nn_mat_mult_s8.c",
    "FullyConnectedFunctions/arm_fully_connected_per_channel_s8.c",
    "PoolingFunctions/arm_max_pool_s8.c",
    "PadFunctions/arm_pad_s8.c",
    "NNSupportFunctions/arm_nn_mat_mult_nt_t_s8.c",
    "NNSupportFunctions/arm_nn_vec_mat_mult_t_per_ch_s8.c",
    "NNSupportFunctions/arm_nn_mat_mul_core_1x_s8.c",
    "NNSupportFunctions/arm_nn_mat_mul_core_4x_s8.c",
    "NNSupportFunctions/arm_q7_to_q15_with_offset.c",
    "NNSupportFunctions/arm_s8_to_s16_unordered_with_offset.c",
)

HEADER = """#ifndef KBNN_MODEL_H
#define KBNN_MODEL_H
#include <stdint.h>
#define KBNN_INPUT_SIZE {input_size}
#define KBNN_NUM_CLASSES {classes}
int kbnn_infer(const uint8_t input[KBNN_INPUT_SIZE], int32_t scores[KBNN_NUM_CLASSES]);
#endif
"""


@dataclass
class Layer:
    """One layer of the network as the anchors see it (weights already ±1)."""

    op: str  # conv | dense | pool | bn | flatten
    weights: np.ndarray | None = None  # conv HWIO / dense (in, out), values ±1
    pad: int = 0
    pad_value: float = 0.0
    binary_input: bool = False
    scale: np.ndarray | None = None  # bn: y = scale * x + shift
    shift: np.ndarray | None = None
    shape_in: tuple = ()
    shape_out: tuple = ()
    extra: dict = field(default_factory=dict)


def network_layers(model: tf.keras.Model) -> list[Layer]:
    """The model as a list of conv / dense / pool / bn / flatten layers with shapes."""
    out, shape = [], tuple(model.input_shape[1:])
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("InputLayer",) or (kind == "Activation" and layer is model.layers[-1]):
            continue
        if hasattr(layer, "kernel") and layer.kernel.shape.rank in (2, 4):
            kernel = layer.kernel.numpy()
            quantizer = getattr(layer, "kernel_quantizer", None)
            if quantizer is None:
                raise ValueError(
                    f"layer {layer.name!r} has float weights; the anchors take ±1 kernels"
                )
            weights = np.where(kernel >= 0, 1, -1).astype(np.int64)
            binary_input = getattr(layer, "input_quantizer", None) is not None
            if getattr(layer, "use_bias", False):
                raise ValueError(f"layer {layer.name!r} has a bias; not supported by the anchors")
            if kernel.ndim == 4:
                kh = kernel.shape[0]
                pad = (kh - 1) // 2 if layer.padding == "same" else 0
                h, w = shape[0] + 2 * pad - kh + 1, shape[1] + 2 * pad - kernel.shape[1] + 1
                new = (h, w, kernel.shape[3])
                pad_value = float(getattr(layer, "pad_values", 0.0) or 0.0)
                out.append(
                    Layer(
                        "conv", weights, pad, pad_value, binary_input, shape_in=shape, shape_out=new
                    )
                )
            else:
                new = (kernel.shape[1],)
                out.append(
                    Layer("dense", weights, 0, 0.0, binary_input, shape_in=shape, shape_out=new)
                )
        elif kind == "BatchNormalization":
            gamma, beta, mean, var = (v.numpy().astype(np.float64) for v in layer.weights)
            scale = gamma / np.sqrt(var + layer.epsilon)
            new = shape
            out.append(
                Layer("bn", scale=scale, shift=beta - scale * mean, shape_in=shape, shape_out=new)
            )
        elif kind == "MaxPooling2D":
            new = (shape[0] // 2, shape[1] // 2, shape[2])
            if tuple(layer.pool_size) != (2, 2) or tuple(layer.strides) != (2, 2):
                raise ValueError(f"layer {layer.name!r}: the anchors take 2x2/2 max-pools only")
            out.append(Layer("pool", shape_in=shape, shape_out=new))
        elif kind == "Flatten":
            new = (int(np.prod(shape)),)
            out.append(Layer("flatten", shape_in=shape, shape_out=new))
        else:
            raise ValueError(f"layer {layer.name!r} ({kind}) is not supported by the anchors")
        shape = new
    return out


def _c_array(ctype: str, name: str, values, fmt=str) -> str:
    flat = [fmt(v) for v in np.asarray(values).ravel()]
    rows = [", ".join(flat[k : k + 16]) for k in range(0, len(flat), 16)]
    return f"static const {ctype} {name}[{len(flat)}] = {{\n  " + ",\n  ".join(rows) + "\n};\n"


def _float(v) -> str:
    v = float(v)
    if v in (1.0, -1.0):
        return f"{v:.1f}f"
    return f"{v:.9e}f" if math.isfinite(v) else "0.0f"


def float_c(model: tf.keras.Model) -> str:
    """C source of the float reference network (model's own layer order)."""
    layers = network_layers(model)
    biggest = max(int(np.prod(x.shape_out)) for x in layers)
    biggest = max(biggest, int(np.prod(model.input_shape[1:])))
    tables, body = [], []
    body.append(f"  f32_from_pixels(input, {int(np.prod(model.input_shape[1:]))}, x);")
    for k, layer in enumerate(layers):
        n_in = int(np.prod(layer.shape_in))
        if layer.op in ("conv", "dense") and layer.binary_input:
            body.append(f"  f32_sign(x, {n_in});")
        if layer.op == "conv":
            tables.append(_c_array("float", f"W{k}", layer.weights, _float))
            h, w, c = layer.shape_in
            kh, kw, _, cout = layer.weights.shape
            pad = f"{layer.pad}, {_float(layer.pad_value)}"
            body.append(f"  f32_conv(x, {h}, {w}, {c}, W{k}, {kh}, {kw}, {cout}, {pad}, y);")
            body.append("  SWAP();")
        elif layer.op == "dense":
            tables.append(_c_array("float", f"W{k}", layer.weights, _float))
            n_out = layer.weights.shape[1]
            body.append(f"  f32_dense(x, {n_in}, W{k}, {n_out}, y);")
            body.append("  SWAP();")
        elif layer.op == "pool":
            h, w, c = layer.shape_in
            body.append(f"  f32_maxpool2(x, {h}, {w}, {c}, y);")
            body.append("  SWAP();")
        elif layer.op == "bn":
            c = layer.shape_in[-1]
            tables.append(_c_array("float", f"S{k}", layer.scale, _float))
            tables.append(_c_array("float", f"B{k}", layer.shift, _float))
            body.append(f"  f32_batchnorm(x, {n_in // c}, {c}, S{k}, B{k});")
    classes = layers[-1].shape_out[-1]
    return "\n".join([
        '#include "kbnn_model.h"', '#include "float_kernels.h"', "",
        *tables,
        f"static float arena_a[{biggest}], arena_b[{biggest}];",
        "#define SWAP() do { float *t_ = x; x = y; y = t_; } while (0)",
        "int kbnn_infer(const uint8_t input[KBNN_INPUT_SIZE], int32_t scores[KBNN_NUM_CLASSES]) {",
        "  float *x = arena_a, *y = arena_b;",
        "  int best = 0;",
        *body,
        f"  for (int c = 0; c < {classes}; ++c) {{",
        "    scores[c] = (int32_t)(x[c] * 65536.0f);",
        "    if (x[c] > x[best]) best = c;",
        "  }",
        "  return best;",
        "}", "",
    ])  # fmt: skip


def _q31(real: float) -> tuple[int, int]:
    """CMSIS-NN multiplier/shift pair: real = multiplier / 2^31 * 2^shift (multiplier in Q31)."""
    if real <= 0:
        return 0, 0
    mantissa, exponent = math.frexp(real)
    multiplier = round(mantissa * (1 << 31))
    if multiplier == 1 << 31:
        multiplier, exponent = multiplier // 2, exponent + 1
    return multiplier, exponent


def _following_bn(layers: list[Layer], k: int) -> Layer:
    for layer in layers[k + 1 :]:
        if layer.op == "bn":
            return layer
        if layer.op in ("conv", "dense"):
            break
    raise ValueError(f"layer {k} ({layers[k].op}) has no batch norm before the next layer")


def _int8_quantisation(layers, k, last: bool, input_scale: float, output_scale: float):
    """Signed int8 weights, int32 bias, per-channel multiplier/shift and output offset/clamp."""
    layer, bn = layers[k], _following_bn(layers, k)
    a, b = bn.scale * input_scale, bn.shift
    sign = np.where(a < 0, -1, 1)
    weights = layer.weights * sign  # broadcasts over the output-channel (last) axis
    if last:  # per-class PTQ of the scores: score = |a| (acc' + b/|a|) ~ out * output_scale
        bias = np.round(b / np.maximum(np.abs(a), 1e-30))
        pairs = [_q31(abs(v) / output_scale) for v in a]
        clamp, offset = (-128, 127), 0
    else:  # sign(|a| acc' + b) = +1  <=>  acc' >= ceil(-b / |a|); out = 2 (acc' - ceil) + 1
        bias = -np.ceil(-b / np.maximum(np.abs(a), 1e-30))
        pairs = [_q31(2.0)] * len(a)
        clamp, offset = (-1, 1), 1
    bias = np.clip(bias, -(2**30), 2**30).astype(np.int64)
    return weights, bias, pairs, clamp, offset


def cmsis_int8_c(model: tf.keras.Model, calibration_scores: np.ndarray) -> tuple[str, bool]:
    """C source of the CMSIS-NN int8 network, and whether it computes the model's function
    exactly in its hidden layers (False when a max-pool comes before its batch norm)."""
    layers = network_layers(model)
    compute = [k for k, x in enumerate(layers) if x.op in ("conv", "dense")]
    output_scale = max(float(np.max(np.abs(calibration_scores))), 1e-6) / 127.0
    exact, tables, body = True, [], []
    sizes = [int(np.prod(x.shape_out)) for x in layers] + [int(np.prod(model.input_shape[1:]))]
    ctx_bytes = 16
    for k, layer in enumerate(layers):
        if layer.op == "pool":
            if layers[k + 1 :] and any(x.op == "bn" for x in layers[k + 1 : k + 2]):
                exact = False
            h, w, c = layer.shape_in
            body.append(f"  POOL({h}, {w}, {c});")
            continue
        if layer.op not in ("conv", "dense"):
            continue
        first = k == compute[0]
        weights, bias, pairs, clamp, offset = _int8_quantisation(
            layers, k, k == compute[-1], 1 / 255 if first else 1.0, output_scale
        )
        order = (3, 0, 1, 2) if layer.op == "conv" else (1, 0)  # OHWI / (out, in)
        tables.append(_c_array("int8_t", f"W{k}", weights.transpose(order)))
        tables.append(_c_array("int32_t", f"B{k}", bias))
        tables.append(_c_array("int32_t", f"M{k}", [m for m, _ in pairs]))
        tables.append(_c_array("int32_t", f"S{k}", [s for _, s in pairs]))
        args = f"{k}, {128 if first else 0}, {offset}, {clamp[0]}, {clamp[1]}"
        if layer.op == "conv":
            h, w, c = layer.shape_in
            kh, kw, _, cout = layer.weights.shape
            oh, ow, _ = layer.shape_out
            ctx_bytes = max(ctx_bytes, 2 * 2 * kh * kw * c)
            pad = layer.pad
            if pad and layer.pad_value:  # larq pads ±1 inputs with +1: an explicit PAD op
                if layer.pad_value not in (1.0, -1.0):
                    raise ValueError(f"int8 anchor: pad value {layer.pad_value} is not ±1")
                body.append(f"  PAD({h}, {w}, {c}, {pad}, {int(layer.pad_value)});")
                h, w, pad = h + 2 * pad, w + 2 * pad, 0
                sizes.append(h * w * c)
            body.append(f"  CONV({args}, {h}, {w}, {c}, {kh}, {kw}, {cout}, {pad}, {oh}, {ow});")
        else:
            body.append(
                f"  DENSE({args}, {int(np.prod(layer.shape_in))}, {layer.weights.shape[1]});"
            )
    classes = layers[-1].shape_out[-1]
    source = "\n".join([
        '#include "kbnn_model.h"', '#include "arm_nnfunctions.h"', "", *tables,
        f"static int8_t arena_a[{max(sizes)}], arena_b[{max(sizes)}];",
        f"static int32_t context_buffer[{(ctx_bytes + 3) // 4}];",
        INT8_MACROS,
        "int kbnn_infer(const uint8_t input[KBNN_INPUT_SIZE], int32_t scores[KBNN_NUM_CLASSES]) {",
        "  int8_t *x = arena_a, *y = arena_b;",
        "  cmsis_nn_context ctx = {context_buffer, (int32_t)sizeof context_buffer};",
        "  int best = 0;",
        "  for (int i = 0; i < KBNN_INPUT_SIZE; ++i) x[i] = (int8_t)((int)input[i] - 128);",
        *body,
        f"  for (int c = 0; c < {classes}; ++c) {{",
        "    scores[c] = x[c];",
        "    if (x[c] > x[best]) best = c;",
        "  }",
        "  return best;",
        "}", "",
    ])  # fmt: skip
    return source, exact


INT8_MACROS = r"""
#define SWAP() do { int8_t *t_ = x; x = y; y = t_; } while (0)
#define CONV(K, IN_OFF, OUT_OFF, LO, HI, IH, IW, C, KH, KW, CO, PAD, OH, OW) do { \
    cmsis_nn_conv_params p_ = {IN_OFF, OUT_OFF, {1, 1}, {PAD, PAD}, {1, 1}, {LO, HI}}; \
    cmsis_nn_per_channel_quant_params q_ = {(int32_t *)M##K, (int32_t *)S##K}; \
    cmsis_nn_dims in_ = {1, IH, IW, C}, f_ = {CO, KH, KW, C}, b_ = {1, 1, 1, CO}, o_ = {1, OH, OW, CO}; \
    if (arm_convolve_wrapper_s8_get_buffer_size(&p_, &in_, &f_, &o_) > ctx.size) return -1; \
    if (arm_convolve_wrapper_s8(&ctx, &p_, &q_, &in_, x, &f_, W##K, &b_, B##K, &o_, y) != ARM_CMSIS_NN_SUCCESS) \
      return -1; \
    SWAP(); } while (0)
#define DENSE(K, IN_OFF, OUT_OFF, LO, HI, N, CO) do { \
    cmsis_nn_fc_params p_ = {IN_OFF, 0, OUT_OFF, {LO, HI}}; \
    cmsis_nn_per_channel_quant_params q_ = {(int32_t *)M##K, (int32_t *)S##K}; \
    cmsis_nn_dims in_ = {1, 1, 1, N}, f_ = {N, 1, 1, CO}, b_ = {1, 1, 1, CO}, o_ = {1, 1, 1, CO}; \
    if (arm_fully_connected_per_channel_s8(&ctx, &p_, &q_, &in_, x, &f_, W##K, &b_, B##K, &o_, y) != ARM_CMSIS_NN_SUCCESS) \
      return -1; \
    SWAP(); } while (0)
#define PAD(H, W, C, P, V) do { \
    cmsis_nn_dims in_ = {1, H, W, C}, pre_ = {0, P, P, 0}, post_ = {0, P, P, 0}; \
    if (arm_pad_s8(x, y, V, &in_, &pre_, &post_) != ARM_CMSIS_NN_SUCCESS) return -1; \
    SWAP(); } while (0)
#define POOL(H, W, C) do { \
    cmsis_nn_pool_params p_ = {{2, 2}, {0, 0}, {-128, 127}}; \
    cmsis_nn_dims in_ = {1, H, W, C}, f_ = {1, 2, 2, 1}, o_ = {1, (H) / 2, (W) / 2, C}; \
    if (arm_max_pool_s8(&ctx, &p_, &in_, x, &f_, &o_, y) != ARM_CMSIS_NN_SUCCESS) return -1; \
    SWAP(); } while (0)
"""


def header(model: tf.keras.Model) -> str:
    """kbnn_model.h for an anchor: the export-c API."""
    size = int(np.prod(model.input_shape[1:]))
    return HEADER.format(input_size=size, classes=int(model.output_shape[-1]))


def write_float(model, out_dir: Path) -> list[Path]:
    """Writes the float reference (header + network); returns the C sources to build."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "kbnn_model.h").write_text(header(model))
    (out_dir / "float_net.c").write_text(float_c(model))
    return [out_dir / "float_net.c", FLOAT_KERNELS]


def write_cmsis_int8(model, out_dir: Path, calibration_scores, cmsis_root: Path):
    """Writes the CMSIS-NN int8 network; returns (sources, include dirs, exact-function flag)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "kbnn_model.h").write_text(header(model))
    source, exact = cmsis_int8_c(model, calibration_scores)
    (out_dir / "cmsis_int8_net.c").write_text(source)
    sources = [out_dir / "cmsis_int8_net.c", *(cmsis_root / "Source" / s for s in CMSIS_SOURCES)]
    return sources, [cmsis_root / "Include"], exact


def pre_softmax_scores(model: tf.keras.Model, images: np.ndarray) -> np.ndarray:
    """Keras scores before the final softmax for uint8 images (the model sees image / 255)."""
    last = model.layers[-1]
    head = model.layers[-2].output if type(last).__name__ == "Activation" else model.output
    logits = tf.keras.Model(model.input, head)
    x = images.reshape((-1, *model.input_shape[1:])).astype(np.float32) / 255.0
    return logits.predict(x, verbose=0, batch_size=500)
