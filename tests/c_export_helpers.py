"""Build and run `kbnn export-c` output on the host: a harness that includes only
`kbnn_model.h`, compiled with `gcc -std=c99 -Wall -Wextra -Werror -pedantic`."""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import numpy as np

HOST_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2")
ARM_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-Os", "-std=c99", "-Wall", "-Wextra", "-Werror")

HARNESS = r"""
/* reads raw images from stdin, prints "argmax score0 score1 ..." per image */
#include <stdio.h>
#include "kbnn_model.h"

int main(void)
{
    static uint8_t image[KBNN_INPUT_SIZE];
    int32_t scores[KBNN_NUM_CLASSES];
    while (fread(image, 1, KBNN_INPUT_SIZE, stdin) == KBNN_INPUT_SIZE) {
        int k, best = kbnn_infer(image, scores);
        printf("%d", best);
        for (k = 0; k < KBNN_NUM_CLASSES; k++) {
            printf(" %ld", (long)scores[k]);
        }
        printf("\n");
    }
    return 0;
}
"""


def build_host(export_dir, work_dir, *, defines=()) -> pathlib.Path:
    """Compile the harness with the exported model; returns the executable."""
    if shutil.which("gcc") is None:
        import pytest

        pytest.skip("no host gcc")
    work = pathlib.Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    harness = work / "harness.c"
    harness.write_text(HARNESS)
    exe = work / ("harness" + "".join(d.replace("=", "_") for d in defines))
    subprocess.run(
        [
            "gcc",
            *HOST_FLAGS,
            *(f"-D{d}" for d in defines),
            "-I",
            str(export_dir),
            str(harness),
            str(pathlib.Path(export_dir) / "kbnn_model.c"),
            "-o",
            str(exe),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return exe


def run_host(exe, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(argmax, int64 scores) of uint8 images run through the harness."""
    data = np.ascontiguousarray(images, dtype=np.uint8).tobytes()
    out = subprocess.run([str(exe)], input=data, capture_output=True, check=True, timeout=900)
    rows = np.array(
        [[int(v) for v in line.split()] for line in out.stdout.decode().splitlines()],
        dtype=np.int64,
    )
    return rows[:, 0], rows[:, 1:]
