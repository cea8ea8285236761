"""`kbnn export-c`: integer-only C99 for microcontrollers (kbnn_model.h + kbnn_model.c)."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export-c",
        help="write integer-only C99 (no malloc, no libm, no float) for a microcontroller",
        description="Lower a zoo model (pretrained weights) or a .keras/.h5 file of binary, "
        "ternary or DoReFa layers to integers and write DIR/PREFIX_model.h and "
        "DIR/PREFIX_model.c: int PREFIX_infer(const uint8_t input[PREFIX_INPUT_SIZE], "
        "int32_t scores[PREFIX_NUM_CLASSES]) takes the raw 8-bit HWC image and returns the "
        "argmax (docs/mcu.md).",
    )
    parser.add_argument("model", help="zoo model name (pretrained weights) or .keras/.h5 file")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument(
        "--prefix",
        default="kbnn",
        help="prefix of every C symbol, macro and file name (default: %(default)s)",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace existing PREFIX_model.h / PREFIX_model.c"
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from kbnn import zoo
    from kbnn.converters.c_export import check_prefix, export_c

    check_prefix(args.prefix)  # before any slow work
    model = zoo.load(args.model)
    result = export_c(model, args.output, prefix=args.prefix, overwrite=args.force)
    layers = ", ".join(
        f"{layer.name} ({layer.in_format}->{layer.out_format})" for layer in result.network.layers
    )
    print(
        f"wrote {result.header} and {result.source}: {len(result.network.layers)} layers "
        f"[{layers}]; const data {result.weight_bytes:,} B (flash), activation arena "
        f"{result.arena_bytes:,} B (RAM)"
    )
    return 0
