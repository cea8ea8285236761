"""`kbnn convert MODEL -o OUT.tflite`: Keras model → LCE flatbuffer, with the per-layer report."""

from __future__ import annotations

import pathlib

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert a Keras model to a Larq Compute Engine flatbuffer",
        description="Rewrite the model with kbnn's graph passes (dense -> 1x1 binary conv, "
        "ternary/five-level/k-bit layers -> binary planes, batch-norm folding), convert it with "
        "LCE and print per layer which ops it became and their bytes against the bit-count "
        "limit. Nothing is written unless conversion (and --verify) succeed.",
    )
    parser.add_argument("model", help="Keras model file (.keras or .h5)")
    parser.add_argument("-o", "--output", required=True, help="the .tflite file to write")
    parser.add_argument(
        "--verify",
        type=int,
        default=0,
        metavar="N",
        help="compare Keras and LCE's interpreter on N random inputs (uniform in [0, 1))",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the --verify inputs")
    parser.add_argument("--target", choices=("arm", "xcore"), default="arm")
    parser.add_argument("--float-twin", metavar="PATH", help="also write the float TFLite twin")
    parser.add_argument(
        "--c-array", metavar="NAME", help="also write NAME.h / NAME.cc beside the output"
    )
    parser.add_argument(
        "--allow-unknown-layers",
        action="store_true",
        help="hand layer types kbnn has not checked to LCE instead of failing",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def load_model(path: str):
    """A Keras model from a .keras/.h5 file, through kbnn's safe loader."""
    from kbnn._loading import load_model as safe_load

    return safe_load(path)


def random_inputs(model, count: int, seed: int):
    """`count` samples uniform in [0, 1) for every model input (batch dimension first)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    arrays = []
    for tensor in model.inputs:
        shape = tuple(tensor.shape[1:])
        if any(dim is None for dim in shape):
            from kbnn.errors import UsageError

            raise UsageError(f"--verify needs a fixed input shape, the model has {shape}")
        arrays.append(rng.random((count,) + shape, dtype=np.float32))
    return arrays[0] if len(arrays) == 1 else arrays


def run(args) -> int:
    from kbnn.errors import UsageError

    if args.verify < 0:
        raise UsageError(f"--verify must be >= 0, got {args.verify}")
    from kbnn._io import check_output, commit_files
    from kbnn._loading import model_file

    model_file(args.model)
    output = check_output(args.output, inputs=[args.model])
    if args.float_twin:
        check_output(args.float_twin, inputs=[args.model, args.output], flag="--float-twin")
    folder = output.parent if str(output.parent) else pathlib.Path(".")
    if args.c_array is not None:
        from kbnn.converters.c_array import to_c_array

        to_c_array(b"\0", args.c_array)  # validates the name before the slow conversion
        for suffix in (".h", ".cc"):
            check_output(folder / f"{args.c_array}{suffix}", inputs=[args.model], flag="--c-array")

    from kbnn import converters

    model = load_model(args.model)
    x = random_inputs(model, args.verify, args.seed) if args.verify else None
    conversion = converters.convert(
        model,
        target=args.target,
        verify_with=x,
        progress=not args.quiet,
        allow_unknown_layers=args.allow_unknown_layers,
    )
    twin = converters.float_twin_flatbuffer(model) if args.float_twin else None
    files = {output: conversion.flatbuffer}
    if twin is not None:
        files[pathlib.Path(args.float_twin)] = twin
    if args.c_array is not None:
        arrays = converters.to_c_array(conversion.flatbuffer, args.c_array)
        files[folder / f"{arrays.name}.h"] = arrays.header
        files[folder / f"{arrays.name}.cc"] = arrays.source
    commit_files(files)  # all or nothing
    print(conversion.report)
    if conversion.verification is not None:
        print()
        print(conversion.verification)
    print(f"\nwrote {output} ({conversion.size:,} bytes)")
    if twin is not None:
        ratio = len(twin) / conversion.size
        print(
            f"wrote {args.float_twin} ({len(twin):,} bytes, float twin; {ratio:.1f}x the LCE file)"
        )
    if args.c_array is not None:
        print(f"wrote {folder / (arrays.name + '.h')} and {folder / (arrays.name + '.cc')}")
    return 0
