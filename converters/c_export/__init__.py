"""kbnn.converters.c_export: integer-only C99 for microcontrollers (`kbnn export-c`).

`export_c(model, out_dir)` lowers a Keras model of binary / ternary / DoReFa layers to integers
(`lowering`), generates `kbnn_model.h` + `kbnn_model.c` (`codegen`) and writes them
all-or-nothing. `reference` runs the same integer network in numpy, independently of the C.
"""

from __future__ import annotations

import dataclasses
import pathlib

from kbnn.converters.c_export.codegen import CSources, check_prefix, generate
from kbnn.converters.c_export.errors import ExportError
from kbnn.converters.c_export.lowering import IntegerLayer, IntegerNetwork, lower

__all__ = [
    "CExport",
    "ExportError",
    "IntegerLayer",
    "IntegerNetwork",
    "check_prefix",
    "export_c",
    "generate",
    "lower",
]


@dataclasses.dataclass
class CExport:
    """What `export_c` wrote: the two files, the lowered network and the memory it needs."""

    header: pathlib.Path
    source: pathlib.Path
    network: IntegerNetwork
    weight_bytes: int
    arena_bytes: int


def export_c(model, out_dir, *, prefix: str = "kbnn", overwrite: bool = False) -> CExport:
    """Write `out_dir/PREFIX_model.h` and `out_dir/PREFIX_model.c` for a Keras model.

    The C API: `int PREFIX_infer(const uint8_t input[PREFIX_INPUT_SIZE], int32_t
    scores[PREFIX_NUM_CLASSES])` takes the raw 8-bit HWC image (the model saw input/255) and
    returns the argmax of the int32 scores (ties: lowest index). `out_dir` is created if its
    parent exists; existing files are refused unless `overwrite=True`. Raises `ExportError`
    naming the first layer that cannot be lowered.
    """
    from kbnn._io import commit_files

    check_prefix(prefix)
    folder = pathlib.Path(out_dir)
    header = folder / f"{prefix}_model.h"
    source = folder / f"{prefix}_model.c"
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"output {str(folder)!r} exists and is not a folder")
    if not overwrite:
        for path in (header, source):
            if path.exists():
                raise ExportError(
                    f"{str(path)!r} already exists; remove it or pass overwrite=True (--force)"
                )
    if not folder.parent.is_dir() and str(folder.parent):
        raise ExportError(f"cannot create {str(folder)!r}: {str(folder.parent)!r} does not exist")
    network = lower(model)
    sources: CSources = generate(network, prefix=prefix)
    folder.mkdir(exist_ok=True)
    commit_files({header: sources.header, source: sources.source})
    return CExport(header, source, network, sources.weight_bytes, sources.arena_bytes)
