"""Popcount on a Cortex-M4 (no popcount instruction): which way to count bits is cheapest.

1. Candidates inside a binary dense layer (`benchmarks/mcu/popcount_layer.c`: 10 outputs x 196
   words, 1,960 popcounts per inference), built -Os, run under qemu (mps2-an386), instructions
   per inference; "per word" subtracts the same layer with a trivial count (loop, loads, xor).
   Every candidate's scores are checked against numpy.
2. The generated C of a real model (`kbnn export-c`) with each `-DKBNN_POPCOUNT` variant:
   instructions per inference and flash.

    python benchmarks/mcu_popcount.py [--model binarynet_mcu_mnist] [--images 4]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn.converters.c_export import export_c, firmware

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
LAYER_DIR = HERE / "mcu"
WORDS, OUTPUTS = 196, 10
CANDIDATES = {
    1: "SWAR, multiply for the byte sum",
    2: "SWAR, shifts and adds only",
    3: "256-byte table, 4 lookups",
    4: "16-entry nibble table, 8 lookups",
    5: "__builtin_popcount (libgcc __popcountsi2 call)",
    6: "clear-lowest-bit loop (Kernighan)",
    7: "SWAR to byte counts + USADA8 accumulate",
    8: "SWAR to byte counts, lanes summed once per 31 words",
}
GENERATOR_VARIANTS = {0: "SWAR", 1: "byte table", 2: "__builtin_popcount"}


def _write_weights(folder: pathlib.Path, rng) -> np.ndarray:
    weights = rng.integers(0, 2**32, size=(OUTPUTS, WORDS), dtype=np.uint64).astype(np.uint32)
    rows = ",\n".join("  {" + ", ".join(f"0x{v:08x}u" for v in row) + "}" for row in weights)
    (folder / "popcount_weights.h").write_text(
        f"static const uint32_t popcount_weights[{OUTPUTS}][{WORDS}] = {{\n{rows}\n}};\n"
    )
    return weights


def _expected(images: np.ndarray, weights: np.ndarray) -> np.ndarray:
    words = images.reshape(len(images), -1).view("<u4")
    xor = words[:, None, :] ^ weights[None, :, :]
    return np.unpackbits(xor.view(np.uint8), axis=-1).sum(axis=-1)


def candidates_table(work: pathlib.Path, images: np.ndarray, rng) -> list[str]:
    weights = _write_weights(work, rng)
    expected = _expected(images, weights)
    results = {}
    for impl in (0, *CANDIDATES):
        measured = firmware.measure(
            LAYER_DIR, images, work / f"cand{impl}", sources=[LAYER_DIR / "popcount_layer.c"],
            defines=[f"POPCOUNT_IMPL={impl}"], include_dirs=[work],
        )  # fmt: skip
        if impl and not np.array_equal(measured.run.scores, expected):
            raise SystemExit(f"candidate {impl} ({CANDIDATES[impl]}) miscounts")
        results[impl] = measured
    base = results[0].run.instructions.mean()
    lines = [
        "| popcount candidate (-Os) | instructions / inference | per 32-bit word | flash B |",
        "|---|---:|---:|---:|",
    ]
    for impl, name in CANDIDATES.items():
        m = results[impl]
        mean = m.run.instructions.mean()
        per_word = (mean - base) / (WORDS * OUTPUTS)
        lines.append(f"| {impl}. {name} | {mean:,.0f} | {per_word:.2f} | {m.size.flash_bytes:,} |")
    lines.append(f"| (loop, loads, xor only) | {base:,.0f} | 0 | {results[0].size.flash_bytes:,} |")
    return lines


def generator_table(work: pathlib.Path, model_name: str, images: np.ndarray) -> list[str]:
    from kbnn import zoo

    pretrained = zoo.available_weights(model_name) == "package"
    model = zoo.get(model_name, weights="pretrained" if pretrained else None)
    export_c(model, work / "model")
    lines = [
        f"| {model_name} export-c, -DKBNN_POPCOUNT (-Os) | instructions / inference | flash B |",
        "|---|---:|---:|",
    ]
    reference = None
    for variant, name in GENERATOR_VARIANTS.items():
        measured = firmware.measure(
            work / "model", images, work / f"gen{variant}", defines=[f"KBNN_POPCOUNT={variant}"]
        )
        if reference is None:
            reference = measured.run.scores
        elif not np.array_equal(reference, measured.run.scores):
            raise SystemExit(f"KBNN_POPCOUNT={variant} changes the scores")
        mean = measured.run.instructions.mean()
        lines.append(f"| {variant} {name} | {mean:,.0f} | {measured.size.flash_bytes:,} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="binarynet_mcu_mnist")
    parser.add_argument("--images", type=int, default=4)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.images, 784), dtype=np.uint8)
    with tempfile.TemporaryDirectory(prefix="kbnn-popcount-") as tmp:
        work = pathlib.Path(tmp)
        print("\n".join(candidates_table(work, images, rng)))
        print()
        digits = images.reshape(-1, 28, 28, 1)
        print("\n".join(generator_table(work, args.model, digits)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
