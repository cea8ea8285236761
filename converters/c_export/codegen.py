"""C code generation for a lowered network: packs the integer parameters into `const` words
(flash), sizes the static activation arena and emits `PREFIX_model.h` / `PREFIX_model.c`.

Packing: a bit-packed activation map stores, per pixel and bit plane, ⌈C/32⌉ little-endian
words with channel c at bit c % 32 of word c / 32 (unused bits 0). Kernels on bit inputs use the
same layout per output channel and tap; kernels on byte inputs (the image, int8 maps) pack the
whole (ky, kx, ci) patch of an output channel into consecutive bits.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re

from kbnn.converters.c_export.errors import ExportError
from kbnn.converters.c_export.lowering import IntegerLayer, IntegerNetwork

import numpy as np

RUNTIME = pathlib.Path(__file__).with_name("runtime.c.in")
PREFIX_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,30}")
_IN = {"u8": "KBNN_IN_U8", "sign": "KBNN_IN_SIGN", "planes": "KBNN_IN_PLANES", "i8": "KBNN_IN_I8"}
_W = {"binary": "KBNN_W_BINARY", "ternary": "KBNN_W_TERNARY", "int8": "KBNN_W_INT8"}
_OUT = {
    "sign": "KBNN_OUT_SIGN",
    "planes": "KBNN_OUT_PLANES",
    "i8": "KBNN_OUT_I8",
    "scores": "KBNN_OUT_SCORES",
}
INT32_MAX = 2**31 - 1


@dataclasses.dataclass
class CSources:
    """The generated files' text and what they hold."""

    header: str
    source: str
    weight_bytes: int  # const data: packed weights, thresholds, multipliers, tables
    arena_bytes: int  # static RAM: the activation arena and the fast paths' input window


def check_prefix(prefix: str) -> str:
    """A C identifier prefix: a letter, then letters, digits or '_' (≤ 31 characters)."""
    if not isinstance(prefix, str) or not PREFIX_PATTERN.fullmatch(prefix):
        raise ExportError(
            f"bad prefix {prefix!r}: use a C identifier start (a letter, then "
            "letters, digits or '_', at most 31 characters)"
        )
    return prefix


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack the last axis of a 0/1 array into uint32 words, bit i at bit i % 32 of word i/32."""
    bits = np.asarray(bits, np.uint64)
    words = -(-bits.shape[-1] // 32)
    padded = np.zeros((*bits.shape[:-1], words * 32), np.uint64)
    padded[..., : bits.shape[-1]] = bits
    weights = np.left_shift(np.uint64(1), np.arange(32, dtype=np.uint64))
    return (padded.reshape(*bits.shape[:-1], words, 32) * weights).sum(-1).astype(np.uint32)


def _words(channels: int) -> int:
    return -(-channels // 32)


def _byte_input(layer: IntegerLayer) -> bool:
    return layer.in_format in ("u8", "i8")


def _weight_arrays(layer: IntegerLayer) -> dict[str, np.ndarray]:
    """The const arrays of one layer: kernel planes, thresholds, pool flags, multipliers."""
    k = layer.kernel
    cout = k.shape[3]
    arrays: dict[str, np.ndarray] = {}
    if layer.weight_format == "int8":
        arrays["int8_weights"] = k.transpose(3, 0, 1, 2).reshape(-1).astype(np.int8)
    else:
        per_out = k.transpose(3, 0, 1, 2)  # cout, kh, kw, cin
        if _byte_input(layer):
            per_out = per_out.reshape(cout, -1)
        arrays["sign_bits"] = pack_bits(per_out > 0).reshape(-1)
        if layer.weight_format == "ternary":
            arrays["nonzero_bits"] = pack_bits(per_out != 0).reshape(-1)
    if layer.thresholds is not None:
        arrays["thresholds"] = _int32(layer.thresholds.reshape(-1), layer.name)
    if layer.mult is not None:
        arrays["mult"] = _int32(layer.mult, layer.name)
        arrays["bias"] = _int32(layer.bias, layer.name)
    arrays["pool_min"] = pack_bits(layer.pool_min.astype(np.uint8)).reshape(-1)
    if layer.input_lut is not None:
        arrays["input_lut"] = layer.input_lut.astype(np.uint8)
    del cout
    return arrays


def _int32(values: np.ndarray, name: str) -> np.ndarray:
    if np.abs(values).max(initial=0) > INT32_MAX:
        raise ExportError(f"layer {name!r}: an integer parameter does not fit int32")
    return values.astype(np.int32)


_C_TYPES = {
    np.dtype(np.uint32): "uint32_t",
    np.dtype(np.int32): "int32_t",
    np.dtype(np.int8): "int8_t",
    np.dtype(np.uint8): "uint8_t",
}


def _c_array(name: str, values: np.ndarray) -> str:
    ctype = _C_TYPES[values.dtype]
    if values.dtype == np.uint32:
        items = [f"0x{int(v):08X}u" for v in values]
    else:
        items = [str(int(v)) for v in values]
    per_line = 8 if values.dtype == np.uint32 else 16
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    body = ",\n    ".join(lines) if lines else "0"
    return f"static const {ctype} {name}[{max(len(values), 1)}] = {{\n    {body}\n}};\n"


def _out_words(layer: IntegerLayer) -> int:
    """32-bit words of the layer's output map in the arena (0 for scores)."""
    h, w, c = layer.out_shape
    if layer.out_format in ("sign", "planes"):
        return h * w * layer.out_planes * _words(c)
    if layer.out_format == "i8":
        return -(-h * w * c // 4)
    return 0


def uses_input_planes(layer: IntegerLayer) -> bool:
    """Whether the C runs `layer` by bit planes of the raw image (`kbnn_u8_planes`): one input
    channel, at most 32 taps and 4 pooling positions; must follow `planes_ok` in runtime.c.in."""
    kh, kw = layer.kernel.shape[:2]
    return (
        window_words(layer) > 0
        and layer.in_format == "u8"
        and layer.in_shape[2] == 1
        and kh * kw <= 32
        and layer.pool[0] * layer.pool[1] <= 4
    )


def window_words(layer: IntegerLayer) -> int:
    """Words of the gathered input window of the C's fast paths (0: none or the input itself);
    must follow `kbnn_fast_kind` / `kbnn_gather` in runtime.c.in."""
    if layer.weight_format != "binary":
        return 0
    h, w, c = layer.in_shape
    kh, kw = layer.kernel.shape[:2]
    wh, ww = kh + layer.pool[0] - 1, kw + layer.pool[1] - 1
    if layer.in_format == "u8" and layer.input_lut is None:
        return wh * ww * c
    if layer.in_format == "sign" and (
        layer.pad_value != 0 or (layer.pad == (0, 0) and kh <= h and kw <= w)
    ):
        direct = layer.out_shape[:2] == (1, 1) and layer.pad == (0, 0) and (wh, ww) == (h, w)
        return 0 if direct else wh * ww * _words(c)
    return 0


def _descriptor(index: int, layer: IntegerLayer, arrays: dict[str, np.ndarray]) -> str:
    h, w, c = layer.in_shape
    kh, kw, _, cout = layer.kernel.shape
    out_h, out_w, _ = layer.out_shape
    tail = c % 32
    fields = {
        "in_format": _IN[layer.in_format],
        "weight_format": _W[layer.weight_format],
        "out_format": _OUT[layer.out_format],
        "in_planes": layer.in_planes,
        "out_planes": layer.out_planes,
        "pad_value": layer.pad_value,
        "in_h": h,
        "in_w": w,
        "in_c": c,
        "words": _words(c),
        "kh": kh,
        "kw": kw,
        "pad_top": layer.pad[0],
        "pad_left": layer.pad[1],
        "pool_h": layer.pool[0],
        "pool_w": layer.pool[1],
        "out_h": out_h,
        "out_w": out_w,
        "out_c": cout,
        "out_words": _words(cout),
        "patch_words": _words(kh * kw * c),
        "shift": layer.shift,
        "last_mask": f"0x{(1 << tail) - 1 if tail else 0xFFFFFFFF:08X}u",
    }
    for key in (
        "sign_bits",
        "nonzero_bits",
        "int8_weights",
        "thresholds",
        "pool_min",
        "mult",
        "bias",
        "input_lut",
    ):
        fields[key] = f"kbnn_l{index}_{key}" if key in arrays else "0"
    body = ",\n    ".join(f".{key} = {value}" for key, value in fields.items())
    return f"    {{ /* {layer.name} */\n    {body}\n    }}"


def _infer_body(network: IntegerNetwork, offsets: list[int]) -> str:
    lines = []
    last = len(network.layers) - 1
    for i in range(len(network.layers)):
        src = "input" if i == 0 else f"kbnn_arena + {offsets[(i - 1) % 2]}"
        dst = "scores" if i == last else f"kbnn_arena + {offsets[i % 2]}"
        lines.append(f"    kbnn_run_layer(&kbnn_layers[{i}], {src}, {dst});")
    return "\n".join(lines)


def _header(network: IntegerNetwork, weight_bytes: int, arena_bytes: int) -> str:
    h, w, c = network.input_shape
    return f"""/* Generated by kbnn export-c: integer-only inference, C99, no malloc, no libm.
 * Input: the raw 8-bit image (0-255) in HWC row-major order (the Keras model saw input/255).
 * Output: int32 class scores; kbnn_infer returns their argmax (ties: lowest index). */
#ifndef KBNN_MODEL_H
#define KBNN_MODEL_H

#include <stdint.h>

#define KBNN_INPUT_HEIGHT {h}
#define KBNN_INPUT_WIDTH {w}
#define KBNN_INPUT_CHANNELS {c}
#define KBNN_INPUT_SIZE {h * w * c}
#define KBNN_NUM_CLASSES {network.num_classes}
#define KBNN_WEIGHT_BYTES {weight_bytes} /* const data in flash */
#define KBNN_ARENA_BYTES {arena_bytes} /* static RAM: activation arena + input window + planes */

#ifdef __cplusplus
extern "C" {{
#endif

int kbnn_infer(const uint8_t input[KBNN_INPUT_SIZE], int32_t scores[KBNN_NUM_CLASSES]);

#ifdef __cplusplus
}}
#endif

#endif /* KBNN_MODEL_H */
"""


def _popcount_table() -> str:
    values = [str(bin(i).count("1")) for i in range(256)]
    return ",\n".join("    " + ", ".join(values[i : i + 16]) for i in range(0, 256, 16))


def generate(network: IntegerNetwork, *, prefix: str = "kbnn") -> CSources:
    """The header and source text of `network` with every symbol and macro prefixed."""
    check_prefix(prefix)
    all_arrays = [_weight_arrays(layer) for layer in network.layers]
    weight_bytes = sum(a.nbytes for arrays in all_arrays for a in arrays.values())
    region = [0, 0]
    for i, layer in enumerate(network.layers):
        region[i % 2] = max(region[i % 2], _out_words(layer))
    offsets = [0, region[0]]
    arena_words = max(region[0] + region[1], 1)
    data = "".join(
        _c_array(f"kbnn_l{i}_{name}", values)
        for i, arrays in enumerate(all_arrays)
        for name, values in arrays.items()
    )
    table = ",\n".join(
        _descriptor(i, layer, all_arrays[i]) for i, layer in enumerate(network.layers)
    )
    window = max([window_words(layer) for layer in network.layers] + [1])
    plane_sets = 4 if any(uses_input_planes(layer) for layer in network.layers) else 0
    runtime = (
        RUNTIME.read_text()
        .replace("@POPCOUNT_TABLE@", _popcount_table())
        .replace("@WINDOW_WORDS@", str(window))
        .replace("@PLANE_SETS@", str(plane_sets))
    )
    source = (
        f'#include "kbnn_model.h"\n\n{runtime}\n'
        f"/* weights and folded parameters (const: flash) */\n{data}\n"
        f"static const kbnn_layer kbnn_layers[{len(network.layers)}] = {{\n{table}\n}};\n\n"
        f"static uint32_t kbnn_arena[{arena_words}]; /* {arena_words * 4} bytes */\n\n"
        "int kbnn_infer(const uint8_t input[KBNN_INPUT_SIZE], "
        "int32_t scores[KBNN_NUM_CLASSES])\n{\n    int i, best = 0;\n"
        f"{_infer_body(network, offsets)}\n"
        "    for (i = 1; i < KBNN_NUM_CLASSES; i++) {\n"
        "        if (scores[i] > scores[best]) {\n            best = i;\n        }\n    }\n"
        "    return best;\n}\n"
    )
    ram = (arena_words + window + plane_sets * 9) * 4
    header = _header(network, weight_bytes, ram)
    return CSources(_rename(header, prefix), _rename(source, prefix), weight_bytes, ram)


def _rename(text: str, prefix: str) -> str:
    return text.replace("kbnn_", f"{prefix}_").replace("KBNN_", f"{prefix.upper()}_")
