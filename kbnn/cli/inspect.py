"""`kbnn inspect OUT.tflite`: op table, op counts, custom ops and tensor sizes of a flatbuffer."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="list the ops, custom ops and tensor sizes of a .tflite file",
        description="Read a TFLite/LCE flatbuffer and print its size, inputs/outputs, op counts "
        "(LCE custom ops included) and the op table; --tensors adds every tensor.",
    )
    parser.add_argument("flatbuffer", help="a .tflite file")
    parser.add_argument("--tensors", action="store_true", help="also print the tensor table")
    parser.set_defaults(func=run)


def run(args) -> int:
    from kbnn.converters import inspect

    report = inspect(args.flatbuffer)
    print(report)
    if args.tensors:
        print()
        print(report.tensor_table())
    return 0
