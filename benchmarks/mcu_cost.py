"""Cortex-M4 cost of a binary model vs its int8 (CMSIS-NN) and float C anchors, side by side.

Each network has the export-c API and runs in the same harness (`kbnn.converters.c_export.
firmware`): arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb (hard float) at -Os, qemu-system-arm -M
mps2-an386 with semihosting, on the first N MNIST test digits. Measured: instructions per
inference (TCG plugin, marker snapshots around kbnn_infer), flash and static RAM the network adds
to a bare firmware (`arm-none-eabi-size`, model link minus stub link), stack high-water mark
(painted stack), and argmax agreement with Keras on the same digits.

    python benchmarks/mcu_cost.py [--models binarynet_mcu_mnist binarynet_mnist] [--images 20]
        [--cmsis-nn ../shared/cmsis-nn] [--weights FILE (with one model)]

The anchors are described in `benchmarks/mcu_anchors.py`. Without the CMSIS-NN v7.0.0 sources
(`--cmsis-nn`, default `$KBNN_CMSIS_NN` or `../shared/cmsis-nn` next to the repository) the int8
rows are skipped and the table says so.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn.converters.c_export import export_c, firmware

import mcu_anchors
import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_CMSIS = pathlib.Path(os.environ.get("KBNN_CMSIS_NN", REPO.parent / "shared" / "cmsis-nn"))


def mnist_digits(count: int) -> tuple[np.ndarray, np.ndarray]:
    """First `count` MNIST test digits as raw uint8 (N, 28, 28, 1) and their labels."""
    import tensorflow_datasets as tfds

    shared = REPO.parent / "shared" / "tensorflow_datasets"
    data_dir = os.environ.get("TFDS_DATA_DIR") or (str(shared) if shared.is_dir() else None)
    data = tfds.load(
        "mnist", split=f"test[:{count}]", batch_size=-1, download=False, data_dir=data_dir
    )
    return data["image"].numpy().astype(np.uint8), data["label"].numpy()


def _row(name, impl, m: firmware.McuMeasurement, base, keras_argmax, labels, note=""):
    ins = m.run.instructions.mean()
    ram = m.ram_with_stack_bytes
    agree = np.mean(m.run.argmax == keras_argmax)
    acc = np.mean(m.run.argmax == labels)
    b_ins, b_flash, b_ram = base
    return (
        f"| {name} | {impl} | {ins:,.0f} | {ins / b_ins:.2f}x | {m.size.flash_bytes:,} | "
        f"{m.size.flash_bytes / b_flash:.2f}x | {m.size.ram_bytes:,} | {m.run.stack_bytes:,} | "
        f"{ram:,} | {ram / b_ram:.2f}x | {agree:.1%} | {acc:.1%} |{note}"
    )


def layer_breakdown(c_dir: pathlib.Path, images, work: pathlib.Path) -> str:
    """Instructions per layer of the generated C: a copy with a harness marker after each
    `kbnn_run_layer(...)` call of `kbnn_infer` (empty when the generated code has no such calls)."""
    source = (c_dir / "kbnn_model.c").read_text()
    calls = [line for line in source.splitlines() if line.strip().startswith("kbnn_run_layer(&")]
    if len(calls) < 2:
        return ""
    for line in calls[:-1]:
        source = source.replace(line + "\n", line + "\n    kbnn_harness_mark();\n", 1)
    marked = work / "binary_marked"
    marked.mkdir()
    (marked / "kbnn_model.h").write_text((c_dir / "kbnn_model.h").read_text())
    (marked / "kbnn_model.c").write_text("void kbnn_harness_mark(void);\n" + source)
    firmware_ = firmware.build_firmware(marked, work / "marked_build")
    run = firmware.run_firmware(firmware_, images, work / "marked_run", parts=len(calls))
    per_layer = run.segments.mean(axis=0)
    parts = [f"layer {k}: {v:,.0f} ({v / per_layer.sum():.0%})" for k, v in enumerate(per_layer)]
    return "binary per layer (last part includes the argmax): " + ", ".join(parts)


def load_model(name: str, weights: pathlib.Path | None):
    """The zoo model with `weights` (a file), else its shipped weights, else random ones."""
    from kbnn import zoo

    if weights is not None:
        return zoo.get(name, weights=str(weights)), f"{name} ({weights.name})"
    if zoo.available_weights(name) == "package":
        return zoo.get(name, weights="pretrained"), name
    return zoo.get(name), f"{name} (random weights: no pretrained file)"


def measure_model(name, images, labels, work: pathlib.Path, cmsis, weights=None):
    model, label = load_model(name, weights)
    keras_scores = mcu_anchors.pre_softmax_scores(model, images)
    keras_argmax = keras_scores.argmax(axis=1)
    export_c(model, work / "binary")
    binary = firmware.measure(work / "binary", images, work / "binary_build")
    base = (
        binary.run.instructions.mean(),
        binary.size.flash_bytes,
        binary.ram_with_stack_bytes,
    )
    rows = [_row(label, "binary kbnn export-c", binary, base, keras_argmax, labels)]
    breakdown = layer_breakdown(work / "binary", images[:2], work)
    if cmsis is not None:
        sources, includes, exact = mcu_anchors.write_cmsis_int8(
            model, work / "int8", keras_scores, cmsis
        )
        int8 = firmware.measure(
            work / "int8", images, work / "int8_build", sources=sources, include_dirs=includes
        )
        note = "" if exact else " pool before BN: thresholds moved before the pool (cost only)"
        rows.append(_row(label, "CMSIS-NN v7 int8", int8, base, keras_argmax, labels, note))
    else:
        rows.append(f"| {label} | CMSIS-NN int8 | skipped: no CMSIS-NN sources (--cmsis-nn) |")
    sources = mcu_anchors.write_float(model, work / "float")
    flt = firmware.measure(
        work / "float", images, work / "float_build", sources=sources,
        include_dirs=[mcu_anchors.FLOAT_KERNELS.parent],
    )  # fmt: skip
    rows.append(_row(label, "float C (FPU)", flt, base, keras_argmax, labels))
    return rows, breakdown


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["binarynet_mcu_mnist", "binarynet_mnist"])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--cmsis-nn", type=pathlib.Path, default=DEFAULT_CMSIS)
    parser.add_argument("--weights", type=pathlib.Path, help="weights file (one model only)")
    args = parser.parse_args(argv)
    if args.weights is not None and len(args.models) != 1:
        parser.error("--weights needs exactly one model in --models")
    cmsis = args.cmsis_nn if (args.cmsis_nn / "Include" / "arm_nnfunctions.h").is_file() else None
    if cmsis is None:
        print(f"CMSIS-NN sources not found at {args.cmsis_nn}: the int8 anchor is skipped")
    images, labels = mnist_digits(args.images)
    print(
        f"Cortex-M4 (qemu mps2-an386), -Os, first {args.images} MNIST test digits; "
        "x = ratio to the binary model; RAM = static data+bss the network adds; stack = painted"
    )
    print(
        "| model | implementation | instructions / inference | x | flash B | x | static RAM B "
        "| stack B | RAM+stack B | x | argmax = Keras | accuracy |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    notes = []
    for name in args.models:
        with tempfile.TemporaryDirectory(prefix="kbnn-mcu-cost-") as tmp:
            rows, breakdown = measure_model(
                name, images, labels, pathlib.Path(tmp), cmsis, args.weights
            )
            print("\n".join(rows), flush=True)
            notes.append(f"{name}: {breakdown}")
    print("\n".join(["", *notes]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
