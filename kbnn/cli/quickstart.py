"""`kbnn quickstart`: pretrained BinaryNet → LCE flatbuffer → interpreter, offline."""

from __future__ import annotations

import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "quickstart",
        help="run the pretrained MNIST BinaryNet end to end (offline) and write quickstart.tflite",
        description="Load the pretrained seed MNIST BinaryNet shipped with kbnn, evaluate it on "
        "the embedded sample of real MNIST test digits, convert it to a Larq Compute Engine "
        "flatbuffer, run that in LCE's interpreter and print accuracy, Keras-vs-LCE agreement, "
        "file size and latency against the float32 TFLite twin.",
    )
    parser.add_argument(
        "-o",
        "--output",
        default="quickstart.tflite",
        help="where to write the flatbuffer (default: %(default)s)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="interpreter threads for the latency figures (default: %(default)s)",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from kbnn.apps.quickstart import run_quickstart
    from kbnn.errors import UsageError

    if args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    from kbnn._io import check_output

    check_output(args.output)  # before the slow run
    result = run_quickstart(
        args.output,
        num_threads=args.threads,
        progress=lambda message: print(f"[kbnn] {message} ...", file=sys.stderr, flush=True),
    )
    print(result.table())
    return 0
